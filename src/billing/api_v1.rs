//! The payments API for the operator's own backend or mobile app (`/api/v1/`): the three calls a
//! mobile checkout needs. Authenticated with API keys from Settings, rate-limited per key,
//! validated before Stripe is called, `Idempotency-Key` passed through, errors as
//! `{"error": {"type", "message", "param"}}`. Described by `/api/v1/openapi.json`.
//!
//! It acts for the environment's Stripe account (`STRIPE_SECRET_KEY`): customers and prices of
//! other accounts are not its to bill.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::db::api_keys;
use crate::domain::api_keys::ApiKey;
use crate::domain::money;
use crate::domain::resource::Resource;
use crate::state::AppState;
use crate::stripe::{ops, valid_id, ErrorKind, StripeApiError};

/// Largest amount the API accepts (Stripe's limit for most currencies), minor units.
pub const MAX_AMOUNT: i64 = 99_999_999;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/customers", post(create_customer))
        .route("/payment-intents", post(create_payment_intent))
        .route("/subscriptions", post(create_subscription))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "No such endpoint.",
                None,
            )
        })
}

/// An error in Stripe's shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            param: param.map(str::to_string),
        }
    }

    fn invalid(message: impl Into<String>, param: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message, Some(param))
    }

    /// A database fault while `doing` something: logged, and 503 so the caller retries.
    fn database<E: std::fmt::Display>(doing: &'static str) -> impl FnOnce(E) -> Self {
        move |e| {
            tracing::error!(error = %e, "{doing}");
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "Tally's database did not answer; retry with the same Idempotency-Key.",
                None,
            )
        }
    }
}

impl From<StripeApiError> for ApiError {
    fn from(e: StripeApiError) -> Self {
        let (status, kind) = match e.kind {
            ErrorKind::Card => (StatusCode::PAYMENT_REQUIRED, "card_error"),
            ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "invalid_request_error"),
            ErrorKind::Idempotency => (StatusCode::CONFLICT, "idempotency_error"),
            ErrorKind::RateLimit => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            ErrorKind::NotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
            _ => (StatusCode::BAD_GATEWAY, "api_error"),
        };
        let message = match e.kind {
            // Stripe's text for these is about the request the client sent; useful to it.
            ErrorKind::InvalidRequest | ErrorKind::Card => e
                .message
                .as_deref()
                .map(str::to_string)
                .unwrap_or_else(|| e.admin_message()),
            _ => e.admin_message(),
        };
        Self {
            status,
            kind,
            message,
            param: e.param.as_deref().map(str::to_string),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"type": self.kind, "message": self.message, "param": self.param}});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The key, checked and within its rate.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<ApiKey, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "Send an active API key from Settings → API keys as `Authorization: Bearer tly_…`.",
            None,
        )
    };
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(unauthorized)?;
    let row = api_keys::authenticate(&state.db, key)
        .await
        .map_err(ApiError::database("could not check an API key"))?
        .ok_or_else(unauthorized)?;
    if !state.api_limiter.allow(&row.id) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!(
                "Too many requests for this key (at most {} a second).",
                state.config.api_rate_limit
            ),
            None,
        ));
    }
    Ok(row)
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "The body must be a JSON object.",
            None,
        )),
    }
}

/// The client's `Idempotency-Key`, checked (1–255 printable characters).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 200)
            .map(|k| Some(k.to_string()))
            .ok_or_else(|| {
                ApiError::invalid(
                    "Idempotency-Key must have 1 to 200 printable characters.",
                    "Idempotency-Key",
                )
            }),
    }
}

fn text<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid(format!("{name} must be a string."), name)),
    }
}

fn stripe_id<'a>(body: &'a Map<String, Value>, name: &str, prefix: &str) -> Result<Option<&'a str>, ApiError> {
    match text(body, name)? {
        None => Ok(None),
        Some(id) if valid_id(id) && id.starts_with(prefix) => Ok(Some(id)),
        Some(_) => Err(ApiError::invalid(
            format!("{name} must be a Stripe id starting with {prefix}."),
            name,
        )),
    }
}

/// Stripe's metadata limits: 50 keys, keys up to 40 characters without square brackets, values
/// up to 500 characters, all strings.
pub fn metadata(value: Option<&Value>) -> Result<HashMap<String, String>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(HashMap::new());
    };
    let Value::Object(map) = value else {
        return Err(ApiError::invalid("metadata must be an object of strings.", "metadata"));
    };
    if map.len() > 50 {
        return Err(ApiError::invalid("metadata may have at most 50 keys.", "metadata"));
    }
    let mut out = HashMap::new();
    for (k, v) in map {
        if k.is_empty() || k.chars().count() > 40 || k.contains('[') || k.contains(']') {
            return Err(ApiError::invalid(
                format!("metadata key {k:?} must have 1 to 40 characters and no square brackets."),
                "metadata",
            ));
        }
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(ApiError::invalid(
                    format!("metadata[{k}] must be a string."),
                    "metadata",
                ))
            }
        };
        if v.chars().count() > 500 {
            return Err(ApiError::invalid(
                format!("metadata[{k}] is longer than 500 characters."),
                "metadata",
            ));
        }
        out.insert(k.clone(), v);
    }
    Ok(out)
}

/// Records that `key` may act for `customer`.
async fn own(state: &AppState, key: &ApiKey, customer: &str) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO api_key_customers (key_id, customer_id, added_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key_id, customer_id) DO NOTHING",
    )
    .bind(&key.id)
    .bind(customer)
    .bind(crate::db::now_unix())
    .execute(state.db.writer())
    .await
    .map_err(ApiError::database("could not record a key's customer"))?;
    Ok(())
}

/// Whether `key` may act for `customer` (it created it, or was given it).
async fn owns(state: &AppState, key: &ApiKey, customer: &str) -> Result<bool, ApiError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM api_key_customers WHERE key_id = $1 AND customer_id = $2")
            .bind(&key.id)
            .bind(customer)
            .fetch_optional(state.db.reader())
            .await
            .map_err(ApiError::database("could not read a key's customers"))?;
    Ok(found.is_some())
}

/// `POST /api/v1/customers {email, name}` → `{customer_id, created}`; an email this key's own
/// customers already have returns that customer. `{customer_id}` instead gives the key an existing
/// customer (the operator's backend names it explicitly).
async fn create_customer(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers).await?;
    let idempotency = idempotency_key(&headers)?;
    let body = body_object(&body)?;
    if let Some(customer) = stripe_id(&body, "customer_id", "cus_")? {
        let known: Option<String> =
            sqlx::query_scalar("SELECT id FROM customers WHERE id = $1 AND deleted = 0 AND account_id = ''")
                .bind(customer)
                .fetch_optional(state.db.reader())
                .await
                .map_err(ApiError::database("could not look up a customer"))?;
        let Some(id) = known else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "No such customer.",
                Some("customer_id"),
            ));
        };
        own(&state, &key, &id).await?;
        tracing::info!(api_key = %key.prefix, customer = %id, "payments API: customer given to the key");
        return Ok(Json(json!({"customer_id": id, "created": false})).into_response());
    }
    let email = text(&body, "email")?
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::invalid("email is required.", "email"))?;
    let well_formed = email.len() <= 512
        && email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.') && !domain.ends_with('.'))
        && !email.chars().any(char::is_whitespace);
    if !well_formed {
        return Err(ApiError::invalid("email is not an email address.", "email"));
    }
    let name = text(&body, "name")?.map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 256) {
        return Err(ApiError::invalid("name is longer than 256 characters.", "name"));
    }
    // Only among this key's own customers: a key cannot find out who else is a customer.
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT c.id FROM customers c JOIN api_key_customers k ON k.customer_id = c.id AND k.key_id = $2 \
         WHERE LOWER(c.email) = LOWER($1) AND c.deleted = 0 ORDER BY c.created, c.id LIMIT 1",
    )
    .bind(email)
    .bind(&key.id)
    .fetch_optional(state.db.reader())
    .await
    .map_err(ApiError::database("could not look up a customer by email"))?;
    if let Some(id) = existing {
        tracing::info!(api_key = %key.prefix, customer = %id, "payments API: existing customer returned");
        return Ok(Json(json!({"customer_id": id, "created": false})).into_response());
    }
    let sent_at = super::sent_at();
    let response = ops::create_customer(state.stripe.as_ref(), email, name, idempotency.as_deref()).await?;
    super::project_or_log(
        &state.db,
        crate::domain::accounts::ENVIRONMENT,
        Resource::Customer,
        &response.body,
        sent_at,
    )
    .await;
    let id = response.body.get("id").and_then(Value::as_str).unwrap_or_default();
    if !id.is_empty() {
        own(&state, &key, id).await?;
    }
    tracing::info!(api_key = %key.prefix, customer = %id, request_id = ?response.request_id, "payments API: customer created");
    Ok((StatusCode::CREATED, Json(json!({"customer_id": id, "created": true}))).into_response())
}

/// 403 unless `customer` is one of this key's own customers (created with it, or given to it).
async fn require_own(state: &AppState, key: &ApiKey, customer: &str, param: &'static str) -> Result<(), ApiError> {
    if owns(state, key, customer).await? {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "permission_error",
        "This key may act only for customers it created or was given (POST /api/v1/customers with customer_id).",
        Some(param),
    ))
}

/// `POST /api/v1/payment-intents {amount, currency, customer?, metadata?, stripe_version?}` →
/// `{id, client_secret, customer, ephemeral_key}`.
async fn create_payment_intent(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers).await?;
    let idempotency = idempotency_key(&headers)?;
    let body = body_object(&body)?;
    let currency = text(&body, "currency")?
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| ApiError::invalid("currency is required (ISO 4217, e.g. usd).", "currency"))?;
    if !money::CURRENCIES.contains(&currency.as_str()) {
        return Err(ApiError::invalid(
            format!("{currency:?} is not a currency Stripe supports (ISO 4217, e.g. usd)."),
            "currency",
        ));
    }
    let amount = match body.get("amount") {
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::invalid(
            "amount is required: an integer in the currency's smallest unit.",
            "amount",
        )
    })?;
    let minimum = money::stripe_minimum(&currency);
    if !(minimum..=MAX_AMOUNT).contains(&amount) {
        return Err(ApiError::invalid(
            format!(
                "amount must be from {minimum} to {MAX_AMOUNT} (smallest units: {} to {}).",
                money::format(minimum, &currency),
                money::format(MAX_AMOUNT, &currency)
            ),
            "amount",
        ));
    }
    let customer = stripe_id(&body, "customer", "cus_")?;
    let metadata = metadata(body.get("metadata"))?;
    let stripe_version = text(&body, "stripe_version")?.map(str::trim).filter(|v| !v.is_empty());
    let version_ok = |v: &str| {
        v.len() <= 40
            && v.chars().next().is_some_and(|c| c.is_ascii_digit())
            && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if let Some(v) = stripe_version.filter(|v| !version_ok(v)) {
        return Err(ApiError::invalid(
            format!("stripe_version {v:?} is not an API version such as 2024-06-20."),
            "stripe_version",
        ));
    }
    if customer.is_some() && stripe_version.is_none() {
        return Err(ApiError::invalid(
            "stripe_version is required with a customer: the mobile SDK's API version, for the ephemeral key.",
            "stripe_version",
        ));
    }
    // An ephemeral key lets a client act as the customer: only for this key's own customers.
    if let Some(customer) = customer {
        require_own(&state, &key, customer, "customer").await?;
    }
    let sent_at = super::sent_at();
    let intent = ops::create_payment_intent(
        state.stripe.as_ref(),
        amount,
        &currency,
        customer,
        metadata,
        idempotency.as_deref(),
    )
    .await?;
    super::project_or_log(
        &state.db,
        crate::domain::accounts::ENVIRONMENT,
        Resource::PaymentIntent,
        &intent.body,
        sent_at,
    )
    .await;
    let ephemeral_key = match (customer, stripe_version) {
        (Some(customer), Some(version)) => {
            let ek = ops::create_ephemeral_key(state.stripe.as_ref(), customer, version).await?;
            ek.body.get("secret").cloned().unwrap_or(Value::Null)
        }
        _ => Value::Null,
    };
    let id = intent.body.get("id").cloned().unwrap_or(Value::Null);
    tracing::info!(api_key = %key.prefix, payment_intent = %id, request_id = ?intent.request_id, "payments API: payment intent created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "client_secret": intent.body.get("client_secret").cloned().unwrap_or(Value::Null),
            "customer": customer,
            "ephemeral_key": ephemeral_key,
        })),
    )
        .into_response())
}

/// `POST /api/v1/subscriptions {customer_id, price_id}` → `{subscription_id, client_secret}`;
/// the subscription waits for its first payment (`default_incomplete`).
async fn create_subscription(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers).await?;
    let idempotency = idempotency_key(&headers)?;
    let body = body_object(&body)?;
    let customer = stripe_id(&body, "customer_id", "cus_")?
        .ok_or_else(|| ApiError::invalid("customer_id is required.", "customer_id"))?;
    let price = stripe_id(&body, "price_id", "price_")?
        .ok_or_else(|| ApiError::invalid("price_id is required.", "price_id"))?;
    // Billing a customer is acting for them: only this key's own customers.
    require_own(&state, &key, customer, "customer_id").await?;
    // A price Tally knows must be active and recurring; unknown ones are left to Stripe.
    let known: Option<(Option<i64>, Option<String>)> =
        sqlx::query_as("SELECT active, type FROM prices WHERE id = $1 AND account_id = ''")
            .bind(price)
            .fetch_optional(state.db.reader())
            .await
            .map_err(ApiError::database("could not look up a price"))?;
    if let Some((active, kind)) = known {
        if active == Some(0) {
            return Err(ApiError::invalid("This price is archived.", "price_id"));
        }
        if kind.as_deref() == Some("one_time") {
            return Err(ApiError::invalid(
                "This price is one-time; subscriptions need a recurring price.",
                "price_id",
            ));
        }
    }
    let sent_at = super::sent_at();
    let response = ops::create_subscription(state.stripe.as_ref(), customer, price, idempotency.as_deref()).await?;
    // The expanded invoice is not a subscription field the projection reads; store the rest.
    super::project_or_log(
        &state.db,
        crate::domain::accounts::ENVIRONMENT,
        Resource::Subscription,
        &response.body,
        sent_at,
    )
    .await;
    let client_secret = crate::projection::read::at(
        &response.body,
        &["latest_invoice", "confirmation_secret", "client_secret"],
    )
    .cloned()
    .unwrap_or(Value::Null);
    let id = response.body.get("id").cloned().unwrap_or(Value::Null);
    tracing::info!(api_key = %key.prefix, subscription = %id, request_id = ?response.request_id, "payments API: subscription created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"subscription_id": id, "client_secret": client_secret})),
    )
        .into_response())
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_follows_stripes_limits() {
        assert!(metadata(Some(&json!({"order": "42", "n": 3}))).is_ok());
        assert!(metadata(Some(&json!({"a[b]": "x"}))).is_err());
        assert!(metadata(Some(&json!({"k": "x".repeat(501)}))).is_err());
        assert!(metadata(Some(&json!({"k".repeat(41): "x"}))).is_err());
        let many: Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(metadata(Some(&Value::Object(many))).is_err());
        assert!(metadata(Some(&json!(["x"]))).is_err());
        assert!(metadata(Some(&json!({"nested": {"a": 1}}))).is_err());
    }

    #[test]
    fn the_openapi_document_is_valid_json() {
        let doc: Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for path in ["/api/v1/customers", "/api/v1/payment-intents", "/api/v1/subscriptions"] {
            assert!(doc["paths"][path]["post"].is_object(), "{path}");
        }
    }
}
