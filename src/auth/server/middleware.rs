//! Request guards: security headers, cross-site request refusal, and the login requirement.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use super::{SessionAuth, SESSION_KEY};
use crate::db::admins;
use crate::domain::admins::CurrentAdmin;
use crate::state::AppState;

/// Paths anyone may reach; everything else needs a login.
fn is_public(path: &str) -> bool {
    const EXACT: [&str; 8] = [
        "/login",
        "/logout",
        "/healthz",
        "/readyz",
        "/favicon.svg",
        "/stripe/webhook",
        "/pricing",
        "/metrics",
    ];
    const PREFIXES: [&str; 5] = ["/pkg/", "/checkout/", "/api/v1/", "/api/public/", "/billing/portal"];
    EXACT.contains(&path) || PREFIXES.iter().any(|p| path.starts_with(p))
}

/// Routes that authenticate by other means than the browser session (Stripe's signature, API
/// keys), so cross-site checks do not apply.
fn is_machine_endpoint(path: &str) -> bool {
    path == "/stripe/webhook" || path.starts_with("/api/v1/")
}

/// The CSP for responses that are not Leptos pages (pages set their own, with a nonce).
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DEFAULT_CSP));
    }
    response
}

/// Where a form on a page may lead besides this origin: Stripe's hosted Checkout and billing
/// portal (a plan choice redirects there), and the configured API base's origin when it is not
/// Stripe's (the test stand-in serves the hosted pages too).
pub fn form_targets(config: &crate::config::Config) -> String {
    let mut targets = String::from("https://checkout.stripe.com https://billing.stripe.com");
    let base = &config.stripe_api_base;
    if base.host_str() != Some("api.stripe.com") {
        targets.push(' ');
        targets.push_str(base.origin().ascii_serialization().as_str());
    }
    targets
}

/// The CSP for a rendered page: scripts only from this origin or with this response's nonce;
/// forms to this origin and `form_targets`.
pub fn page_csp(nonce: &str, form_targets: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; \
         form-action 'self' {form_targets}; object-src 'none'"
    )
}

/// Refuses state-changing requests sent from another site (403), using the browser's
/// `Sec-Fetch-Site` and `Origin` headers. Requests without either (non-browser clients) carry no
/// ambient cookies from a foreign page and pass.
pub async fn refuse_cross_site(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let safe_method = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe_method || is_machine_endpoint(request.uri().path()) {
        return next.run(request).await;
    }
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return cross_site_refusal(request.uri().path());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let public = state.config.public_base_url.origin().ascii_serialization();
        let host_origin = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(|host| {
            let scheme = if state.config.is_https() { "https" } else { "http" };
            format!("{scheme}://{host}")
        });
        if origin != public && Some(origin) != host_origin.as_deref() {
            return cross_site_refusal(request.uri().path());
        }
    }
    next.run(request).await
}

fn cross_site_refusal(path: &str) -> Response {
    tracing::warn!(path, "refused a cross-site state-changing request");
    (StatusCode::FORBIDDEN, "Cross-site request refused.").into_response()
}

/// Resolves the session to an admin (checking the absolute timeout, that the account still
/// exists and is enabled) and keeps anonymous visitors out of everything but public paths.
pub async fn require_login(
    State(state): State<AppState>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    let now = state.config.clock.now_millis();
    let auth = &state.config.auth;
    let mut admin: Option<CurrentAdmin> = None;
    match session.get::<SessionAuth>(SESSION_KEY).await {
        Ok(Some(mut s)) => {
            // The store also drops a session idle for longer than the limit (its expiry); this
            // check is the same rule on Tally's clock.
            let expired = now - s.login_at_ms >= auth.absolute_timeout.as_millis() as i64
                || now - s.seen_at_ms >= auth.idle_timeout.as_millis() as i64;
            let account = if expired {
                Ok(None)
            } else {
                admins::find(&state.db, s.admin_id).await
            };
            match account {
                // A password reset after this login ends the session.
                Ok(Some(row)) if !row.disabled && row.password_reset_ms <= s.login_at_ms => {
                    // Push the idle timer forward, but write the session at most twice per idle period.
                    let refresh_every_ms = (auth.idle_timeout.as_millis() as i64 / 2).clamp(1, 60_000);
                    if now - s.seen_at_ms >= refresh_every_ms {
                        s.seen_at_ms = now;
                        if let Err(e) = session.insert(SESSION_KEY, &s).await {
                            tracing::error!(error = %e, "could not refresh the session");
                        }
                    }
                    admin = Some(CurrentAdmin {
                        id: row.id,
                        email: row.email,
                        role: row.role,
                    });
                }
                Ok(_) => {
                    // Timed out, deleted or disabled: end the session for good.
                    if let Err(e) = session.flush().await {
                        tracing::error!(error = %e, "could not delete an ended session");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not load the signed-in admin");
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The database did not answer; try again in a moment.",
                    )
                        .into_response();
                }
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "unreadable session; treating the visitor as signed out"),
    }

    let path = request.uri().path().to_string();
    match admin {
        Some(admin) => {
            request.extensions_mut().insert(admin);
            next.run(request).await
        }
        None if is_public(&path) => next.run(request).await,
        None if path.starts_with("/api/") => {
            (StatusCode::UNAUTHORIZED, "Your session has ended. Log in again.").into_response()
        }
        None => {
            let target = request.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
            let location = if target == "/" {
                "/login".to_string()
            } else {
                format!(
                    "/login?next={}",
                    url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
                )
            };
            Redirect::to(&location).into_response()
        }
    }
}

/// Sets the request's client address (`guard::client_address`, with `TRUSTED_PROXIES`).
pub async fn client_address(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let client = super::guard::client_address(peer, request.headers(), &state.config.trusted_proxies);
        request.extensions_mut().insert(super::guard::ClientAddr(client));
    }
    next.run(request).await
}
