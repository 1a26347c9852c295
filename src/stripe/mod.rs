//! The Stripe boundary: the only module that talks to Stripe's API. Held in app state as
//! `Arc<dyn StripeApi>`, so tests swap the base URL for a stand-in on loopback (or the whole
//! implementation). The async-stripe client is used for transport and authentication.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::config::Config;
use crate::webhooks::projection::Resource;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeApiError {
    #[error("Stripe is not configured: set STRIPE_SECRET_KEY")]
    NotConfigured,
    #[error("Stripe has no such object")]
    NotFound,
    #[error("Stripe refused the request ({status}): {message}")]
    Api { status: u16, message: String },
    #[error("could not reach Stripe: {0}")]
    Connection(String),
    #[error("unexpected answer from Stripe: {0}")]
    Unexpected(String),
}

/// One page of a list endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ListPage {
    pub data: Vec<Value>,
    pub has_more: bool,
}

/// What Tally asks of Stripe. Issues that follow add Checkout, portal, refunds…
#[async_trait]
pub trait StripeApi: Send + Sync + fmt::Debug {
    /// The current state of one object, as Stripe's JSON.
    async fn retrieve(&self, resource: Resource, id: &str) -> Result<Value, StripeApiError>;

    /// One page (up to 100 objects, newest first) of a resource, after `starting_after`, created
    /// at or after `created_gte`. Subscriptions of every status are listed.
    async fn list(
        &self,
        resource: Resource,
        starting_after: Option<&str>,
        created_gte: Option<i64>,
    ) -> Result<ListPage, StripeApiError>;
}

/// The query string of a list request.
fn list_query(resource: Resource, starting_after: Option<&str>, created_gte: Option<i64>) -> String {
    let mut query = String::from("limit=100");
    if let Some(after) = starting_after.filter(|a| valid_id(a)) {
        query.push_str("&starting_after=");
        query.push_str(after);
    }
    if let Some(since) = created_gte {
        query.push_str(&format!("&created%5Bgte%5D={since}"));
    }
    if resource == Resource::Subscription {
        query.push_str("&status=all");
    }
    query
}

/// The API path of a resource's objects.
fn path(resource: Resource) -> &'static str {
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
    }
}

/// Stripe ids are letters, digits and underscores; anything else never reaches a URL.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Keeps Tally under Stripe's request rate: at most `max` requests start in any one-second window.
#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    started: tokio::sync::Mutex<std::collections::VecDeque<tokio::time::Instant>>,
}

impl RateLimiter {
    /// A little more than a second, so that clocks on either side never see `max + 1` in one second.
    const WINDOW: Duration = Duration::from_millis(1_010);

    pub fn per_second(max: u32) -> Self {
        Self {
            max: max.max(1) as usize,
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
            if started.len() < self.max {
                started.push_back(now);
                return;
            }
            if let Some(oldest) = started.front() {
                tokio::time::sleep_until(*oldest + Self::WINDOW).await;
            }
        }
    }
}

/// The real client (async-stripe over rustls).
pub struct AsyncStripe {
    client: stripe::Client,
    limiter: RateLimiter,
}

impl fmt::Debug for AsyncStripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncStripe { .. }")
    }
}

impl AsyncStripe {
    /// `None` when no key is configured: every Stripe action then says so.
    pub fn from_config(config: &Config) -> Result<Option<Self>, StripeApiError> {
        let Some(key) = &config.stripe_key else {
            return Ok(None);
        };
        // Transient failures (409, 424, 429, 5xx, connection errors) are retried, up to three
        // attempts with async-stripe's exponential backoff, unless Stripe answers
        // `Stripe-Should-Retry: false`.
        let client = stripe::ClientBuilder::new(key.key.expose())
            .url(config.stripe_api_base.as_str())
            .timeout(Duration::from_secs(30))
            .request_strategy(stripe::RequestStrategy::ExponentialBackoff(3))
            .build()
            .map_err(|e| StripeApiError::Unexpected(e.to_string()))?;
        Ok(Some(Self {
            client,
            limiter: RateLimiter::per_second(config.stripe_rate_limit),
        }))
    }
}

impl AsyncStripe {
    /// A GET returning JSON. async-stripe decodes with miniserde; its JSON value is turned back into
    /// text for serde_json, so every field Stripe sent (known to async-stripe or not) is kept.
    async fn get(&self, path: String, query: Option<String>) -> Result<Value, StripeApiError> {
        self.limiter.acquire().await;
        let mut builder = RequestBuilder::new(StripeMethod::Get, path);
        builder.query = query;
        match builder.customize::<miniserde::json::Value>().send(&self.client).await {
            Ok(value) => serde_json::from_str(&miniserde::json::to_string(&value))
                .map_err(|e| StripeApiError::Unexpected(e.to_string())),
            Err(stripe::StripeError::Stripe(error, 404)) => {
                tracing::debug!(code = ?error.code, "object not found at Stripe");
                Err(StripeApiError::NotFound)
            }
            Err(stripe::StripeError::Stripe(error, status)) => Err(StripeApiError::Api {
                status,
                message: error.message.clone().unwrap_or_default(),
            }),
            Err(stripe::StripeError::Timeout) => Err(StripeApiError::Connection("timed out".into())),
            Err(stripe::StripeError::ClientError(e)) => Err(StripeApiError::Connection(e)),
            Err(e) => Err(StripeApiError::Unexpected(e.to_string())),
        }
    }
}

#[async_trait]
impl StripeApi for AsyncStripe {
    async fn retrieve(&self, resource: Resource, id: &str) -> Result<Value, StripeApiError> {
        if !valid_id(id) {
            return Err(StripeApiError::NotFound);
        }
        self.get(format!("{}/{id}", path(resource)), None).await
    }

    async fn list(
        &self,
        resource: Resource,
        starting_after: Option<&str>,
        created_gte: Option<i64>,
    ) -> Result<ListPage, StripeApiError> {
        let page = self
            .get(
                path(resource).to_string(),
                Some(list_query(resource, starting_after, created_gte)),
            )
            .await?;
        let data = match page.get("data") {
            Some(Value::Array(items)) => items.clone(),
            _ => return Err(StripeApiError::Unexpected("a list without data".into())),
        };
        Ok(ListPage {
            data,
            has_more: page.get("has_more").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// The client for this configuration: async-stripe with the key, or one that says Stripe is not
/// configured.
pub fn from_config(config: &Config) -> Result<std::sync::Arc<dyn StripeApi>, StripeApiError> {
    Ok(match AsyncStripe::from_config(config)? {
        Some(client) => std::sync::Arc::new(client),
        None => std::sync::Arc::new(NotConfigured),
    })
}

/// Used when no key is configured.
#[derive(Debug)]
pub struct NotConfigured;

#[async_trait]
impl StripeApi for NotConfigured {
    async fn retrieve(&self, _: Resource, _: &str) -> Result<Value, StripeApiError> {
        Err(StripeApiError::NotConfigured)
    }

    async fn list(&self, _: Resource, _: Option<&str>, _: Option<i64>) -> Result<ListPage, StripeApiError> {
        Err(StripeApiError::NotConfigured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limiter_spreads_requests_over_seconds() {
        let limiter = RateLimiter::per_second(3);
        let start = tokio::time::Instant::now();
        let mut starts = Vec::new();
        for _ in 0..7 {
            limiter.acquire().await;
            starts.push(start.elapsed());
        }
        // Three at once, then three more only once the first second has passed, and so on.
        assert!(starts[..3].iter().all(|t| *t < Duration::from_millis(500)));
        assert!(starts[3..6].iter().all(|t| *t >= RateLimiter::WINDOW));
        assert!(starts[6] >= RateLimiter::WINDOW * 2);
    }

    #[test]
    fn list_queries() {
        assert_eq!(list_query(Resource::Customer, None, None), "limit=100");
        assert_eq!(
            list_query(Resource::Subscription, Some("sub_9"), Some(1700)),
            "limit=100&starting_after=sub_9&created%5Bgte%5D=1700&status=all"
        );
        // A cursor that is not a Stripe id never reaches the URL.
        assert_eq!(list_query(Resource::Customer, Some("x&y=1"), None), "limit=100");
    }
}
