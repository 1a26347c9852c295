//! `GET /metrics` in Prometheus' text format: the process's counters (`observability`) and the
//! inbox's depth, for a scraper holding `METRICS_TOKEN` or a signed-in admin.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::observability;
use crate::state::AppState;

/// `GET /metrics` in Prometheus' text format; with `METRICS_TOKEN` set, only for
/// `Authorization: Bearer <token>`.
pub async fn export(
    State(state): State<AppState>,
    admin: Option<axum::Extension<crate::domain::admins::CurrentAdmin>>,
    headers: HeaderMap,
) -> Response {
    // Not public: a scraper shows METRICS_TOKEN as a bearer token; without one configured, only
    // a signed-in admin's browser may read it.
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let allowed = match (&state.config.metrics_token, given) {
        (Some(token), Some(given)) => constant_time_eq(given.as_bytes(), token.expose().as_bytes()),
        _ => admin.is_some(),
    };
    if !allowed {
        return (
            StatusCode::UNAUTHORIZED,
            "metrics need METRICS_TOKEN as a bearer token (set it to let Prometheus scrape), or a signed-in admin",
        )
            .into_response();
    }
    let mut out = observability::render();
    // The inbox, counted now.
    let depth = crate::db::events::depth(&state.db).await;
    observability::describe(
        &mut out,
        "tally_inbox_events",
        "gauge",
        "Events in the inbox by status (pending, processing, failed).",
    );
    match depth {
        Ok(rows) => {
            for status in ["pending", "processing", "failed"] {
                let n = rows.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                let _ = writeln!(out, "tally_inbox_events{{status=\"{status}\"}} {n}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count the inbox for /metrics"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
