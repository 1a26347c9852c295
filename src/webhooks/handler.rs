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

use super::endpoints::AccountSecrets;
use super::inbox::{GroupCommit, IncomingEvent};
use super::signature;
use crate::config::Config;
use crate::db::now_unix;

/// Stripe's events are far smaller; anything bigger is refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

fn refuse(status: StatusCode, reason: &'static str) -> Response {
    (status, Json(json!({ "error": reason }))).into_response()
}

/// The route's handler: the app state hands it the configuration (secrets, tolerance), the other
/// accounts (their secrets; connected accounts are registered there) and the inbox.
pub async fn receive(
    State(config): State<Arc<Config>>,
    State(accounts): State<Arc<AccountSecrets>>,
    State(inbox): State<Arc<GroupCommit>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let receiver = Receiver {
        config: &config,
        accounts: &accounts,
        inbox: &inbox,
    };
    let response = receiver.handle(&headers, &body).await;
    crate::observability::metrics()
        .webhook_ack_seconds
        .observe(started.elapsed());
    response
}

struct Receiver<'a> {
    config: &'a Config,
    accounts: &'a AccountSecrets,
    inbox: &'a GroupCommit,
}

/// Whose secret verified a delivery.
enum Verified {
    /// The environment's (`STRIPE_WEBHOOK_SECRET`).
    Environment,
    /// An account added in Settings or with the command line.
    Account(String),
}

impl Receiver<'_> {
    /// The environment's secrets first; then each enabled account's. `Err` is the response to
    /// send.
    async fn verify(&self, headers: &HeaderMap, body: &Bytes) -> Result<Verified, Response> {
        let m = crate::observability::metrics();
        let header = headers.get("stripe-signature").map(|v| v.as_bytes());
        let tolerance = self.config.webhooks.tolerance.as_secs() as i64;
        let now = now_unix();
        let own = &self.config.webhook_secrets;
        let first = (!own.is_empty()).then(|| signature::verify(header, body, own, tolerance, now));
        if let Some(Ok(_)) = first {
            return Ok(Verified::Environment);
        }
        let others = match self.accounts.current().await {
            Ok(others) => others,
            Err(e) => {
                tracing::error!(error = %e, "could not read the accounts' webhook secrets; answering 503 so Stripe retries");
                m.webhooks_received.inc("unavailable");
                return Err(refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "could not check the signature; retry later",
                ));
            }
        };
        for (account, secrets) in others.iter().filter(|(_, s)| !s.is_empty()) {
            if signature::verify(header, body, secrets, tolerance, now).is_ok() {
                return Ok(Verified::Account(account.clone()));
            }
        }
        let Some(Err(e)) = first.or_else(|| {
            others
                .iter()
                .find(|(_, s)| !s.is_empty())
                .map(|(_, s)| signature::verify(header, body, s, tolerance, now))
        }) else {
            tracing::error!("a webhook arrived but no signing secret is configured (STRIPE_WEBHOOK_SECRET or an account's); answering 503 so Stripe retries");
            m.webhooks_received.inc("unavailable");
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhook signing secret not configured",
            ));
        };
        tracing::warn!(reason = %e, bytes = body.len(), "webhook refused: bad signature");
        m.webhooks_received.inc("refused");
        Err(refuse(StatusCode::BAD_REQUEST, "invalid signature"))
    }

    async fn handle(&self, headers: &HeaderMap, body: &Bytes) -> Response {
        let verified = match self.verify(headers, body).await {
            Ok(v) => v,
            Err(response) => return response,
        };
        self.store(verified, body).await
    }

    async fn store(&self, verified: Verified, body: &Bytes) -> Response {
        let m = crate::observability::metrics();
        let Ok(text) = std::str::from_utf8(body) else {
            tracing::warn!(bytes = body.len(), "webhook refused: body is not UTF-8");
            m.webhooks_received.inc("refused");
            return refuse(StatusCode::BAD_REQUEST, "body is not UTF-8");
        };
        let mut event = match IncomingEvent::parse(text) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(reason, "webhook refused: not a Stripe event");
                m.webhooks_received.inc("refused");
                return refuse(StatusCode::BAD_REQUEST, reason);
            }
        };
        if let Verified::Account(account) = verified {
            event.received_for = Some(account);
        }
        let connected = event.account.clone().map(|account| {
            // `account.updated` of a connected account carries the account itself.
            let object = (event.event_type == "account.updated")
                .then(|| serde_json::from_str::<serde_json::Value>(text).ok())
                .flatten()
                .and_then(|v| v.get("data").and_then(|d| d.get("object")).cloned());
            (account, event.received_for.clone(), event.livemode, object)
        });
        let (id, event_type) = (event.id.clone(), event.event_type.clone());
        match self.inbox.store(event).await {
            Ok(inserted) => {
                m.webhooks_received.inc(if inserted { "stored" } else { "duplicate" });
                tracing::debug!(event_id = %id, event_type = %event_type, duplicate = !inserted, "webhook event stored");
                if let Some((account, platform, livemode, object)) = connected {
                    // The event is stored: registering its account is a convenience, and a fault
                    // here is logged, never a reason for Stripe to send it again.
                    if let Err(e) = self
                        .accounts
                        .register_connected(&account, platform.as_deref(), livemode, object.as_ref())
                        .await
                    {
                        tracing::warn!(event_id = %id, account = %account, error = %e, "could not register a connected account");
                    }
                }
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
}
