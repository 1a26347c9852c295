//! The Stripe boundary: the only module that talks to Stripe's API. Held in app state as
//! `Arc<dyn StripeApi>`, so tests swap the base URL for a stand-in on loopback (or the whole
//! implementation). async-stripe shapes requests; `transport` sends them (retries, request ids).

pub mod error;
pub mod ops;
pub mod transport;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
pub use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::config::Config;
use crate::domain::resource::Resource;
pub use error::{ErrorKind, StripeApiError};
pub use transport::{Pause, StripeResponse, Timeouts, Transport, API_VERSION};

/// One page of a list endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ListPage {
    pub data: Vec<Value>,
    pub has_more: bool,
}

impl ListPage {
    fn from_body(body: Value) -> Result<Self, StripeApiError> {
        let has_more = body.get("has_more").and_then(Value::as_bool).unwrap_or(false);
        match body {
            Value::Object(mut map) => match map.remove("data") {
                Some(Value::Array(data)) => Ok(Self { data, has_more }),
                _ => Err(StripeApiError::unexpected("a list without data")),
            },
            _ => Err(StripeApiError::unexpected("a list that is not an object")),
        }
    }
}

/// A subscription list's discounts (its own and its items'), expanded: webhook payloads carry
/// their ids only. (For one subscription, without the `data.` prefix.)
const EXPAND_SUBSCRIPTION_DISCOUNTS: &str = "expand[]=data.discounts&expand[]=data.items.data.discounts";

/// What Tally asks of Stripe. One method does the sending, so a test can stand in for all of it;
/// the others are built on it.
#[async_trait]
pub trait StripeApi: Send + Sync + fmt::Debug {
    /// Sends one request (shaped by async-stripe's request builders or by hand). POSTs carry the
    /// idempotency key (a random one when `None`), the same on every retry. `stripe_version`
    /// overrides the pinned API version (only ephemeral keys need that).
    async fn send_versioned(
        &self,
        request: RequestBuilder,
        idempotency_key: Option<&str>,
        stripe_version: Option<&str>,
    ) -> Result<StripeResponse, StripeApiError>;

    /// The most requests a second this client starts (its rate limiter), if it has one.
    fn rate_limit(&self) -> Option<u32> {
        None
    }

    /// As `send_versioned`, with Tally's pinned API version.
    async fn send(
        &self,
        request: RequestBuilder,
        idempotency_key: Option<&str>,
    ) -> Result<StripeResponse, StripeApiError> {
        self.send_versioned(request, idempotency_key, None).await
    }

    /// The current state of one object, as Stripe's JSON.
    async fn retrieve(&self, resource: Resource, id: &str) -> Result<Value, StripeApiError> {
        if !valid_id(id) {
            return Err(StripeApiError::not_found());
        }
        let mut request = RequestBuilder::new(StripeMethod::Get, format!("{}/{id}", path(resource)));
        if resource == Resource::Subscription {
            // Current API versions list discounts by id: ask for the objects.
            request.query = Some(EXPAND_SUBSCRIPTION_DISCOUNTS.replace("data.", ""));
        }
        Ok(self.send(request, None).await?.body)
    }

    /// One page (up to 100 objects, newest first) of a resource, after `starting_after`, created
    /// within `created`. Subscriptions of every status are listed.
    async fn list(
        &self,
        resource: Resource,
        starting_after: Option<&str>,
        created: Created,
    ) -> Result<ListPage, StripeApiError> {
        let mut filters = Vec::new();
        if let Some(gte) = created.gte {
            filters.push(("created[gte]".to_string(), gte.to_string()));
        }
        if let Some(lt) = created.lt {
            filters.push(("created[lt]".to_string(), lt.to_string()));
        }
        if resource == Resource::Subscription {
            filters.push(("status".to_string(), "all".to_string()));
            for part in EXPAND_SUBSCRIPTION_DISCOUNTS.split('&') {
                if let Some((key, value)) = part.split_once('=') {
                    filters.push((key.to_string(), value.to_string()));
                }
            }
        }
        self.list_path(path(resource), &filters, starting_after).await
    }

    /// One page of any list endpoint (`/subscription_items`, `/events`, …) with filters.
    async fn list_path(
        &self,
        path: &str,
        filters: &[(String, String)],
        starting_after: Option<&str>,
    ) -> Result<ListPage, StripeApiError> {
        let mut request = RequestBuilder::new(StripeMethod::Get, path);
        request.query = Some(list_query(filters, starting_after));
        ListPage::from_body(self.send(request, None).await?.body)
    }
}

/// A range of `created` times (Unix seconds) a list is limited to: at or after `gte`, before `lt`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Created {
    pub gte: Option<i64>,
    pub lt: Option<i64>,
}

impl Created {
    /// Every object.
    pub const ALL: Created = Created { gte: None, lt: None };

    /// Objects created at or after `since` (every object when `None`).
    pub fn since(since: Option<i64>) -> Created {
        Created { gte: since, lt: None }
    }

    /// Whether a time lies in the range.
    pub fn contains(&self, t: i64) -> bool {
        self.gte.is_none_or(|gte| t >= gte) && self.lt.is_none_or(|lt| t < lt)
    }
}

/// Stripe embeds only the first page of some lists (a subscription's items, an invoice's lines, a
/// charge's refunds).
/// When the embedded list says there is more, this fetches the whole list and puts it in place, so
/// projection sees every entry. Returns how many requests it made.
pub async fn complete_nested_lists(
    api: &dyn StripeApi,
    resource: Resource,
    object: &mut Value,
) -> Result<usize, StripeApiError> {
    let Some(id) = object.get("id").and_then(Value::as_str).filter(|id| valid_id(id)) else {
        return Ok(0);
    };
    let (field, path, filters) = match resource {
        Resource::Subscription => ("items", "/subscription_items".to_string(), vec![("subscription", id)]),
        Resource::Charge => ("refunds", "/refunds".to_string(), vec![("charge", id)]),
        Resource::Invoice => ("lines", format!("/invoices/{id}/lines"), Vec::new()),
        _ => return Ok(0),
    };
    let more = object
        .get(field)
        .and_then(|list| list.get("has_more"))
        .and_then(Value::as_bool)
        == Some(true);
    if !more {
        return Ok(0);
    }
    let filters: Vec<(String, String)> = filters
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut all = Vec::new();
    let mut requests = 0;
    loop {
        let after = all
            .last()
            .and_then(|o: &Value| o.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let page = api.list_path(&path, &filters, after.as_deref()).await?;
        requests += 1;
        let done = !page.has_more || page.data.is_empty();
        all.extend(page.data);
        if done {
            break;
        }
    }
    if let Some(list) = object.get_mut(field).and_then(Value::as_object_mut) {
        list.insert("data".into(), Value::Array(all));
        list.insert("has_more".into(), Value::Bool(false));
    }
    Ok(requests)
}

/// Objects per list page: Stripe's most.
pub const LIST_PAGE: usize = 100;

/// The query string of a list request: 100 a page, the filters, and the cursor when it is an id.
fn list_query(filters: &[(String, String)], starting_after: Option<&str>) -> String {
    let mut query = format!("limit={LIST_PAGE}");
    for (key, value) in filters {
        query.push('&');
        query.push_str(&form_encode(key));
        query.push('=');
        query.push_str(&form_encode(value));
    }
    if let Some(after) = starting_after.filter(|a| valid_id(a)) {
        query.push_str("&starting_after=");
        query.push_str(after);
    }
    query
}

/// Percent-encodes everything but unreserved characters.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The API path of a resource's objects.
pub fn path(resource: Resource) -> &'static str {
    match resource {
        Resource::Customer => "/customers",
        Resource::PaymentMethod => "/payment_methods",
        Resource::Product => "/products",
        Resource::Price => "/prices",
        Resource::Subscription => "/subscriptions",
        Resource::Invoice => "/invoices",
        Resource::PaymentIntent => "/payment_intents",
        Resource::Charge => "/charges",
        Resource::Refund => "/refunds",
        Resource::Dispute => "/disputes",
        Resource::CheckoutSession => "/checkout/sessions",
        Resource::Coupon => "/coupons",
        Resource::PromotionCode => "/promotion_codes",
        // Stripe has no discounts endpoint: Tally reads discounts expanded on their subscription
        // or customer and never requests this path.
        Resource::Discount => "/discounts",
        Resource::ApplicationFee => "/application_fees",
    }
}

/// Stripe ids are letters, digits and underscores; anything else never reaches a URL.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Keeps Tally under Stripe's request rate: at most `max` requests start in any one-second window,
/// and they start evenly spaced through the second (one every `WINDOW / max`) rather than as a
/// burst at its start: a burst, with network jitter, can land `max + 1` requests in one of
/// Stripe's rolling seconds. Waiters go in turn (a fair lock).
#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    spacing: Duration,
    started: tokio::sync::Mutex<std::collections::VecDeque<tokio::time::Instant>>,
}

impl RateLimiter {
    /// A little more than a second, so that clocks on either side never see `max + 1` in one second.
    pub const WINDOW: Duration = Duration::from_millis(1_010);

    /// The most requests it starts in a window.
    pub fn max(&self) -> u32 {
        self.max as u32
    }

    pub fn per_second(max: u32) -> Self {
        let max = max.max(1);
        Self {
            max: max as usize,
            spacing: Self::WINDOW / max,
            started: tokio::sync::Mutex::new(Default::default()),
        }
    }

    /// Waits until one more request may start, and records it.
    pub async fn acquire(&self) {
        let mut started = self.started.lock().await;
        loop {
            let now = tokio::time::Instant::now();
            while started.front().is_some_and(|t| now.duration_since(*t) >= Self::WINDOW) {
                started.pop_front();
            }
            // The earliest this request may start: a spacing after the last one, and (belt and
            // braces) once the oldest of a full window has left it.
            let spaced = started.back().map(|last| *last + self.spacing);
            let window = (started.len() >= self.max)
                .then(|| started.front().map(|oldest| *oldest + Self::WINDOW))
                .flatten();
            let earliest = spaced.into_iter().chain(window).max();
            match earliest.filter(|t| *t > now) {
                None => {
                    // Counted from its slot when it starts a little after it (a timer fires up
                    // to a millisecond late, a busy worker later still): counting from the late
                    // start would lose that much on every request (73 a second instead of 79
                    // at 80, measured). Within half a spacing, so two never start together.
                    let slot = earliest
                        .filter(|slot| now.duration_since(*slot) < self.spacing / 2)
                        .unwrap_or(now);
                    started.push_back(slot);
                    return;
                }
                Some(at) => tokio::time::sleep_until(at).await,
            }
        }
    }
}

#[cfg(test)]
mod limiter_tests {
    use super::RateLimiter;
    use tokio::time::{Duration, Instant};

    /// The start times of `n` requests through a limiter of `max` a second (on tokio's paused
    /// clock: deterministic), as offsets from the first.
    async fn starts(max: u32, n: usize) -> Vec<Duration> {
        let limiter = std::sync::Arc::new(RateLimiter::per_second(max));
        let begin = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    limiter.acquire().await;
                    Instant::now() - begin
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out.sort();
        out
    }

    #[tokio::test(start_paused = true)]
    async fn requests_start_evenly_spaced_not_in_a_burst() {
        let at = starts(25, 50).await;
        // A spacing apart, give or take the millisecond a timer fires late.
        let spacing = RateLimiter::WINDOW / 25 - Duration::from_millis(1);
        for pair in at.windows(2) {
            assert!(pair[1] - pair[0] >= spacing, "{:?} then {:?}", pair[0], pair[1]);
        }
        // Never more than 25 in any window of a second.
        for (i, t) in at.iter().enumerate() {
            let within = at[i..].iter().take_while(|u| **u - *t < Duration::from_secs(1)).count();
            assert!(within <= 25, "{within} requests in the second from {t:?}");
        }
        // And not slower than the rate: 50 requests in about two seconds.
        assert!(at[49] < Duration::from_millis(2_050), "{:?}", at[49]);
    }

    /// Timers fire on whole milliseconds: 80 a second is a start every 12.625 ms, each slept to
    /// 13 ms. The rate stays 80 a second (less the window's 1 %), never over it.
    #[tokio::test(start_paused = true)]
    async fn late_timers_do_not_slow_the_rate() {
        let at = starts(80, 801).await;
        let window = RateLimiter::WINDOW.as_secs_f64();
        let ten_seconds = at[800].as_secs_f64();
        assert!(
            ten_seconds < 10.0 * window + 0.02,
            "800 spacings took {ten_seconds} s (each at least {} ms)",
            (RateLimiter::WINDOW / 80).as_secs_f64() * 1e3
        );
        for (i, t) in at.iter().enumerate() {
            let within = at[i..].iter().take_while(|u| **u - *t < Duration::from_secs(1)).count();
            assert!(within <= 80, "{within} requests in the second from {t:?}");
        }
        for pair in at.windows(2) {
            assert!(
                pair[1] - pair[0] > RateLimiter::WINDOW / 160,
                "{:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

#[async_trait]
impl StripeApi for Transport {
    fn rate_limit(&self) -> Option<u32> {
        Some(self.rate_limit())
    }

    async fn send_versioned(
        &self,
        request: RequestBuilder,
        idempotency_key: Option<&str>,
        stripe_version: Option<&str>,
    ) -> Result<StripeResponse, StripeApiError> {
        let started = std::time::Instant::now();
        let result = Transport::send_versioned(self, request, idempotency_key, stripe_version).await;
        let m = crate::observability::metrics();
        m.stripe_seconds.observe(started.elapsed());
        m.stripe_calls.inc(match &result {
            Ok(_) => "ok",
            Err(e) => e.kind.as_str(),
        });
        result
    }
}

/// The client for this configuration: the transport with the key, or one that says Stripe is not
/// configured.
pub fn from_config(config: &Config) -> Result<std::sync::Arc<dyn StripeApi>, StripeApiError> {
    Ok(from_config_split(config)?.0)
}

/// A Stripe client shared by tasks.
pub type SharedApi = std::sync::Arc<dyn StripeApi>;

/// Two clients with separate budgets that add up to `STRIPE_MAX_REQUESTS_PER_SECOND`: one for
/// admins, the worker and sync (three quarters), one for anonymous visitors' checkouts (a quarter,
/// at least one a second, waiting at most 5 s). A crowd on the pricing page can use up its own
/// budget, never the admins'.
pub fn from_config_split(config: &Config) -> Result<(SharedApi, SharedApi), StripeApiError> {
    let Some(key) = &config.stripe_key else {
        return Ok((std::sync::Arc::new(NotConfigured), std::sync::Arc::new(NotConfigured)));
    };
    let public_rate = (config.stripe_rate_limit / 4).max(1);
    let own_rate = config.stripe_rate_limit.saturating_sub(public_rate).max(1);
    let client = |rate: u32, timeouts: Timeouts| {
        Transport::new(
            key.key.expose(),
            config.stripe_api_base.as_str(),
            rate,
            config.stripe_retry.clone(),
            timeouts,
        )
    };
    let public = Timeouts {
        budget_wait: std::time::Duration::from_secs(5),
        ..Timeouts::default()
    };
    Ok((
        std::sync::Arc::new(client(own_rate, Timeouts::default())?),
        std::sync::Arc::new(client(public_rate, public)?),
    ))
}

/// The client for jobs run from the command line (backfill, reconciliation, drift): the whole
/// `STRIPE_MAX_REQUESTS_PER_SECOND`, since no visitor's checkout shares the process.
pub fn for_jobs(config: &Config) -> Result<SharedApi, StripeApiError> {
    let Some(key) = &config.stripe_key else {
        return Ok(std::sync::Arc::new(NotConfigured));
    };
    Ok(std::sync::Arc::new(Transport::new(
        key.key.expose(),
        config.stripe_api_base.as_str(),
        config.stripe_rate_limit,
        config.stripe_retry.clone(),
        Timeouts::default(),
    )?))
}

/// Used when no key is configured.
#[derive(Debug)]
pub struct NotConfigured;

#[async_trait]
impl StripeApi for NotConfigured {
    async fn send_versioned(
        &self,
        _: RequestBuilder,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Result<StripeResponse, StripeApiError> {
        Err(StripeApiError::not_configured())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On tokio's paused clock: time moves only when every task waits, so the starts are exact.
    #[tokio::test(start_paused = true)]
    async fn the_limiter_spreads_requests_over_seconds() {
        let limiter = RateLimiter::per_second(3);
        let start = tokio::time::Instant::now();
        let mut starts = Vec::new();
        for _ in 0..7 {
            limiter.acquire().await;
            starts.push(start.elapsed());
        }
        // Evenly spaced (a third of the window apart, give or take the timer's millisecond), and
        // never more than three in a window: the fourth waits for the first to leave it.
        let (w, s) = (RateLimiter::WINDOW, RateLimiter::WINDOW / 3);
        let tick = Duration::from_millis(1);
        for (i, t) in starts.iter().enumerate() {
            let expected = w * (i as u32 / 3) + s * (i as u32 % 3);
            assert!(
                *t >= expected && *t <= expected + tick * 3,
                "start {i} at {t:?}, expected {expected:?}: {starts:?}"
            );
        }
        for pair in starts.windows(4) {
            assert!(pair[3] - pair[0] >= w, "four starts in one window: {starts:?}");
        }
    }

    #[test]
    fn list_queries() {
        assert_eq!(list_query(&[], None), "limit=100");
        let filters = [
            ("created[gte]".to_string(), "1700".to_string()),
            ("status".to_string(), "all".to_string()),
        ];
        assert_eq!(
            list_query(&filters, Some("sub_9")),
            "limit=100&created%5Bgte%5D=1700&status=all&starting_after=sub_9"
        );
        // A cursor that is not a Stripe id never reaches the URL.
        assert_eq!(list_query(&[], Some("x&y=1")), "limit=100");
    }
}
