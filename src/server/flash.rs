//! What a form's action said, carried across the redirect that follows a plain form post.
//!
//! Pages are server-rendered and their forms post straight to the server functions (only small
//! islands run in the browser). A server function answers a form post with a redirect back to
//! the page, which drops the message it returned ("Refund of $5.00 sent", a new API key shown
//! once). [`keep`] saves that message in the session for the next page, and [`take`] hands it to
//! that page's render, once. Errors travel in the redirect's URL instead (Leptos' own
//! `__path`/`__err` parameters), so a message is only kept for success.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tower_sessions::Session;

use crate::components::notice::Flash;

const KEY: &str = "flash";

/// The largest server function answer kept (a message or a key, never a page).
const MAX_MESSAGE_BYTES: usize = 16 * 1024;

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Whether a redirect goes back to the page the form was on (not to Stripe's Checkout, say)
/// without an error attached. Cross-site posts never get this far, so the Referer is this site.
fn back_here(location: &str, referer: Option<&str>) -> bool {
    if location.contains("__err=") {
        return false;
    }
    if location.starts_with('/') && !location.starts_with("//") {
        return true;
    }
    match (url::Url::parse(location), referer.map(url::Url::parse)) {
        (Ok(to), Some(Ok(from))) => to.origin() == from.origin(),
        _ => false,
    }
}

/// Runs the request; when it was a plain form post to a server function (under `/api/`, not the
/// payments API) that succeeded, keeps its message for the page the browser is sent back to.
pub async fn keep(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let form_post = request.method() == Method::POST
        && path.starts_with("/api/")
        && !path.starts_with("/api/v1/")
        && accepts_html(request.headers());
    let session = request.extensions().get::<Session>().cloned();
    let path = request.uri().path().to_string();
    let referer = request
        .headers()
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = next.run(request).await;
    let (Some(session), true) = (session, form_post) else {
        return response;
    };
    let returns_here = response.status() == StatusCode::FOUND
        && response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|l| back_here(l, referer.as_deref()));
    if !returns_here {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await else {
        // Too long to be a message: the redirect still happens, without one.
        return Response::from_parts(parts, Body::empty());
    };
    if let Ok(message) = serde_json::from_slice::<String>(&bytes) {
        if let Err(e) = session.insert(KEY, Flash { path, message }).await {
            tracing::warn!(error = %e, "could not keep a form's message for the next page");
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Moves a kept message out of the session into the page request, where the page's render
/// finds it (`components::notice::action_outcome`). Only page loads take it; assets and API
/// calls leave it.
pub async fn take(mut request: Request, next: Next) -> Response {
    if request.method() == Method::GET && accepts_html(request.headers()) {
        if let Some(session) = request.extensions().get::<Session>().cloned() {
            // Read first: removing marks the session changed (a store write) even when empty.
            if let Ok(Some(flash)) = session.get::<Flash>(KEY).await {
                let _ = session.remove_value(KEY).await;
                request.extensions_mut().insert(flash);
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::back_here;

    #[test]
    fn only_error_free_redirects_to_this_site_keep_a_message() {
        let from = Some("http://127.0.0.1:3000/settings/api-keys");
        assert!(back_here("http://127.0.0.1:3000/settings/api-keys", from));
        assert!(back_here("/payments/ch_1", from));
        assert!(!back_here("//evil.example/", from));
        assert!(!back_here("https://checkout.stripe.com/c/pay/cs_1", from));
        assert!(!back_here(
            "http://127.0.0.1:3000/settings?__path=/api/x&__err=boom",
            from
        ));
        assert!(!back_here("http://127.0.0.1:3000/", None));
        assert!(!back_here("http://127.0.0.1:3001/", from));
        assert!(back_here(
            "https://tally.example.com/",
            Some("https://tally.example.com/settings")
        ));
    }
}
