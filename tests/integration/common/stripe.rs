//! The one Stripe stand-in the tests use: an HTTP server on loopback that records every request
//! and answers with what the test says. A test gives it a function from the request to the reply
//! (async, so it may wait on a gate or delay); everything else (listening, recording, decoding the
//! form and the query, a `Request-Id` on every answer, and optionally replaying the first answer
//! for a repeated idempotency key, as Stripe does) is shared here.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use serde_json::{json, Value};

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The path with its query string, as sent.
    pub uri: String,
    pub query: HashMap<String, String>,
    /// The form-encoded body, decoded.
    pub form: HashMap<String, String>,
    pub body: String,
    pub headers: HeaderMap,
    /// The Unix second in which it arrived.
    pub second: u64,
    /// 1 for the first request, 2 for the second…
    pub n: usize,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    pub fn idempotency_key(&self) -> Option<String> {
        self.header("idempotency-key")
    }

    /// The path's segment after `prefix` (`/v1/customers/cus_1` after `/v1/customers/`).
    pub fn after<'a>(&'a self, prefix: &str) -> Option<&'a str> {
        self.path.strip_prefix(prefix)
    }
}

/// What the stand-in answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self::status(200, body)
    }

    pub fn status(status: u16, body: Value) -> Self {
        Reply {
            status: StatusCode::from_u16(status).expect("a valid status"),
            body,
            headers: Vec::new(),
        }
    }

    /// An error in Stripe's shape.
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        Self::status(status, json!({"error": {"type": kind, "message": message}}))
    }

    /// 404 as Stripe answers for an unknown object.
    pub fn not_found() -> Self {
        Self::status(
            404,
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such object"}}),
        )
    }

    /// A list page.
    pub fn list(data: Vec<Value>, has_more: bool) -> Self {
        Self::ok(json!({"object": "list", "data": data, "has_more": has_more}))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A running stand-in.
#[derive(Clone)]
pub struct StandIn {
    /// `http://127.0.0.1:port`, for `STRIPE_API_BASE`.
    pub url: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl StandIn {
    /// Answers every request with `answer`.
    pub async fn start<F, Fut>(answer: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        Self::start_with(false, answer).await
    }

    /// As `start`, and a POST repeating an idempotency key gets the first answer again without
    /// reaching `answer` (Stripe's idempotency).
    pub async fn replaying<F, Fut>(answer: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        Self::start_with(true, answer).await
    }

    async fn start_with<F, Fut>(replay: bool, answer: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let replies: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let (log, replies, answer) = (log.clone(), replies.clone(), answer.clone());
            async move {
                let decode = |text: &str| -> HashMap<String, String> {
                    url::form_urlencoded::parse(text.as_bytes()).into_owned().collect()
                };
                let request = {
                    let mut log = log.lock().unwrap();
                    let request = Request {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        uri: uri.to_string(),
                        query: decode(uri.query().unwrap_or_default()),
                        form: decode(&body),
                        body,
                        headers,
                        second: std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs(),
                        n: log.len() + 1,
                    };
                    log.push(request.clone());
                    request
                };
                let key = request.idempotency_key().filter(|_| replay);
                let replayed = key.as_ref().and_then(|k| replies.lock().unwrap().get(k).cloned());
                let reply = match replayed {
                    Some(reply) => reply.header("request-id", "req_replayed"),
                    None => {
                        let n = request.n;
                        let reply = answer(request).await;
                        if let Some(key) = key {
                            replies.lock().unwrap().insert(key, reply.clone());
                        }
                        let id = format!("req_{n}");
                        if reply.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("request-id")) {
                            reply
                        } else {
                            reply.header("request-id", &id)
                        }
                    }
                };
                let mut headers = HeaderMap::new();
                for (k, v) in &reply.headers {
                    headers.insert(
                        HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        HeaderValue::from_str(v).unwrap(),
                    );
                }
                (reply.status, headers, axum::Json(reply.body))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        StandIn { url, seen }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests with this method and path.
    pub fn calls(&self, method: &str, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    /// How many requests' path (with query) starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.uri.starts_with(prefix))
            .count()
    }
}

/// A page of `objects` (newest first, as Stripe lists) as Stripe answers a list call: objects
/// created within `created[gte]` and `created[lt]`, after the `starting_after` object (a place in
/// the whole list, so a cursor still counts when the filters change), `limit` of them (10 when
/// not given, as Stripe).
pub fn list_page(objects: &[Value], query: &HashMap<String, String>) -> Reply {
    let bound = |key: &str| query.get(key).and_then(|v| v.parse::<i64>().ok());
    let (gte, lt) = (bound("created[gte]"), bound("created[lt]"));
    let start = match query.get("starting_after") {
        Some(after) => match objects.iter().position(|o| o["id"].as_str() == Some(after.as_str())) {
            Some(at) => at + 1,
            None => return Reply::error(400, "invalid_request_error", "No such object for starting_after"),
        },
        None => 0,
    };
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    let mut matching = objects[start..].iter().filter(|o| {
        let created = o["created"].as_i64().unwrap_or(0);
        gte.is_none_or(|g| created >= g) && lt.is_none_or(|l| created < l)
    });
    let page: Vec<Value> = matching.by_ref().take(limit).cloned().collect();
    let has_more = matching.next().is_some();
    Reply::list(page, has_more)
}

/// Stripe's rate limit as the stand-in enforces it: at most `max` requests in any rolling second
/// (the rest get 429).
#[derive(Clone)]
pub struct RollingLimit {
    max: usize,
    started: Arc<Mutex<std::collections::VecDeque<std::time::Instant>>>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
}

impl RollingLimit {
    pub fn new(max: usize) -> Self {
        RollingLimit {
            max,
            started: Default::default(),
            refused: Default::default(),
        }
    }

    /// `None` when the request may go on, else the 429 to answer.
    pub fn check(&self) -> Option<Reply> {
        let now = std::time::Instant::now();
        let mut started = self.started.lock().unwrap();
        while started
            .front()
            .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(1))
        {
            started.pop_front();
        }
        if started.len() >= self.max {
            self.refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Some(Reply::error(429, "rate_limit_error", "Too many requests"));
        }
        started.push_back(now);
        None
    }

    /// Requests answered with 429 so far.
    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }
}
