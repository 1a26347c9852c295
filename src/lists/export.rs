//! `GET /export/{list}.csv`: every row of a filtered list (or of the Revenue page's movements),
//! streamed as CSV with the page's filters.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sqlx::Row;

use super::query::{account_column, bind, build, cell, scoped, select_list};
use super::spec;
use crate::domain::money;
use crate::state::AppState;

fn csv_field(text: &str) -> String {
    // Quote everything; double inner quotes; neutralise spreadsheet formulas.
    // (OWASP's list: = + - @, tab and carriage return; a plain number such as -12.50 stays one.)
    let safe = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_string()
    };
    format!("\"{}\"", safe.replace('"', "\"\""))
}

/// `GET /export/{list}.csv?filters`: every row of the filtered list, streamed as CSV (amounts as
/// plain decimals with a currency column, and the Stripe account of each row), over the accounts
/// of `?account=` that the admin may see.
pub async fn export(
    State(state): State<AppState>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    admin: Option<axum::Extension<crate::domain::admins::CurrentAdmin>>,
) -> Response {
    let q: HashMap<String, String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let Some(axum::Extension(me)) = admin else {
        return (StatusCode::UNAUTHORIZED, "Log in first.").into_response();
    };
    let scope = match crate::auth::server::resolve_scope(&state.db, &me, q.get("account").map(String::as_str)).await {
        Ok(scope) => scope,
        Err(e) => return (e.status(), e.message()).into_response(),
    };
    let Some(name) = file.strip_suffix(".csv") else {
        return (StatusCode::NOT_FOUND, "No such export.").into_response();
    };
    if name == "movements" {
        return export_movements(state, q, scope).await;
    }
    let Some(spec) = spec(name) else {
        return (StatusCode::NOT_FOUND, "No such export.").into_response();
    };
    let filter = match build(spec, &q) {
        Ok(f) => scoped(spec, f, &scope),
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    // The environment's account by its `acct_…` once known.
    let main_account = match crate::db::accounts::environment_id(&state.db).await {
        Ok(id) => id.unwrap_or_else(|| crate::domain::accounts::ENVIRONMENT_PARAM.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "reading the Stripe accounts failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer; try again in a moment.",
            )
                .into_response();
        }
    };
    let account = account_column(spec);
    let (cmp_order, _) = if filter.ascending { ("ASC", ()) } else { ("DESC", ()) };
    let sql = format!(
        "SELECT {}, {account} AS row_account FROM {} WHERE {} ORDER BY {} {cmp_order}, {} {cmp_order}",
        select_list(spec, filter.sort),
        spec.from,
        filter.sql,
        filter.sort,
        spec.id
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let db = state.db.clone();
    tokio::spawn(async move {
        let mut header: Vec<String> = spec.columns.iter().map(|c| csv_field(c.header)).collect();
        header.push(csv_field("Currency"));
        header.push(csv_field("Stripe account"));
        if tx.send(Bytes::from(header.join(",") + "\r\n")).await.is_err() {
            return;
        }
        let mut rows = bind(sqlx::query(&sql), &filter.params).fetch(db.reader());
        let mut buffer = String::new();
        while let Some(row) = rows.next().await {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, list = spec.name, "CSV export failed midway");
                    return;
                }
            };
            let currency: String = row
                .try_get::<Option<String>, _>("row_currency")
                .ok()
                .flatten()
                .unwrap_or_default();
            let mut fields: Vec<String> = spec
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| csv_field(&cell(c.kind, &row, i, &currency, None).raw))
                .collect();
            fields.push(csv_field(&currency));
            let account: String = row.try_get("row_account").unwrap_or_default();
            fields.push(csv_field(if account.is_empty() { &main_account } else { &account }));
            buffer.push_str(&fields.join(","));
            buffer.push_str("\r\n");
            if buffer.len() > 32 * 1024 && tx.send(Bytes::from(std::mem::take(&mut buffer))).await.is_err() {
                return;
            }
        }
        if !buffer.is_empty() {
            let _ = tx.send(Bytes::from(buffer)).await;
        }
    });
    csv_response(name, rx)
}

fn csv_response(name: &str, rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    // Fused: a compressing layer polls once more after the end, which a bare unfold answers
    // with a panic.
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    })
    .fuse();
    let date = crate::domain::calendar::month_label(crate::db::now_unix());
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"tally-{name}-{date}.csv\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn export_movements(
    state: AppState,
    q: HashMap<String, String>,
    scope: crate::domain::accounts::Scope,
) -> Response {
    use crate::revenue::movements;
    let Some(currency) = q.get("currency").filter(|c| !c.is_empty()).cloned() else {
        return (StatusCode::BAD_REQUEST, "Choose a currency.").into_response();
    };
    let mut filter = movements::Filter {
        scope,
        kind: q.get("kind").filter(|k| !k.is_empty()).cloned(),
        month: q.get("month").filter(|m| !m.is_empty()).cloned(),
        ..Default::default()
    };
    for (key, slot) in [("since", &mut filter.since), ("through", &mut filter.through)] {
        match q
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::parse::<i64>)
        {
            None => {}
            Some(Ok(t)) => *slot = Some(t),
            Some(Err(_)) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("{key} must be a time in Unix seconds."),
                )
                    .into_response()
            }
        }
    }
    // The first page before answering, so a database fault is a 503 rather than a cut file.
    const PAGE: i64 = 2_000;
    let first = match movements::page_after(&state.db, &currency, &filter, None, PAGE).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "movement export failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer; try again in a moment.",
            )
                .into_response();
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut out = String::from(
            "\"When (UTC)\",\"Kind\",\"Customer\",\"Subscription\",\"MRR change\",\"Currency\",\"Event\"\r\n",
        );
        let mut page = first;
        loop {
            let cursor = page
                .last()
                .map(|m| (m.at, m.event_id.clone(), m.subscription_id.clone()));
            let full = page.len() as i64 == PAGE;
            for m in page.drain(..) {
                let when = chrono::DateTime::from_timestamp(m.at, 0)
                    .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                let fields = [
                    when,
                    m.kind.as_str().to_string(),
                    m.customer_id,
                    m.subscription_id,
                    money::to_input(m.delta, &currency),
                    currency.clone(),
                    m.event_id,
                ];
                out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
                out.push_str("\r\n");
            }
            if tx.send(Bytes::from(std::mem::take(&mut out))).await.is_err() {
                return;
            }
            let (true, Some(cursor)) = (full, cursor) else { return };
            page = match movements::page_after(&state.db, &currency, &filter, Some(&cursor), PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    // The file ends early; the log says why (the status line is already sent).
                    tracing::error!(error = %e, "movement export failed midway");
                    return;
                }
            };
        }
    });
    csv_response("movements", rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(csv_field("-12.50"), "\"-12.50\"");
        assert_eq!(csv_field("\t=1+1"), "\"'\t=1+1\"");
        assert_eq!(csv_field("\r=cmd"), "\"'\r=cmd\"");
        assert_eq!(csv_field("+1-2@x"), "\"'+1-2@x\"");
        assert_eq!(csv_field("@SUM(A1)"), "\"'@SUM(A1)\"");
    }
}
