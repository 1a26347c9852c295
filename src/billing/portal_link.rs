//! Links that let a customer open their billing portal without an account: HMAC-SHA256 over the
//! customer id and an expiry, with the server's link secret. A forged or expired link gets 403.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a link works.
pub const VALID_FOR_SECS: i64 = 3600;

/// The MAC over `customer.expires` (`None` only if HMAC refused the key, which it never does).
fn mac(secret: &str, customer: &str, expires: i64) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(customer.as_bytes());
    mac.update(b".");
    mac.update(expires.to_string().as_bytes());
    Some(mac)
}

/// The signature for `customer` until `expires` (Unix seconds), hex.
pub fn sign(secret: &str, customer: &str, expires: i64) -> String {
    mac(secret, customer, expires)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// The path and query of a link valid for `VALID_FOR_SECS` from `now`.
pub fn path(secret: &str, customer: &str, now: i64) -> String {
    let expires = now + VALID_FOR_SECS;
    format!(
        "/billing/portal?customer={customer}&expires={expires}&signature={}",
        sign(secret, customer, expires)
    )
}

#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    Malformed,
    Expired,
    Forged,
}

/// Checks a link's parts (constant-time comparison).
pub fn verify(secret: &str, customer: &str, expires: &str, signature: &str, now: i64) -> Result<(), LinkError> {
    if !crate::stripe::valid_id(customer) || !customer.starts_with("cus_") {
        return Err(LinkError::Malformed);
    }
    let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
    let signature = hex::decode(signature).map_err(|_| LinkError::Forged)?;
    mac(secret, customer, expires)
        .ok_or(LinkError::Forged)?
        .verify_slice(&signature)
        .map_err(|_| LinkError::Forged)?;
    if expires < now {
        return Err(LinkError::Expired);
    }
    Ok(())
}

/// `GET /billing/portal?customer=…&expires=…&signature=…`: checks the link and sends the customer
/// to a new portal session that returns to the pricing page. A forged or expired link gets 403.
pub async fn open(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::{Html, IntoResponse, Redirect};

    let stylesheet = crate::site::stylesheet_href(&state.leptos_options);
    let page = |status: StatusCode, title: &str, text: &str| {
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Tally</title>\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"stylesheet\" href=\"{stylesheet}\"></head>\
             <body><main class=\"content\"><section class=\"card\"><h1>{title}</h1><p>{text}</p>\
             <p><a class=\"button\" href=\"/pricing\">See plans</a></p></section></main></body></html>"
        );
        (status, Html(body)).into_response()
    };
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let customer = get("customer");
    match verify(
        state.link_secret.expose(),
        customer,
        get("expires"),
        get("signature"),
        crate::db::now_unix(),
    ) {
        Ok(()) => {}
        Err(LinkError::Expired) => {
            return page(
                StatusCode::FORBIDDEN,
                "This link has expired",
                "Billing links work for an hour. Use the link in your latest receipt, or contact us for a new one.",
            )
        }
        Err(e) => {
            tracing::warn!(reason = ?e, "refused a billing portal link");
            return page(
                StatusCode::FORBIDDEN,
                "This link is not valid",
                "Check that you copied the whole link.",
            );
        }
    }
    let base = state.config.public_base_url.as_str().trim_end_matches('/').to_string();
    // The portal of the customer's own Stripe account.
    let account = crate::db::accounts::owner_of(&state.db, "customers", customer)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let stripe: std::sync::Arc<dyn crate::stripe::StripeApi> = if account.is_empty() {
        state.stripe.clone()
    } else {
        match crate::accounts::client(&state.db, &state.config, &account).await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, "no Stripe client for a portal link's account");
                return page(
                    StatusCode::BAD_GATEWAY,
                    "Billing is not available",
                    "Please try again in a minute.",
                );
            }
        }
    };
    match crate::stripe::ops::create_portal_session(stripe.as_ref(), customer, &format!("{base}/pricing")).await {
        Ok(session) => match session.body.get("url").and_then(|u| u.as_str()) {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => Redirect::to(url).into_response(),
            _ => page(
                StatusCode::BAD_GATEWAY,
                "Billing is not available",
                "Please try again in a minute.",
            ),
        },
        Err(e) => {
            tracing::warn!(kind = e.kind.as_str(), request_id = ?e.request_id, "creating a portal session failed");
            page(
                StatusCode::BAD_GATEWAY,
                "Billing is not available",
                "Please try again in a minute.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_until_they_expire_and_forgeries_fail() {
        let secret = "s".repeat(40);
        let sig = sign(&secret, "cus_1", 1_000);
        assert_eq!(verify(&secret, "cus_1", "1000", &sig, 999), Ok(()));
        assert_eq!(verify(&secret, "cus_1", "1000", &sig, 1_001), Err(LinkError::Expired));
        assert_eq!(verify(&secret, "cus_2", "1000", &sig, 999), Err(LinkError::Forged));
        assert_eq!(
            verify(&secret, "cus_1", "2000", &sig, 999),
            Err(LinkError::Forged),
            "a later expiry is refused"
        );
        assert_eq!(
            verify("other-secret-other-secret-other-secret", "cus_1", "1000", &sig, 999),
            Err(LinkError::Forged)
        );
        assert_eq!(verify(&secret, "cus_1", "1000", "zz", 999), Err(LinkError::Forged));
        assert_eq!(verify(&secret, "x&y", "1000", &sig, 999), Err(LinkError::Malformed));
        assert!(path(&secret, "cus_1", 0).starts_with("/billing/portal?customer=cus_1&expires=3600&signature="));
    }
}
