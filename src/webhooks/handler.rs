//! `POST /stripe/webhook`: verify the signature over the raw bytes, store the event, and only then
//! answer 2xx. Malformed requests get a 4xx with a short reason; a database fault gets 503 so
//! Stripe retries.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::inbox::{GroupCommit, IncomingEvent};
use super::signature;
use crate::config::Config;
use crate::db::now_unix;

/// Stripe's events are far smaller; anything bigger is refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

fn refuse(status: StatusCode, reason: &'static str) -> Response {
    (status, Json(json!({ "error": reason }))).into_response()
}

/// The route's handler: the app state hands it the configuration (secrets, tolerance) and the
/// inbox, nothing more.
pub async fn receive(
    State(config): State<Arc<Config>>,
    State(inbox): State<Arc<GroupCommit>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let response = handle(&config, &inbox, &headers, &body).await;
    crate::observability::metrics()
        .webhook_ack_seconds
        .observe(started.elapsed());
    response
}

async fn handle(config: &Config, inbox: &GroupCommit, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = crate::observability::metrics();
    if config.webhook_secrets.is_empty() {
        tracing::error!("a webhook arrived but STRIPE_WEBHOOK_SECRET is not set; answering 503 so Stripe retries");
        m.webhooks_received.inc("unavailable");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "webhook signing secret not configured");
    }
    let header = headers.get("stripe-signature").map(|v| v.as_bytes());
    let tolerance = config.webhooks.tolerance.as_secs() as i64;
    if let Err(e) = signature::verify(header, body, &config.webhook_secrets, tolerance, now_unix()) {
        tracing::warn!(reason = %e, bytes = body.len(), "webhook refused: bad signature");
        m.webhooks_received.inc("refused");
        return refuse(StatusCode::BAD_REQUEST, "invalid signature");
    }
    let Ok(text) = std::str::from_utf8(body) else {
        tracing::warn!(bytes = body.len(), "webhook refused: body is not UTF-8");
        m.webhooks_received.inc("refused");
        return refuse(StatusCode::BAD_REQUEST, "body is not UTF-8");
    };
    let event = match IncomingEvent::parse(text) {
        Ok(event) => event,
        Err(reason) => {
            tracing::warn!(reason, "webhook refused: not a Stripe event");
            m.webhooks_received.inc("refused");
            return refuse(StatusCode::BAD_REQUEST, reason);
        }
    };
    let (id, event_type) = (event.id.clone(), event.event_type.clone());
    match inbox.store(event).await {
        Ok(inserted) => {
            m.webhooks_received.inc(if inserted { "stored" } else { "duplicate" });
            tracing::debug!(event_id = %id, event_type = %event_type, duplicate = !inserted, "webhook event stored");
            (
                StatusCode::OK,
                Json(json!({ "received": true, "duplicate": !inserted })),
            )
                .into_response()
        }
        Err(e) => {
            m.webhooks_received.inc("unavailable");
            tracing::error!(event_id = %id, error = %e, "could not store a webhook event; answering 503 so Stripe retries");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not store the event; retry later",
            )
        }
    }
}
