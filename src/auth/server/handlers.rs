//! `POST /login` and `POST /logout`: plain HTML form posts, so they work with JavaScript off.

use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

use super::password::{self, Verified};
use super::{device, RequestInfo, SessionAuth, SESSION_KEY};
use crate::auth::safe_next;
use crate::db::{admins, audit, throttle};
use crate::domain::admins::normalize_email;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct LoginForm {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub next: Option<String>,
}

/// Back to the login form with a reason the page turns into a message.
fn back_to_login(error: &str, next: &str, retry_minutes: Option<i64>) -> Response {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("error", error);
    if next != "/" {
        query.append_pair("next", next);
    }
    if let Some(m) = retry_minutes {
        query.append_pair("retry", &m.to_string());
    }
    Redirect::to(&format!("/login?{}", query.finish())).into_response()
}

fn minutes_until(until: i64, now: i64) -> i64 {
    ((until - now) + 59).max(60) / 60
}

pub async fn login(State(state): State<AppState>, session: Session, request: Request) -> Response {
    let info = RequestInfo::from_parts(request.extensions(), request.headers());
    let device = device::read(state.link_secret.expose(), request.headers());
    let Form(form) = match Form::<LoginForm>::from_request(request, &()).await {
        Ok(form) => form,
        Err(_) => return back_to_login("invalid", "/", None),
    };
    let next = safe_next(form.next.as_deref());
    let now = state.config.clock.now_unix();
    match attempt_login(&state, &session, &info, device, form).await {
        Ok(admin_id) => {
            let mut response = Redirect::to(&next).into_response();
            // This browser is now known to the account: its guesses no longer count against it.
            let cookie = device::issue(state.link_secret.expose(), admin_id)
                .and_then(|value| device::set_cookie(&value, state.config.is_https()));
            if let Some(cookie) = cookie {
                response.headers_mut().append(axum::http::header::SET_COOKIE, cookie);
            }
            response
        }
        Err(LoginRefusal::Invalid) => back_to_login("invalid", &next, None),
        Err(LoginRefusal::Locked { until }) => back_to_login("locked", &next, Some(minutes_until(until, now))),
        Err(LoginRefusal::Unavailable) => back_to_login("unavailable", &next, None),
    }
}

enum LoginRefusal {
    Invalid,
    Locked { until: i64 },
    Unavailable,
}

impl From<crate::db::DbError> for LoginRefusal {
    fn from(e: crate::db::DbError) -> Self {
        tracing::error!(error = %e, "login could not reach the database");
        LoginRefusal::Unavailable
    }
}

/// Checks the credentials under the throttles (see db::throttle and device): a browser that
/// signed in to the account before counts its failures against its own device cookie, any other
/// against the account; the client address only slows guessing down (each attempt from an
/// address past its limit waits `LOGIN_ADDRESS_DELAY` before its check) and never refuses right
/// credentials. Returns the admin's id.
async fn attempt_login(
    state: &AppState,
    session: &Session,
    info: &RequestInfo,
    device: Option<device::Device>,
    form: LoginForm,
) -> Result<i64, LoginRefusal> {
    let db = &state.db;
    let settings = &state.config.auth;
    let now = state.config.clock.now_unix();
    let email = normalize_email(&form.email).ok();
    let address_key = throttle::address_key(info.client_addr.as_deref().unwrap_or("unknown"));
    let audit_base = audit::NewEntry {
        // What was typed is recorded only when it is an email address: a password typed into
        // the email field never reaches the audit log.
        admin_email: email.clone(),
        detail: email.is_none().then(|| "not an email address".to_string()),
        action: "login",
        client_addr: info.client_addr.clone(),
        request_id: info.request_id.clone(),
        ..Default::default()
    };
    let credentials = match &email {
        Some(e) => admins::credentials_by_email(db, e).await?,
        None => None,
    };
    // Unknown and malformed emails are throttled like real ones, so lockouts reveal nothing.
    let trusted = device
        .as_ref()
        .filter(|d| credentials.as_ref().is_some_and(|c| c.admin.id == d.admin_id));
    let (limit_key, kind) = match trusted {
        Some(d) => (throttle::device_key(&d.nonce), "device"),
        None => (throttle::account_key(&form.email), "account"),
    };
    let refuse_locked = |until: i64, detail: String| {
        let entry = audit::NewEntry {
            account_id: None,
            outcome: "locked",
            detail: Some(detail),
            ..audit_base.clone()
        };
        async move {
            audit::record(db, entry).await?;
            Err::<i64, _>(LoginRefusal::Locked { until })
        }
    };
    if let Some(until) = throttle::locked_until(db, &limit_key, now).await? {
        return refuse_locked(until, format!("{kind} locked")).await;
    }
    // Counted before the check: parallel guesses cannot get more checks than the limit.
    let (failures, allowed) = throttle::reserve(db, &limit_key, now).await?;
    if failures > allowed.unwrap_or(i64::from(settings.max_failures)) {
        // The checks this key may have are taken (by attempts still in flight, or spent).
        let until = throttle::locked_until(db, &limit_key, now)
            .await?
            .unwrap_or(now + settings.lockout.as_secs() as i64);
        return refuse_locked(until, format!("{kind} locked")).await;
    }
    let address_limit = i64::from(settings.max_failures.saturating_mul(4));
    let slowed = throttle::failures(db, &address_key, now).await? >= address_limit;
    if slowed {
        tokio::time::sleep(settings.address_delay).await;
    }

    let stored = credentials.as_ref().map(|c| c.password_hash.clone());
    let verified = password::verify(form.password.clone(), stored).await.map_err(|e| {
        tracing::error!(error = %e, "password check failed");
        LoginRefusal::Unavailable
    })?;
    let (admin, needs_rehash) = match (verified, credentials) {
        (Verified::Yes { needs_rehash }, Some(c)) if !c.admin.disabled => (c.admin, needs_rehash),
        _ => {
            throttle::reserve(db, &address_key, now).await?;
            let lock =
                throttle::lock_if_due(db, &limit_key, failures, settings.max_failures, settings.lockout, now).await?;
            let mut detail: Vec<String> = audit_base.detail.clone().into_iter().collect();
            if slowed {
                detail.push("address over its limit: slowed".into());
            }
            audit::record(
                db,
                audit::NewEntry {
                    account_id: None,
                    outcome: "failure",
                    detail: (!detail.is_empty()).then(|| detail.join("; ")),
                    ..audit_base.clone()
                },
            )
            .await?;
            if let Some(until) = lock {
                tracing::warn!(
                    kind,
                    locked_for_secs = until - now,
                    "login locked out after repeated failures"
                );
                audit::record(
                    db,
                    audit::NewEntry {
                        account_id: None,
                        action: "login.lockout",
                        outcome: "locked",
                        detail: Some(format!("{kind} locked for {} s", until - now)),
                        ..audit_base.clone()
                    },
                )
                .await?;
            }
            return Err(LoginRefusal::Invalid);
        }
    };

    throttle::clear(db, &limit_key).await?;
    // A new session id at login: an id planted before login is worthless afterwards.
    session.cycle_id().await.map_err(session_error)?;
    session
        .insert(
            SESSION_KEY,
            SessionAuth {
                admin_id: admin.id,
                login_at_ms: state.config.clock.now_millis(),
                seen_at_ms: state.config.clock.now_millis(),
            },
        )
        .await
        .map_err(session_error)?;
    if needs_rehash {
        match password::hash(form.password).await {
            Ok(h) => {
                if let Err(e) = admins::set_password_hash(db, admin.id, &h, admins::PasswordChange::Upgrade).await {
                    tracing::warn!(error = %e, "could not upgrade a password hash");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not upgrade a password hash"),
        }
    }
    admins::record_login(db, admin.id).await?;
    audit::record(
        db,
        audit::NewEntry {
            account_id: None,
            admin_id: Some(admin.id),
            outcome: "success",
            detail: slowed.then(|| "address over its limit: slowed".to_string()),
            ..audit_base
        },
    )
    .await?;
    tracing::info!(admin_id = admin.id, "admin logged in");
    Ok(admin.id)
}

fn session_error(e: tower_sessions::session::Error) -> LoginRefusal {
    tracing::error!(error = %e, "session store failed");
    LoginRefusal::Unavailable
}

pub async fn logout(State(state): State<AppState>, session: Session, request: Request) -> Response {
    let info = RequestInfo::from_parts(request.extensions(), request.headers());
    if let Ok(Some(auth)) = session.get::<SessionAuth>(SESSION_KEY).await {
        let email = admins::find(&state.db, auth.admin_id)
            .await
            .ok()
            .flatten()
            .map(|a| a.email);
        let entry = audit::NewEntry {
            admin_id: Some(auth.admin_id),
            admin_email: email,
            action: "logout",
            outcome: "success",
            client_addr: info.client_addr,
            request_id: info.request_id,
            ..Default::default()
        };
        if let Err(e) = audit::record(&state.db, entry).await {
            tracing::error!(error = %e, "could not record a logout");
        }
    }
    // Deletes the server-side record, so a copied cookie is useless from now on.
    if let Err(e) = session.flush().await {
        tracing::error!(error = %e, "could not delete the session at logout");
    }
    Redirect::to("/login?logged_out=1").into_response()
}
