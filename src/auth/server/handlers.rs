//! `POST /login` and `POST /logout`: plain HTML form posts, so they work with JavaScript off.

use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

use super::password::{self, Verified};
use super::{RequestInfo, SessionAuth, SESSION_KEY};
use crate::auth::{normalize_email, safe_next};
use crate::db::{admins, audit, now_unix, throttle};
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
    let Form(form) = match Form::<LoginForm>::from_request(request, &()).await {
        Ok(form) => form,
        Err(_) => return back_to_login("invalid", "/", None),
    };
    let next = safe_next(form.next.as_deref());
    match attempt_login(&state, &session, &info, form).await {
        Ok(()) => Redirect::to(&next).into_response(),
        Err(LoginRefusal::Invalid) => back_to_login("invalid", &next, None),
        Err(LoginRefusal::Locked { until }) => back_to_login("locked", &next, Some(minutes_until(until, now_unix()))),
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

async fn attempt_login(
    state: &AppState,
    session: &Session,
    info: &RequestInfo,
    form: LoginForm,
) -> Result<(), LoginRefusal> {
    let db = &state.db;
    let settings = &state.config.auth;
    let now = state.config.clock.now_unix();
    let email = normalize_email(&form.email).ok();
    // Unknown and malformed emails are throttled like real ones, so lockouts reveal nothing.
    let account_key = format!(
        "account:{}",
        email.clone().unwrap_or_else(|| form.email.trim().to_lowercase())
    );
    let address_key = format!("address:{}", info.client_addr.as_deref().unwrap_or("unknown"));
    let audit_base = audit::NewEntry {
        admin_email: email.clone(),
        action: "login",
        client_addr: info.client_addr.clone(),
        request_id: info.request_id.clone(),
        ..Default::default()
    };

    for key in [&account_key, &address_key] {
        if let Some(until) = throttle::locked_until(db, key, now).await? {
            audit::record(
                db,
                audit::NewEntry {
                    outcome: "locked",
                    detail: Some(lock_kind(key).into()),
                    ..audit_base.clone()
                },
            )
            .await?;
            return Err(LoginRefusal::Locked { until });
        }
    }

    let credentials = match &email {
        Some(e) => admins::credentials_by_email(db, e).await?,
        None => None,
    };
    let stored = credentials.as_ref().map(|c| c.password_hash.clone());
    let verified = password::verify(form.password.clone(), stored).await.map_err(|e| {
        tracing::error!(error = %e, "password check failed");
        LoginRefusal::Unavailable
    })?;
    let admin = match (verified, credentials) {
        (Verified::Yes { needs_rehash }, Some(c)) if !c.admin.disabled => (c.admin, needs_rehash),
        _ => {
            let account_lock =
                throttle::record_failure(db, &account_key, settings.max_failures, settings.lockout, now).await?;
            let address_lock = throttle::record_failure(
                db,
                &address_key,
                settings.max_failures.saturating_mul(4),
                settings.lockout,
                now,
            )
            .await?;
            audit::record(
                db,
                audit::NewEntry {
                    outcome: "failure",
                    ..audit_base.clone()
                },
            )
            .await?;
            for (key, lock) in [(&account_key, account_lock), (&address_key, address_lock)] {
                if let Some(until) = lock {
                    tracing::warn!(
                        kind = lock_kind(key),
                        key = %key,
                        locked_for_secs = until - now,
                        "login locked out after repeated failures"
                    );
                    audit::record(
                        db,
                        audit::NewEntry {
                            action: "login.lockout",
                            outcome: "locked",
                            detail: Some(format!("{} locked for {} s", lock_kind(key), until - now)),
                            ..audit_base.clone()
                        },
                    )
                    .await?;
                }
            }
            return Err(LoginRefusal::Invalid);
        }
    };
    let (admin, needs_rehash) = admin;

    throttle::clear(db, &account_key).await?;
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
                if let Err(e) = admins::set_password_hash(db, admin.id, &h).await {
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
            admin_id: Some(admin.id),
            outcome: "success",
            ..audit_base
        },
    )
    .await?;
    tracing::info!(admin_id = admin.id, "admin logged in");
    Ok(())
}

fn lock_kind(key: &str) -> &'static str {
    if key.starts_with("account:") {
        "account"
    } else {
        "address"
    }
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
