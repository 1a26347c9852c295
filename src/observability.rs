//! Prometheus metrics (`GET /metrics`): webhook events received, applied and failed with their
//! latencies, the inbox depth, Stripe API calls and errors by type, HTTP latency by route. Plain
//! atomics and a text exporter; labels come from fixed sets (route templates, event outcomes,
//! error kinds), so their number stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// A counter per label value.
#[derive(Default)]
pub struct Counters(Mutex<BTreeMap<String, u64>>);

impl Counters {
    pub fn inc(&self, label: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // The label's text is copied only the first time it is seen.
        match map.get_mut(label) {
            Some(n) => *n += 1,
            None => {
                map.insert(label.to_string(), 1);
            }
        }
    }

    fn render(&self, out: &mut String, name: &str, label: &str) {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (value, n) in map.iter() {
            let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    /// Webhook deliveries by outcome: stored, duplicate, refused, unavailable.
    pub webhooks_received: Counters,
    /// Time from a delivery's arrival to its acknowledgement.
    pub webhook_ack_seconds: Histogram,
    /// Events processed by the worker, by outcome: applied, stale, ignored, retry, failed.
    pub events_processed: Counters,
    /// Time to apply one event.
    pub event_apply_seconds: Histogram,
    /// Time from receipt to application.
    pub event_lag_seconds: Histogram,
    /// Stripe API calls by outcome (`ok` or an error kind).
    pub stripe_calls: Counters,
    pub stripe_seconds: Histogram,
    /// HTTP requests by route template and status class.
    pub http_requests: Counters,
    http_seconds: Mutex<BTreeMap<String, &'static Histogram>>,
    /// Events committed per group commit (sum and count give the average batch).
    pub group_commit_events: AtomicU64,
    pub group_commits: AtomicU64,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    fn http_histogram(&self, route: &str) -> &'static Histogram {
        let mut map = self.http_seconds.lock().unwrap_or_else(|p| p.into_inner());
        // Leaked once per route template: a bounded set.
        map.entry(route.to_string())
            .or_insert_with(|| Box::leak(Box::new(Histogram::default())))
    }
}

/// Records each request's latency by route template (never by raw path).
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let m = metrics();
    m.http_histogram(&route).observe(started.elapsed());
    let class = format!("{}xx", response.status().as_u16() / 100);
    m.http_requests.inc(&format!("{method} {route} {class}"));
    response
}

/// This process's counters and histograms in Prometheus' text format (`GET /metrics`, which
/// `server::prometheus` serves, adds the inbox's depth).
pub fn render() -> String {
    let m = metrics();
    let mut out = String::with_capacity(8192);
    describe(
        &mut out,
        "tally_webhooks_received_total",
        "counter",
        "Webhook deliveries by outcome.",
    );
    m.webhooks_received
        .render(&mut out, "tally_webhooks_received_total", "outcome");
    describe(
        &mut out,
        "tally_webhook_ack_seconds",
        "histogram",
        "Time from a delivery's arrival to its acknowledgement.",
    );
    m.webhook_ack_seconds.render(&mut out, "tally_webhook_ack_seconds", "");
    describe(
        &mut out,
        "tally_events_processed_total",
        "counter",
        "Events processed by the worker, by outcome.",
    );
    m.events_processed
        .render(&mut out, "tally_events_processed_total", "outcome");
    describe(
        &mut out,
        "tally_event_apply_seconds",
        "histogram",
        "Time to apply one event.",
    );
    m.event_apply_seconds.render(&mut out, "tally_event_apply_seconds", "");
    describe(
        &mut out,
        "tally_event_lag_seconds",
        "histogram",
        "Time from an event's receipt to its application.",
    );
    m.event_lag_seconds.render(&mut out, "tally_event_lag_seconds", "");
    describe(
        &mut out,
        "tally_group_commits_total",
        "counter",
        "Inbox transactions; tally_group_commit_events_total events they stored.",
    );
    let _ = writeln!(
        out,
        "tally_group_commits_total {}",
        m.group_commits.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE tally_group_commit_events_total counter");
    let _ = writeln!(
        out,
        "tally_group_commit_events_total {}",
        m.group_commit_events.load(Ordering::Relaxed)
    );
    describe(
        &mut out,
        "tally_stripe_requests_total",
        "counter",
        "Stripe API requests by outcome (ok or error type).",
    );
    m.stripe_calls
        .render(&mut out, "tally_stripe_requests_total", "outcome");
    describe(
        &mut out,
        "tally_stripe_request_seconds",
        "histogram",
        "Stripe API request latency, retries included.",
    );
    m.stripe_seconds.render(&mut out, "tally_stripe_request_seconds", "");
    describe(
        &mut out,
        "tally_http_requests_total",
        "counter",
        "HTTP requests by method, route and status class.",
    );
    m.http_requests.render(&mut out, "tally_http_requests_total", "request");
    describe(
        &mut out,
        "tally_http_request_seconds",
        "histogram",
        "HTTP latency by route.",
    );
    {
        let map = m.http_seconds.lock().unwrap_or_else(|p| p.into_inner());
        for (route, h) in map.iter() {
            h.render(&mut out, "tally_http_request_seconds", &format!("route=\"{route}\""));
        }
    }
    out
}

/// The `# HELP` and `# TYPE` lines of a metric.
pub fn describe(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1\n"));
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count 3\n"));
    }
}
