//! `tally bench`: load generators for docs/benchmarks.md. `ingest` posts realistic signed
//! Stripe events over HTTP at a chosen concurrency (and optionally rate) and reports
//! acknowledgements per second and latency percentiles; `pages` logs in and reports p50/p95 per
//! page. Results are printed as JSON lines for scripts/bench.sh.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client(concurrency: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build(connector)
}

/// Milliseconds at the given percentile of sorted latencies.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// A `customer.created` event shaped and sized like Stripe's.
pub fn customer_event(run: &str, n: usize, now: i64) -> String {
    json!({
        "id": format!("evt_bench_{run}_{n:08}"), "object": "event", "api_version": crate::stripe::API_VERSION,
        "created": now, "livemode": false, "pending_webhooks": 1, "type": "customer.created",
        "request": {"id": format!("req_bench{n:08}"), "idempotency_key": null},
        "data": {"object": {
            "id": format!("cus_bench_{run}_{n:08}"), "object": "customer", "address": null, "balance": 0, "created": now,
            "currency": null, "default_source": null, "delinquent": false, "description": null, "discount": null,
            "email": format!("customer{n}@example.com"), "invoice_prefix": format!("B{n:07X}"),
            "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null},
            "livemode": false, "metadata": {"plan": "pro", "source": "bench"}, "name": format!("Bench Customer {n}"),
            "next_invoice_sequence": 1, "phone": null, "preferred_locales": ["en"], "shipping": null,
            "tax_exempt": "none", "test_clock": null
        }}
    })
    .to_string()
}

pub struct IngestOptions {
    pub url: String,
    pub secret: String,
    pub events: usize,
    pub concurrency: usize,
    /// Events per second offered; `None`: as fast as acknowledged.
    pub rate: Option<u64>,
}

/// Posts the events and prints one JSON line of results.
pub async fn ingest(o: IngestOptions) -> Result<(), String> {
    let client = client(o.concurrency);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let now = crate::db::now_unix();
    // Several instances (comma-separated): every event goes to each of them at once, as a
    // duplicate delivery would.
    let urls: Vec<hyper::Uri> = o
        .url
        .split(',')
        .map(|u| format!("{}/stripe/webhook", u.trim().trim_end_matches('/')).parse())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--url: {e}"))?;
    let urls = Arc::new(urls);
    // Bodies and signatures are made before the clock starts.
    let bodies: Arc<Vec<(Bytes, String)>> = Arc::new(
        (0..o.events)
            .map(|n| {
                let body = customer_event(&run, n, now);
                let sig = crate::webhooks::signature::sign(body.as_bytes(), &o.secret, now);
                (Bytes::from(body), sig)
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let interval = o.rate.map(|r| Duration::from_secs_f64(1.0 / r.max(1) as f64));
    let mut tasks = Vec::new();
    for _ in 0..o.concurrency {
        let (client, bodies, next, urls) = (client.clone(), bodies.clone(), next.clone(), urls.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= bodies.len() {
                    break;
                }
                if let Some(step) = interval {
                    // Open-loop pacing: event n is offered at n × step.
                    let due = started + step * n as u32;
                    tokio::time::sleep_until(due.into()).await;
                }
                let (body, sig) = &bodies[n];
                let deliveries = urls.iter().map(|url| {
                    let request = Request::builder()
                        .method(Method::POST)
                        .uri(url.clone())
                        .header("content-type", "application/json")
                        .header("stripe-signature", sig.as_str())
                        .body(Full::new(body.clone()));
                    let client = client.clone();
                    async move {
                        let request = request.ok()?;
                        let t = Instant::now();
                        let response = client.request(request).await.ok()?;
                        let ok = response.status().is_success();
                        let _ = response.into_body().collect().await;
                        ok.then(|| t.elapsed())
                    }
                });
                for outcome in futures_util::future::join_all(deliveries).await {
                    match outcome {
                        Some(latency) => latencies.push(latency),
                        None => errors += 1,
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(o.events);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.map_err(|e| e.to_string())?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "{}",
        json!({
            "bench": "ingest", "events": o.events, "instances": urls.len(), "concurrency": o.concurrency, "offered_rate": o.rate,
            "acknowledged": latencies.len(), "errors": errors, "seconds": elapsed,
            "acks_per_second": latencies.len() as f64 / elapsed,
            "p50_ms": percentile(&latencies, 0.50), "p95_ms": percentile(&latencies, 0.95),
            "p99_ms": percentile(&latencies, 0.99), "max_ms": percentile(&latencies, 1.0),
        })
    );
    Ok(())
}

/// The `n`-th event of the live traffic during `pages`: new charges and subscriptions (created,
/// then upgraded) of the first thousand demo customers, dated now.
pub fn live_event(run: &str, n: usize, now: i64) -> String {
    let customer = format!("cus_demo{:05}", (n * 7919) % 1000);
    let sub = format!("sub_live_{run}_{:07}", n / 4);
    let object = match n % 4 {
        0 | 2 => json!({
            "id": format!("ch_live_{run}_{n:08}"), "object": "charge", "amount": 4900, "amount_captured": 4900,
            "amount_refunded": 0, "currency": "usd", "status": "succeeded", "paid": true, "captured": true,
            "refunded": false, "customer": customer, "created": now, "livemode": false,
            "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
            "refunds": {"object": "list", "has_more": false, "data": []}
        }),
        k => json!({
            "id": sub, "object": "subscription", "customer": customer, "status": "active", "currency": "usd",
            "created": now, "start_date": now, "cancel_at_period_end": false, "livemode": false,
            "items": {"object": "list", "has_more": false, "data": [{
                "id": format!("si_live_{run}_{:07}", n / 4), "object": "subscription_item", "quantity": if k == 1 { 1 } else { 2 },
                "current_period_start": now, "current_period_end": now + 30 * 86_400,
                "price": {"id": "price_demo_pro_month_usd", "object": "price", "active": true, "currency": "usd",
                          "product": "prod_demo_pro", "unit_amount": 4900, "type": "recurring",
                          "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}
            }]}
        }),
    };
    let event_type = match n % 4 {
        0 | 2 => "charge.succeeded",
        1 => "customer.subscription.created",
        _ => "customer.subscription.updated",
    };
    json!({
        "id": format!("evt_live_{run}_{n:08}"), "object": "event", "api_version": crate::stripe::API_VERSION,
        "created": now, "livemode": false, "pending_webhooks": 1, "type": event_type,
        "data": {"object": object}
    })
    .to_string()
}

/// Posts `live_event`s at `rate` per second until `stop`; returns how many were acknowledged.
async fn live_traffic(url: String, secret: String, rate: u64, stop: Arc<tokio::sync::Notify>) -> Result<usize, String> {
    let client = client(1);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let uri: hyper::Uri = format!("{}/stripe/webhook", url.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("--url: {e}"))?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut acknowledged = 0;
    for n in 0.. {
        tokio::select! {
            _ = stop.notified() => break,
            _ = tick.tick() => {}
        }
        let now = crate::db::now_unix();
        let body = live_event(&run, n, now);
        let signature = crate::webhooks::signature::sign(body.as_bytes(), &secret, now);
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = client.request(request).await.map_err(|e| format!("webhook: {e}"))?;
        if response.status().is_success() {
            acknowledged += 1;
        }
    }
    Ok(acknowledged)
}

/// Logs in with `client` and returns the session cookie.
async fn log_in(client: &HttpClient, base: &str, email: &str, password: &str) -> Result<String, String> {
    let form = format!(
        "email={}&password={}&next=%2F",
        crate::stripe::form_encode(email),
        crate::stripe::form_encode(password)
    );
    let login = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| e.to_string())?;
    let response = client
        .request(login)
        .await
        .map_err(|e| format!("login at {base}: {e}"))?;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    if cookie.is_empty() || response.headers().get("location").and_then(|l| l.to_str().ok()) != Some("/") {
        return Err(format!("login at {base} failed: check --email and --password"));
    }
    Ok(cookie)
}

/// One page's latency and size.
async fn fetch_page(client: &HttpClient, base: &str, page: &str, cookie: &str) -> Result<(Duration, usize), String> {
    let request = Request::builder()
        .uri(format!("{base}{page}"))
        .header("cookie", cookie)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{base}{page}: HTTP {}", response.status()));
    }
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .len();
    Ok((t.elapsed(), bytes))
}

/// Logs in and measures each page `requests` times, one after another; with `live`
/// (events per second, signing secret), while signed events keep changing the data.
///
/// With several `urls` (servers over different datasets), the same account logs in to each and
/// their requests alternate (page by page, one request to each in turn), so a noisy machine slows
/// them alike and their percentiles compare; each line then names its url.
pub async fn pages(
    urls: &[String],
    email: &str,
    password: &str,
    requests: usize,
    pages: &[String],
    live: Option<(u64, String)>,
    interval: Duration,
) -> Result<(), String> {
    let client = client(1);
    let bases: Vec<&str> = urls.iter().map(|u| u.trim_end_matches('/')).collect();
    if bases.is_empty() {
        return Err("--url: give at least one".into());
    }
    let mut cookies = Vec::with_capacity(bases.len());
    for base in &bases {
        cookies.push(log_in(&client, base, email, password).await?);
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    let rate = live.as_ref().map(|(rate, _)| *rate);
    let traffic =
        live.map(|(rate, secret)| tokio::spawn(live_traffic(bases[0].to_string(), secret, rate, stop.clone())));
    let started = Instant::now();
    for page in pages {
        let mut latencies = vec![Vec::with_capacity(requests); bases.len()];
        let mut bytes = vec![0; bases.len()];
        for i in 0..requests {
            if i > 0 && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            for (n, base) in bases.iter().enumerate() {
                let (took, size) = fetch_page(&client, base, page, &cookies[n]).await?;
                latencies[n].push(took);
                bytes[n] = size;
            }
        }
        for (n, mut latencies) in latencies.into_iter().enumerate() {
            // The first request computes what later ones may find cached: reported on its own.
            let first_ms = latencies.first().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            latencies.sort();
            let mut line = json!({"bench": "page", "page": page, "requests": requests, "bytes": bytes[n],
                   "first_ms": first_ms, "p50_ms": percentile(&latencies, 0.50),
                   "p95_ms": percentile(&latencies, 0.95), "webhooks_per_sec": rate});
            if bases.len() > 1 {
                line["url"] = json!(bases[n]);
            }
            println!("{line}");
        }
    }
    if let Some(traffic) = traffic {
        stop.notify_one();
        let acknowledged = traffic.await.map_err(|e| e.to_string())??;
        println!(
            "{}",
            json!({"bench": "live_traffic", "webhooks_per_sec": rate, "acknowledged": acknowledged,
                   "seconds": started.elapsed().as_secs_f64()})
        );
    }
    Ok(())
}
