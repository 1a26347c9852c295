//! Tally's HTTP transport for Stripe. async-stripe shapes the requests (its typed request builders
//! produce the path, query and form body); this sends them, because Tally needs what async-stripe's
//! client does not expose: Stripe's `Request-Id` for the audit log, `Stripe-Should-Retry` and
//! `Retry-After`, jittered backoff, and one idempotency key chosen by the caller and kept across
//! every retry.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::error::{ErrorKind, StripeApiError};
use super::RateLimiter;
use crate::config::RetryPolicy;

/// The API version every request pins (async-stripe's types are generated for it).
pub const API_VERSION: &str = "2026-09-30.endive";

/// A random number in [0, 1), from the operating system's generator (through uuid's v4).
fn random_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq)]
pub struct StripeResponse {
    pub body: Value,
    pub request_id: Option<String>,
    /// The idempotency key sent (POSTs only).
    pub idempotency_key: Option<String>,
}

/// Connection and request timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// One attempt, from sending to the whole body read.
    pub request: Duration,
    /// How long a request waits for Tally's own request budget (the rate limiter) before it
    /// fails with a clear error instead of queueing without end.
    pub budget_wait: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
            budget_wait: Duration::from_secs(30),
        }
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How the transport waits before a retry: it sleeps (always, in Tally), or, for a test, notes
/// the wait and goes on, so the test sees each wait chosen without spending it.
#[derive(Clone, Debug, Default)]
pub enum Pause {
    #[default]
    Sleep,
    Note(std::sync::Arc<std::sync::Mutex<Vec<Duration>>>),
}

impl Pause {
    async fn wait(&self, wait: Duration) {
        match self {
            Pause::Sleep => tokio::time::sleep(wait).await,
            Pause::Note(waits) => waits.lock().unwrap_or_else(|p| p.into_inner()).push(wait),
        }
    }
}

pub struct Transport {
    client: HttpsClient,
    /// `https://api.stripe.com/` or a stand-in; always ends with `/`.
    base: String,
    authorization: HeaderValue,
    limiter: RateLimiter,
    retry: RetryPolicy,
    timeouts: Timeouts,
    pause: Pause,
    /// `Stripe-Account`: requests on behalf of a connected account (Stripe Connect).
    on_behalf_of: Option<HeaderValue>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
enum Attempt {
    Done(StripeResponse),
    Retry {
        error: StripeApiError,
        wait: Option<Duration>,
    },
    Fail(StripeApiError),
}

impl Transport {
    /// The most requests a second it starts.
    pub fn rate_limit(&self) -> u32 {
        self.limiter.max()
    }

    pub fn new(
        secret_key: &str,
        base: &str,
        rate_limit: u32,
        retry: RetryPolicy,
        timeouts: Timeouts,
    ) -> Result<Self, StripeApiError> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {secret_key}"))
            .map_err(|_| StripeApiError::unexpected("the Stripe key is not a valid header value"))?;
        authorization.set_sensitive(true);
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeouts.connect));
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let mut base = base.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        Ok(Self {
            client,
            base,
            authorization,
            limiter: RateLimiter::per_second(rate_limit),
            retry,
            timeouts,
            pause: Pause::Sleep,
            on_behalf_of: None,
        })
    }

    /// The same transport, acting for a connected account: every request carries
    /// `Stripe-Account: account` (the platform's key authenticates it).
    pub fn on_behalf_of(mut self, account: &str) -> Result<Self, StripeApiError> {
        if !account.starts_with("acct_") || !super::valid_id(account) {
            return Err(StripeApiError::unexpected("not a Stripe account id"));
        }
        self.on_behalf_of =
            Some(HeaderValue::from_str(account).map_err(|_| StripeApiError::unexpected("not a Stripe account id"))?);
        Ok(self)
    }

    /// The same transport, waiting between attempts as `pause` says.
    pub fn with_pause(mut self, pause: Pause) -> Self {
        self.pause = pause;
        self
    }

    /// Sends a request shaped by async-stripe (or by hand), retrying transient failures. POSTs
    /// carry `idempotency_key` (a random one when `None`), the same on every attempt.
    pub async fn send(
        &self,
        request: RequestBuilder,
        idempotency_key: Option<&str>,
    ) -> Result<StripeResponse, StripeApiError> {
        self.send_versioned(request, idempotency_key, None).await
    }

    /// As `send`, with another API version than the pinned one (ephemeral keys for mobile SDKs).
    pub async fn send_versioned(
        &self,
        request: RequestBuilder,
        idempotency_key: Option<&str>,
        stripe_version: Option<&str>,
    ) -> Result<StripeResponse, StripeApiError> {
        let version = match stripe_version {
            None => HeaderValue::from_static(API_VERSION),
            Some(v) => HeaderValue::from_str(v)
                .ok()
                .filter(|_| !v.is_empty() && v.len() <= 64)
                .ok_or_else(|| StripeApiError::unexpected("the Stripe API version is not valid"))?,
        };
        let method = match request.method {
            StripeMethod::Get => Method::GET,
            StripeMethod::Post => Method::POST,
            StripeMethod::Delete => Method::DELETE,
        };
        let key = match (&method, idempotency_key) {
            (&Method::POST, Some(key)) => Some(key.to_string()),
            (&Method::POST, None) => Some(uuid::Uuid::new_v4().to_string()),
            _ => None,
        };
        if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
            return Err(StripeApiError::unexpected(
                "an idempotency key must have 1 to 255 characters",
            ));
        }
        let mut uri = format!("{}v1{}", self.base, request.path);
        if let Some(query) = request.query.as_deref().filter(|q| !q.is_empty()) {
            uri.push('?');
            uri.push_str(query);
        }
        let body = Bytes::from(request.body.unwrap_or_default());
        let mut attempt = 1;
        loop {
            let asked = std::time::Instant::now();
            if tokio::time::timeout(self.timeouts.budget_wait, self.limiter.acquire())
                .await
                .is_err()
            {
                return Err(StripeApiError::budget_exhausted());
            }
            let sent = std::time::Instant::now();
            let outcome = self.attempt(&method, &uri, &body, key.as_deref(), &version).await;
            tracing::debug!(
                path = %request.path,
                attempt,
                budget_ms = sent.duration_since(asked).as_millis() as u64,
                answer_ms = sent.elapsed().as_millis() as u64,
                "stripe request"
            );
            let (error, wait) = match outcome {
                Attempt::Done(mut response) => {
                    response.idempotency_key = key;
                    return Ok(response);
                }
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { error, wait } => (error, wait),
            };
            if attempt >= self.retry.max_attempts {
                tracing::warn!(method = %method, path = %request.path, attempts = attempt, kind = error.kind.as_str(), request_id = error.request_id.as_deref(), "Stripe request failed");
                return Err(error);
            }
            let backoff = self.retry.delay(attempt, random_unit());
            let wait = wait.map_or(backoff, |w| w.max(backoff)).min(self.retry.max_delay * 4);
            // Rate limited: Stripe counts requests over a rolling second, so a retry within the
            // same second would be refused again; it waits for the next window at least.
            let wait = if error.kind == ErrorKind::RateLimit {
                wait.max(RateLimiter::WINDOW)
            } else {
                wait
            };
            tracing::info!(method = %method, path = %request.path, attempt, kind = error.kind.as_str(), wait_ms = wait.as_millis() as u64, "retrying a Stripe request");
            self.pause.wait(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        uri: &str,
        body: &Bytes,
        key: Option<&str>,
        version: &HeaderValue,
    ) -> Attempt {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(USER_AGENT, concat!("Tally/", env!("CARGO_PKG_VERSION")))
            .header(HeaderName::from_static("stripe-version"), version.clone());
        if let Some(key) = key {
            builder = builder.header(HeaderName::from_static("idempotency-key"), key);
        }
        if let Some(account) = &self.on_behalf_of {
            builder = builder.header(HeaderName::from_static("stripe-account"), account.clone());
        }
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let request = match builder.body(Full::new(body.clone())) {
            Ok(r) => r,
            Err(e) => return Attempt::Fail(StripeApiError::unexpected(format!("could not build the request: {e}"))),
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| e.to_string())?;
            let (parts, incoming) = response.into_parts();
            let bytes = incoming.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>((parts, bytes))
        };
        let (parts, bytes) = match tokio::time::timeout(self.timeouts.request, exchange).await {
            Ok(Ok(done)) => done,
            // Connection errors and timeouts: a POST is safe to retry thanks to its idempotency key.
            Ok(Err(e)) => {
                return Attempt::Retry {
                    error: StripeApiError::connection(e),
                    wait: None,
                }
            }
            Err(_) => {
                return Attempt::Retry {
                    error: StripeApiError::connection("timed out"),
                    wait: None,
                }
            }
        };
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("request-id");
        let status = parts.status.as_u16();
        if parts.status.is_success() {
            return match parse_body(bytes).await {
                Ok(body) => Attempt::Done(StripeResponse {
                    body,
                    request_id,
                    idempotency_key: None,
                }),
                Err(e) => Attempt::Fail(StripeApiError {
                    request_id: request_id.map(String::into_boxed_str),
                    ..StripeApiError::unexpected(format!("the answer is not JSON: {e}"))
                }),
            };
        }
        let error = StripeApiError::from_response(status, &bytes, request_id);
        let should_retry = match header("stripe-should-retry").as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => matches!(status, 409 | 424 | 429 | 500..=504) && error.kind != ErrorKind::Idempotency,
        };
        if should_retry {
            let wait = header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Attempt::Retry { error, wait }
        } else {
            Attempt::Fail(error)
        }
    }
}

/// Answers larger than this are parsed on a blocking thread.
const LARGE_ANSWER: usize = 32 * 1024;

/// Parses an answer's JSON. A list page can be hundreds of KB (a backfill parses dozens a
/// second): parsed on the async workers, it would hold up every other task for milliseconds.
async fn parse_body(bytes: Bytes) -> Result<Value, String> {
    if bytes.len() <= LARGE_ANSWER {
        return serde_json::from_slice(&bytes).map_err(|e| e.to_string());
    }
    tokio::task::spawn_blocking(move || serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, 0.0), Duration::from_millis(250));
        assert_eq!(policy.delay(1, 1.0), Duration::from_millis(500));
        assert_eq!(policy.delay(2, 1.0), Duration::from_secs(1));
        assert_eq!(policy.delay(3, 0.5), Duration::from_millis(1500));
        assert_eq!(policy.delay(30, 1.0), Duration::from_secs(8));
    }

    #[test]
    fn random_units_are_in_range_and_vary() {
        let draws: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }
}
