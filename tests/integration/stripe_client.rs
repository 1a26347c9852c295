//! The Stripe boundary against a scripted stand-in on loopback: retries with backoff, the same
//! idempotency key on every retry, `Stripe-Should-Retry`, typed errors and request ids.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::stripe::{Reply, Request, StandIn};
use serde_json::{json, Value};
use tally::config::RetryPolicy;
use tally::stripe::{ErrorKind, Pause, RequestBuilder, StripeApi, StripeMethod, Timeouts, Transport};

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    idempotency_key: Option<String>,
    stripe_version: Option<String>,
    authorization: Option<String>,
    body: String,
}

/// Answers each request with the next scripted (status, extra headers, body); 200 `{}` when the
/// script is used up. Every answer carries a `Request-Id` (`req_1`, `req_2`…).
struct Scripted {
    base: String,
    stripe: StandIn,
}

impl Scripted {
    fn seen(&self) -> Vec<Seen> {
        self.stripe
            .requests()
            .into_iter()
            .map(|r| Seen {
                method: r.method.clone(),
                uri: r.uri.clone(),
                idempotency_key: r.idempotency_key(),
                stripe_version: r.header("stripe-version"),
                authorization: r.header("authorization"),
                body: r.body,
            })
            .collect()
    }
}

type Script = Vec<(u16, Vec<(&'static str, &'static str)>, Value)>;

async fn stand_in(script: Script) -> Scripted {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let stripe = StandIn::start(move |_: Request| {
        let script = script.clone();
        async move {
            let (status, extra, body) =
                script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or((200, vec![], json!({"id": "obj_1", "object": "thing"})));
            extra
                .into_iter()
                .fold(Reply::status(status, body), |reply, (k, v)| reply.header(k, v))
        }
    })
    .await;
    Scripted {
        base: stripe.url.clone(),
        stripe,
    }
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(40),
        max_delay: Duration::from_millis(400),
    }
}

/// The waits a transport chose between attempts (noted, not slept).
type Waits = std::sync::Arc<std::sync::Mutex<Vec<Duration>>>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn client(base: &str, retry: RetryPolicy) -> Transport {
    Transport::new("sk_test_51client", base, 100, retry, Timeouts::default()).unwrap()
}

fn post(path: &str, form: &str) -> RequestBuilder {
    let mut request = RequestBuilder::new(StripeMethod::Post, path);
    request.body = Some(form.to_string());
    request
}

fn api_error(message: &str) -> Value {
    json!({"error": {"type": "api_error", "message": message}})
}

#[tokio::test]
async fn a_429_is_retried_in_the_next_window_then_succeeds() {
    let s = stand_in(vec![
        (
            429,
            vec![],
            json!({"error": {"type": "invalid_request_error", "code": "rate_limit"}}),
        ),
        (
            429,
            vec![],
            json!({"error": {"type": "invalid_request_error", "code": "rate_limit"}}),
        ),
    ])
    .await;
    let waits = Waits::default();
    let response = client(&s.base, fast_retries(4))
        .with_pause(Pause::Note(waits.clone()))
        .send(RequestBuilder::new(StripeMethod::Get, "/customers/cus_1"), None)
        .await
        .unwrap();
    let seen = s.seen();
    assert_eq!(seen.len(), 3, "two refusals, then the answer");
    assert_eq!(response.request_id.as_deref(), Some("req_3"));
    // Rate limited: each retry waits for Stripe's next one-second window (a retry within the same
    // second is refused again), whatever the shorter backoff says.
    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert!(
        waits
            .iter()
            .all(|w| *w >= tally::stripe::RateLimiter::WINDOW && *w < ms(2_000)),
        "{waits:?}"
    );
    assert!(seen.iter().all(|r| r.uri == "/v1/customers/cus_1" && r.method == "GET"));
    assert!(
        seen.iter().all(|r| r.idempotency_key.is_none()),
        "GETs carry no idempotency key"
    );
    assert_eq!(seen[0].stripe_version.as_deref(), Some(tally::stripe::API_VERSION));
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer sk_test_51client"));
}

#[tokio::test]
async fn a_500_then_success_keeps_the_idempotency_key() {
    let s = stand_in(vec![
        (500, vec![], api_error("try again")),
        (502, vec![], api_error("again")),
    ])
    .await;
    let response = client(&s.base, fast_retries(4))
        .send(post("/refunds", "charge=ch_1&amount=500"), Some("refund-form-42"))
        .await
        .unwrap();
    let seen = s.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.idempotency_key.as_deref(), Some("refund-form-42"));
        assert_eq!(request.body, "charge=ch_1&amount=500");
    }
    assert_eq!(response.idempotency_key.as_deref(), Some("refund-form-42"));
    assert_eq!(response.body["id"], "obj_1");
}

#[tokio::test]
async fn a_post_without_a_key_gets_one_random_key_for_all_its_retries() {
    let s = stand_in(vec![(503, vec![], api_error("busy"))]).await;
    let transport = client(&s.base, fast_retries(3));
    transport.send(post("/customers", "email=a%40b.c"), None).await.unwrap();
    transport.send(post("/customers", "email=a%40b.c"), None).await.unwrap();
    let keys: Vec<String> = s.seen().iter().map(|r| r.idempotency_key.clone().unwrap()).collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0], keys[1], "a retry reuses the key");
    assert_ne!(keys[1], keys[2], "a new request gets a new key");
}

#[tokio::test]
async fn stripe_should_retry_false_stops_at_once() {
    let s = stand_in(vec![(
        500,
        vec![("stripe-should-retry", "false")],
        api_error("do not retry"),
    )])
    .await;
    let error = client(&s.base, fast_retries(4))
        .send(post("/refunds", "charge=ch_1"), Some("k1"))
        .await
        .unwrap_err();
    assert_eq!(s.seen().len(), 1);
    assert_eq!(error.kind, ErrorKind::Api);
    assert_eq!(error.request_id.as_deref(), Some("req_1"));
}

#[tokio::test]
async fn stripe_should_retry_true_retries_even_a_409() {
    let s = stand_in(vec![(
        409,
        vec![("stripe-should-retry", "true")],
        json!({"error": {"type": "invalid_request_error", "code": "lock_timeout"}}),
    )])
    .await;
    client(&s.base, fast_retries(4))
        .send(post("/subscriptions/sub_1", "cancel_at_period_end=true"), Some("k2"))
        .await
        .unwrap();
    assert_eq!(s.seen().len(), 2);
}

#[tokio::test]
async fn client_errors_are_typed_and_not_retried() {
    let s = stand_in(vec![
        (
            400,
            vec![],
            json!({"error": {"type": "invalid_request_error", "param": "amount", "message": "Refund amount ($20.00) is greater than charge amount ($10.00)"}}),
        ),
        (
            402,
            vec![],
            json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}}),
        ),
        (401, vec![], json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****ient"}})),
        (404, vec![], json!({"error": {"type": "invalid_request_error", "code": "resource_missing"}})),
    ])
    .await;
    let transport = client(&s.base, fast_retries(4));
    let invalid = transport.send(post("/refunds", "amount=2000"), None).await.unwrap_err();
    assert_eq!(invalid.kind, ErrorKind::InvalidRequest);
    assert_eq!(invalid.param.as_deref(), Some("amount"));
    assert!(invalid.to_string().contains("greater than charge amount"), "{invalid}");
    let card = transport
        .send(post("/payment_intents", "amount=100"), None)
        .await
        .unwrap_err();
    assert_eq!(card.kind, ErrorKind::Card);
    assert_eq!(card.admin_message(), "The card was declined (insufficient funds).");
    let auth = transport
        .send(RequestBuilder::new(StripeMethod::Get, "/balance"), None)
        .await
        .unwrap_err();
    assert_eq!(auth.kind, ErrorKind::Authentication);
    assert!(!auth.to_string().contains("sk_test"), "{auth}");
    let missing = transport
        .retrieve(tally::domain::resource::Resource::Customer, "cus_x")
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);
    assert_eq!(missing.request_id.as_deref(), Some("req_4"));
    assert_eq!(s.seen().len(), 4, "none of them was retried");
}

#[tokio::test]
async fn retries_give_up_after_the_last_attempt() {
    let s = stand_in(vec![
        (503, vec![], api_error("down")),
        (503, vec![], api_error("down")),
        (503, vec![], api_error("down")),
    ])
    .await;
    let error = client(&s.base, fast_retries(3))
        .send(RequestBuilder::new(StripeMethod::Get, "/charges/ch_1"), None)
        .await
        .unwrap_err();
    assert_eq!(s.seen().len(), 3);
    assert_eq!(error.kind, ErrorKind::Api);
    assert!(error.is_transient());
}

#[tokio::test]
async fn connection_errors_are_retried_and_then_reported() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let waits = Waits::default();
    let error = client(&base, fast_retries(3))
        .with_pause(Pause::Note(waits.clone()))
        .send(RequestBuilder::new(StripeMethod::Get, "/customers"), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connection);
    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 2, "it backed off between its three attempts: {waits:?}");
    assert!(waits[0] >= ms(20) && waits[1] >= ms(40), "{waits:?}");
    assert_eq!(
        error.admin_message(),
        "Could not reach Stripe; check the network and try again."
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let s = stand_in(vec![(
        429,
        vec![("retry-after", "2")],
        json!({"error": {"type": "invalid_request_error"}}),
    )])
    .await;
    let waits = Waits::default();
    client(
        &s.base,
        RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        },
    )
    .with_pause(Pause::Note(waits.clone()))
    .send(RequestBuilder::new(StripeMethod::Get, "/customers"), None)
    .await
    .unwrap();
    // Stripe's Retry-After (2 s) wins over the 5-10 ms backoff and over the one-second window a
    // 429 waits at least.
    assert_eq!(*waits.lock().unwrap(), vec![Duration::from_secs(2)]);
}

#[tokio::test]
async fn waiting_for_the_request_budget_is_bounded_with_a_clear_error() {
    let s = stand_in(vec![]).await;
    let timeouts = Timeouts {
        budget_wait: Duration::from_millis(50),
        ..Timeouts::default()
    };
    // One request a second: of three sent at once, the later ones would wait about a second.
    let client =
        std::sync::Arc::new(Transport::new("sk_test_51client", &s.base, 1, fast_retries(1), timeouts).unwrap());
    let sends: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .send(RequestBuilder::new(StripeMethod::Get, "/customers/cus_1"), None)
                    .await
            })
        })
        .collect();
    let mut refused = 0;
    for send in sends {
        if let Err(e) = send.await.unwrap() {
            assert_eq!(e.kind, ErrorKind::RateLimit);
            assert!(
                e.admin_message().contains("budget of Stripe requests"),
                "{}",
                e.admin_message()
            );
            refused += 1;
        }
    }
    assert!(refused >= 1, "a request waited past the bound");
    assert_eq!(s.seen().len(), 3 - refused, "nothing was sent for a refused request");
}
