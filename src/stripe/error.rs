//! Stripe's errors, typed, with messages an admin understands. Stripe's own text is kept for the
//! logs and for admins (it explains invalid requests well); authentication errors never repeat it,
//! since it names part of the key.

use std::fmt;

use serde_json::Value;

/// What kind of failure, following Stripe's error types and status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No `STRIPE_SECRET_KEY` is set.
    NotConfigured,
    /// A card was declined or could not be charged (`card_error`).
    Card,
    /// The request was refused as invalid (`invalid_request_error`, 400).
    InvalidRequest,
    /// The object does not exist (404).
    NotFound,
    /// The key is wrong or revoked (401).
    Authentication,
    /// The key may not do this (403).
    Permission,
    /// Too many requests (429), after retrying.
    RateLimit,
    /// The idempotency key was reused with other parameters (`idempotency_error`).
    Idempotency,
    /// Stripe could not be reached, or did not answer in time, after retrying.
    Connection,
    /// Stripe failed (5xx), after retrying.
    Api,
    /// Stripe answered something Tally could not read.
    Unexpected,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotConfigured => "not_configured",
            ErrorKind::Card => "card_error",
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Idempotency => "idempotency_error",
            ErrorKind::Connection => "api_connection_error",
            ErrorKind::Api => "api_error",
            ErrorKind::Unexpected => "unexpected",
        }
    }
}

/// A failed Stripe request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeApiError {
    pub kind: ErrorKind,
    /// The HTTP status, when Stripe answered.
    pub status: Option<u16>,
    /// Stripe's error code (`resource_missing`, `card_declined`, …).
    pub code: Option<Box<str>>,
    /// For declined cards: why (`insufficient_funds`, …).
    pub decline_code: Option<Box<str>>,
    /// The parameter Stripe objected to.
    pub param: Option<Box<str>>,
    /// Stripe's message (never shown for authentication errors).
    pub message: Option<Box<str>>,
    /// Stripe's `Request-Id`, for the audit log and for Stripe support.
    pub request_id: Option<Box<str>>,
}

impl StripeApiError {
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            status: None,
            code: None,
            decline_code: None,
            param: None,
            message: None,
            request_id: None,
        }
    }

    pub fn not_configured() -> Self {
        Self::new(ErrorKind::NotConfigured)
    }

    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound)
    }

    pub fn connection(detail: impl Into<String>) -> Self {
        Self {
            message: Some(detail.into().into_boxed_str()),
            ..Self::new(ErrorKind::Connection)
        }
    }

    /// Tally's own budget of Stripe requests stayed used up for the whole wait (a burst of
    /// requests); nothing was sent.
    pub fn budget_exhausted() -> Self {
        Self {
            message: Some("Tally's budget of Stripe requests is in use; try again in a moment.".into()),
            ..Self::new(ErrorKind::RateLimit)
        }
    }

    pub fn unexpected(detail: impl Into<String>) -> Self {
        Self {
            message: Some(detail.into().into_boxed_str()),
            ..Self::new(ErrorKind::Unexpected)
        }
    }

    /// Reads Stripe's error body (`{"error": {"type", "code", "message", …}}`) and status.
    pub fn from_response(status: u16, body: &[u8], request_id: Option<String>) -> Self {
        let error = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("error").cloned())
            .unwrap_or(Value::Null);
        let text = |key: &str| error.get(key).and_then(Value::as_str).map(Box::from);
        let kind = match (status, text("type").as_deref()) {
            (401, _) => ErrorKind::Authentication,
            (403, _) => ErrorKind::Permission,
            (404, _) => ErrorKind::NotFound,
            (429, _) => ErrorKind::RateLimit,
            (_, Some("card_error")) => ErrorKind::Card,
            (_, Some("idempotency_error")) => ErrorKind::Idempotency,
            (500..=599, _) | (_, Some("api_error")) => ErrorKind::Api,
            (400..=499, _) => ErrorKind::InvalidRequest,
            _ => ErrorKind::Unexpected,
        };
        Self {
            kind,
            status: Some(status),
            code: text("code"),
            decline_code: text("decline_code"),
            param: text("param"),
            message: if kind == ErrorKind::Authentication {
                None
            } else {
                text("message")
            },
            request_id: request_id.map(String::into_boxed_str),
        }
    }

    /// A sentence for the admin: what happened and what to do.
    pub fn admin_message(&self) -> String {
        let stripe_said = |fallback: &str| {
            self.message
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(|m| format!("Stripe refused the request: {m}"))
                .unwrap_or_else(|| fallback.to_string())
        };
        match self.kind {
            ErrorKind::NotConfigured => "Stripe is not configured: set STRIPE_SECRET_KEY and restart Tally.".into(),
            ErrorKind::Card => {
                let why = self
                    .decline_code
                    .as_deref()
                    .or(self.code.as_deref())
                    .map(|c| c.replace('_', " "));
                match why {
                    Some(why) => format!("The card was declined ({why})."),
                    None => "The card was declined.".into(),
                }
            }
            ErrorKind::InvalidRequest => stripe_said("Stripe refused the request as invalid."),
            ErrorKind::NotFound => {
                "Stripe has no such object (it may have been deleted, or belong to the other mode).".into()
            }
            ErrorKind::Authentication => {
                "Stripe did not accept the API key: check STRIPE_SECRET_KEY (it may have been rolled or revoked)."
                    .into()
            }
            ErrorKind::Permission => {
                "The API key may not do this: give the restricted key this permission in Stripe's dashboard.".into()
            }
            // Not from Stripe (no status): Tally's own request budget (`budget_exhausted`).
            ErrorKind::RateLimit if self.status.is_none() => self
                .message
                .as_deref()
                .unwrap_or("Tally's budget of Stripe requests is in use; try again in a moment.")
                .to_string(),
            ErrorKind::RateLimit => "Stripe is limiting requests right now; try again in a minute.".into(),
            ErrorKind::Idempotency => {
                "This action was already sent to Stripe with different details; reload the page and try again.".into()
            }
            ErrorKind::Connection => "Could not reach Stripe; check the network and try again.".into(),
            ErrorKind::Api => "Stripe had an internal error; try again in a few minutes.".into(),
            ErrorKind::Unexpected => "Stripe answered in a way Tally did not understand; see the server log.".into(),
        }
    }

    /// Worth trying again with the same idempotency key.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Connection | ErrorKind::RateLimit | ErrorKind::Api)
    }
}

impl fmt::Display for StripeApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.admin_message())?;
        if let Some(id) = &self.request_id {
            write!(f, " (Stripe request {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for StripeApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> StripeApiError {
        StripeApiError::from_response(status, body.as_bytes(), Some("req_1".into()))
    }

    #[test]
    fn kinds_follow_stripe() {
        let card = parse(
            402,
            r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}"#,
        );
        assert_eq!(card.kind, ErrorKind::Card);
        assert_eq!(card.admin_message(), "The card was declined (insufficient funds).");
        let invalid = parse(
            400,
            r#"{"error":{"type":"invalid_request_error","param":"amount","message":"Refund amount is greater than unrefunded amount on charge."}}"#,
        );
        assert_eq!(invalid.kind, ErrorKind::InvalidRequest);
        assert_eq!(invalid.param.as_deref(), Some("amount"));
        assert!(invalid.admin_message().contains("greater than unrefunded amount"));
        assert_eq!(
            parse(404, r#"{"error":{"type":"invalid_request_error"}}"#).kind,
            ErrorKind::NotFound
        );
        assert_eq!(parse(429, "{}").kind, ErrorKind::RateLimit);
        assert_eq!(parse(503, "not json").kind, ErrorKind::Api);
        assert_eq!(
            parse(400, r#"{"error":{"type":"idempotency_error"}}"#).kind,
            ErrorKind::Idempotency
        );
        assert_eq!(parse(403, "{}").kind, ErrorKind::Permission);
    }

    #[test]
    fn authentication_errors_never_repeat_stripes_text() {
        let e = parse(
            401,
            r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****abcd"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::Authentication);
        assert!(e.message.is_none());
        assert!(!e.to_string().contains("sk_test"));
        assert!(e.to_string().contains("req_1"));
    }
}
