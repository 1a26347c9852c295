//! The lists (subscriptions, payments, invoices, refunds, disputes, customers): one description
//! per list — its columns, status tabs, search and sort — and one query builder for the page
//! (keyset pagination, totals per currency) and the CSV export (streamed, same filters). Every
//! row comes from one query with joins; nothing is queried per row.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sqlx::Row;

use crate::db::Db;
use crate::domain::lists::{Cell, ListResult, Total};
use crate::domain::money;
use crate::state::AppState;

pub const PAGE_SIZE: i64 = 50;

#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// A link to `prefix` + the cell's text.
    Link(&'static str),
    /// Customer label, linking to the customer (needs `customer_id` selected).
    Customer,
    /// Minor units in the row's currency.
    Money,
    Time,
    /// A Stripe status, shown as a badge with a readable label.
    Status,
    /// A Stripe enum value (a reason) as words.
    Label,
    /// `name|interval|interval count|items` of a subscription's main item, as "Pro · monthly".
    Plan,
    /// An id shown where it lives on its customer's page (`/customers/{customer}#{id}`).
    Anchor,
    /// A deadline (Unix seconds) as the days left until it: "3 days left", "Overdue by 2 days".
    DueIn,
}

struct Column {
    header: &'static str,
    sql: &'static str,
    kind: Kind,
}

struct Spec {
    name: &'static str,
    from: &'static str,
    id: &'static str,
    created: &'static str,
    currency: &'static str,
    /// The amount summed in the totals (per currency), if any.
    amount: Option<&'static str>,
    /// (tab value, SQL condition).
    tabs: &'static [(&'static str, &'static str)],
    /// Columns `q` searches (a prefix of the id, or anywhere in email and name).
    search: &'static [&'static str],
    /// (sort value, SQL expression).
    sorts: &'static [(&'static str, &'static str)],
    /// Dates other than `created` that `on=` can put the `since`/`through` window on.
    dates: &'static [(&'static str, &'static str)],
    /// Tabs whose totals add up another amount than `amount` (tab, SQL, what it is).
    tab_amounts: &'static [(&'static str, &'static str, &'static str)],
    /// Tabs that open sorted another way than by date, ascending (tab, sort value).
    tab_sorts: &'static [(&'static str, &'static str)],
    columns: &'static [Column],
}

const fn col(header: &'static str, sql: &'static str, kind: Kind) -> Column {
    Column { header, sql, kind }
}

/// A subquery over the customer's active subscriptions (index subscriptions_customer_active).
macro_rules! active_subscriptions {
    ($select:literal) => {
        concat!(
            "(SELECT ",
            $select,
            " FROM subscriptions sa WHERE sa.customer_id = c.id AND sa.status IN ('active', 'past_due') AND sa.deleted = 0)"
        )
    };
}
const CUSTOMER_ACTIVE: &str = active_subscriptions!("COUNT(*)");
const CUSTOMER_MRR: &str = active_subscriptions!("SUM(sa.mrr)");
const CUSTOMER_MRR_SORT: &str = concat!("COALESCE(", active_subscriptions!("SUM(sa.mrr)"), ", 0)");
const CUSTOMER_PAYING: &str = concat!("EXISTS ", active_subscriptions!("1"));
const CUSTOMER_NOT_PAYING: &str = concat!("NOT EXISTS ", active_subscriptions!("1"), " AND c.deleted = 0");

/// The evidence deadline of a dispute that still needs a response (else NULL).
const DISPUTE_DEADLINE: &str =
    "CASE WHEN d.status IN ('needs_response', 'warning_needs_response') THEN d.evidence_due_by END";
/// Disputes by how soon their evidence is due (those not waiting for a response last).
const DISPUTE_URGENCY: &str = "COALESCE(CASE WHEN d.status IN ('needs_response', 'warning_needs_response') \
    THEN d.evidence_due_by END, 4102444800)";

const SPECS: [Spec; 6] = [
    Spec {
        name: "subscriptions",
        from: "subscriptions s LEFT JOIN customers c ON c.id = s.customer_id",
        id: "s.id",
        created: "s.created",
        currency: "s.currency",
        amount: Some("s.mrr"),
        tabs: &[
            // `s.status || ''` keeps SQLite from picking the status index and sorting every
            // match: walking (created, id) backwards stops after one page.
            ("active", "s.status || '' IN ('active', 'past_due')"),
            ("trialing", "s.status || '' = 'trialing'"),
            ("past_due", "s.status || '' = 'past_due'"),
            ("canceled", "s.status || '' = 'canceled'"),
            (
                "incomplete",
                "s.status || '' IN ('incomplete', 'incomplete_expired', 'unpaid', 'paused')",
            ),
            // Trials that are over (the overview's trial conversion: those active now converted).
            (
                "trial_ended",
                "s.trial_end IS NOT NULL AND s.status || '' <> 'trialing' AND s.deleted = 0",
            ),
        ],
        search: &["s.id", "c.email", "c.name"],
        sorts: &[("created", "s.created"), ("mrr", "COALESCE(s.mrr, 0)")],
        dates: &[("trial_end", "s.trial_end")],
        tab_amounts: &[],
        tab_sorts: &[],
        columns: &[
            col("Customer", "COALESCE(c.name, c.email, s.customer_id)", Kind::Customer),
            col("Plan", crate::db::customers::SUBSCRIPTION_PLAN, Kind::Plan),
            col("Status", "s.status", Kind::Status),
            col("MRR", "s.mrr", Kind::Money),
            col("Started", "s.start_date", Kind::Time),
            col("Period ends", "s.current_period_end", Kind::Time),
            col(
                "Cancels at period end",
                "CASE WHEN s.cancel_at_period_end = 1 THEN 'yes' ELSE '' END",
                Kind::Text,
            ),
            col("Subscription", "s.id", Kind::Anchor),
        ],
    },
    Spec {
        name: "payments",
        from: "charges ch LEFT JOIN customers c ON c.id = ch.customer_id",
        id: "ch.id",
        created: "ch.created",
        currency: "ch.currency",
        amount: Some("ch.amount"),
        tabs: &[
            ("succeeded", "ch.status = 'succeeded'"),
            ("failed", "ch.status = 'failed'"),
            ("refunded", "COALESCE(ch.amount_refunded, 0) > 0"),
            ("disputed", "ch.disputed = 1"),
        ],
        search: &["ch.id", "c.email", "c.name"],
        sorts: &[("created", "ch.created"), ("amount", "COALESCE(ch.amount, 0)")],
        dates: &[],
        tab_amounts: &[],
        tab_sorts: &[],
        columns: &[
            col("Date", "ch.created", Kind::Time),
            col("Payment", "ch.id", Kind::Link("/payments/")),
            col("Customer", "COALESCE(c.name, c.email, ch.customer_id)", Kind::Customer),
            col("Status", "ch.status", Kind::Status),
            col("Amount", "ch.amount", Kind::Money),
            col("Refunded", "ch.amount_refunded", Kind::Money),
            col("Failure", "ch.failure_message", Kind::Text),
        ],
    },
    Spec {
        name: "invoices",
        from: "invoices i LEFT JOIN customers c ON c.id = i.customer_id",
        id: "i.id",
        created: "i.created",
        currency: "i.currency",
        amount: Some("i.amount_due"),
        tabs: &[
            ("paid", "i.status = 'paid'"),
            ("open", "i.status = 'open'"),
            (
                "failed",
                "i.status = 'open' AND COALESCE(i.attempt_count, 0) > 0 AND i.deleted = 0",
            ),
            ("void", "i.status = 'void'"),
            ("uncollectible", "i.status = 'uncollectible'"),
        ],
        search: &["i.id", "c.email", "c.name"],
        sorts: &[("created", "i.created"), ("amount", "COALESCE(i.amount_due, 0)")],
        dates: &[],
        // What is still owed on unpaid invoices (the overview's open failed payments).
        tab_amounts: &[("failed", "i.amount_remaining", "remaining")],
        tab_sorts: &[],
        columns: &[
            col("Date", "i.created", Kind::Time),
            col("Invoice", "i.id", Kind::Anchor),
            col("Customer", "COALESCE(c.name, c.email, i.customer_id)", Kind::Customer),
            col("Status", "i.status", Kind::Status),
            col("Amount due", "i.amount_due", Kind::Money),
            col("Paid", "i.amount_paid", Kind::Money),
            col("Attempts", "i.attempt_count", Kind::Text),
        ],
    },
    Spec {
        name: "refunds",
        from: "refunds r LEFT JOIN charges ch ON ch.id = r.charge_id LEFT JOIN customers c ON c.id = ch.customer_id",
        id: "r.id",
        created: "r.created",
        currency: "r.currency",
        amount: Some("r.amount"),
        tabs: &[
            ("succeeded", "r.status = 'succeeded'"),
            ("pending", "r.status = 'pending'"),
            // What the overview's net revenue subtracts (a refund without a status succeeded).
            ("counted", "COALESCE(r.status, 'succeeded') IN ('succeeded', 'pending')"),
            ("failed", "r.status IN ('failed', 'canceled')"),
        ],
        search: &["r.id", "r.charge_id", "c.email", "c.name"],
        sorts: &[("created", "r.created"), ("amount", "COALESCE(r.amount, 0)")],
        dates: &[],
        tab_amounts: &[],
        tab_sorts: &[],
        columns: &[
            col("Date", "r.created", Kind::Time),
            col("Refund", "r.id", Kind::Anchor),
            col("Payment", "r.charge_id", Kind::Link("/payments/")),
            col("Customer", "COALESCE(c.name, c.email, ch.customer_id)", Kind::Customer),
            col("Status", "r.status", Kind::Status),
            col("Amount", "r.amount", Kind::Money),
            col("Reason", "r.reason", Kind::Label),
        ],
    },
    Spec {
        name: "disputes",
        from: "disputes d LEFT JOIN charges ch ON ch.id = d.charge_id LEFT JOIN customers c ON c.id = ch.customer_id",
        id: "d.id",
        created: "d.created",
        currency: "d.currency",
        amount: Some("d.amount"),
        tabs: &[
            (
                "open",
                "d.status IN ('needs_response', 'warning_needs_response', 'under_review', 'warning_under_review')",
            ),
            (
                "needs_response",
                "d.status IN ('needs_response', 'warning_needs_response')",
            ),
            ("won", "d.status = 'won'"),
            ("lost", "d.status = 'lost'"),
        ],
        search: &["d.id", "d.charge_id", "c.email", "c.name"],
        sorts: &[
            ("created", "d.created"),
            ("evidence_due", "COALESCE(d.evidence_due_by, 0)"),
            ("amount", "COALESCE(d.amount, 0)"),
            // The soonest deadline of a dispute still waiting for evidence first.
            ("urgency", DISPUTE_URGENCY),
        ],
        dates: &[],
        tab_amounts: &[],
        tab_sorts: &[("open", "urgency"), ("needs_response", "urgency")],
        columns: &[
            col("Opened", "d.created", Kind::Time),
            col("Dispute", "d.id", Kind::Anchor),
            col("Payment", "d.charge_id", Kind::Link("/payments/")),
            col("Customer", "COALESCE(c.name, c.email, ch.customer_id)", Kind::Customer),
            col("Status", "d.status", Kind::Status),
            col("Amount", "d.amount", Kind::Money),
            col("Reason", "d.reason", Kind::Label),
            col("Evidence due", "d.evidence_due_by", Kind::Time),
            col("Respond within", DISPUTE_DEADLINE, Kind::DueIn),
        ],
    },
    Spec {
        name: "customers",
        // Per-customer figures as correlated subqueries over index subscriptions_customer_active:
        // a page evaluates them for its rows only, not for every customer.
        from: "customers c",
        id: "c.id",
        created: "c.created",
        currency: "c.currency",
        amount: Some(CUSTOMER_MRR),
        tabs: &[
            ("all", "1 = 1"),
            ("paying", CUSTOMER_PAYING),
            ("not_paying", CUSTOMER_NOT_PAYING),
            ("deleted", "c.deleted = 1"),
        ],
        search: &["c.id", "c.email", "c.name"],
        sorts: &[("created", "c.created"), ("mrr", CUSTOMER_MRR_SORT)],
        dates: &[],
        tab_amounts: &[],
        tab_sorts: &[],
        columns: &[
            col("Customer", "COALESCE(c.name, c.email, c.id)", Kind::Customer),
            col("Email", "c.email", Kind::Text),
            col("Active subscriptions", CUSTOMER_ACTIVE, Kind::Text),
            col("MRR", CUSTOMER_MRR, Kind::Money),
            col("Since", "c.created", Kind::Time),
            col(
                "Status",
                "CASE WHEN c.deleted = 1 THEN 'deleted' ELSE '' END",
                Kind::Status,
            ),
        ],
    },
];

fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

#[derive(Clone)]
enum Param {
    Text(String),
    Int(i64),
}

/// The WHERE clause and its parameters for a query string's filters.
struct Filter {
    sql: String,
    params: Vec<Param>,
    sort: &'static str,
    ascending: bool,
}

fn day(value: &str) -> Option<i64> {
    chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

fn build(spec: &Spec, q: &HashMap<String, String>) -> Result<Filter, String> {
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let next = |p: Param, params: &mut Vec<Param>| {
        params.push(p);
        format!("${}", params.len())
    };
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let Some(tab) = get("status") {
        if tab != "all" {
            let (_, cond) = spec
                .tabs
                .iter()
                .find(|(v, _)| *v == tab)
                .ok_or_else(|| format!("Unknown status {tab:?}."))?;
            conditions.push(format!("({cond})"));
        }
    }
    if let Some(cur) = get("currency") {
        let p = next(Param::Text(cur.to_ascii_lowercase()), &mut params);
        conditions.push(format!("{} = {p}", spec.currency));
    }
    if let Some(text) = get("q") {
        // LIKE wildcards in the search text match literally.
        let escaped: String = text
            .chars()
            .flat_map(|c| {
                if matches!(c, '\\' | '%' | '_') {
                    vec!['\\', c]
                } else {
                    vec![c]
                }
            })
            .collect();
        let like = next(Param::Text(format!("%{}%", escaped.to_lowercase())), &mut params);
        let prefix = next(Param::Text(format!("{escaped}%")), &mut params);
        let parts: Vec<String> = spec
            .search
            .iter()
            .map(|c| {
                if c.ends_with(".id") || c.ends_with("_id") {
                    format!("{c} LIKE {prefix} ESCAPE '\\'")
                } else {
                    format!("LOWER({c}) LIKE {like} ESCAPE '\\'")
                }
            })
            .collect();
        conditions.push(format!("({})", parts.join(" OR ")));
    }
    if let Some(from) = get("from") {
        let t = day(from).ok_or("The from date must look like 2026-01-31.")?;
        let p = next(Param::Int(t), &mut params);
        conditions.push(format!("{} >= {p}", spec.created));
    }
    if let Some(until) = get("until") {
        let t = day(until).ok_or("The until date must look like 2026-01-31.")?;
        let p = next(Param::Int(t + 86_400), &mut params);
        conditions.push(format!("{} < {p}", spec.created));
    }
    // A window in Unix seconds, `since` excluded and `through` included (the overview's 30-day
    // figures link here with their exact window), on `created` or on a date `on=` names.
    let column = match get("on") {
        None | Some("created") => spec.created,
        Some(on) => spec
            .dates
            .iter()
            .find(|(v, _)| *v == on)
            .map(|(_, sql)| *sql)
            .ok_or_else(|| format!("Cannot filter by the date {on:?}."))?,
    };
    for (key, op) in [("since", ">"), ("through", "<=")] {
        if let Some(v) = get(key) {
            let t: i64 = v
                .parse()
                .map_err(|_| format!("{key} must be a time in Unix seconds, like 1767225600."))?;
            let p = next(Param::Int(t), &mut params);
            conditions.push(format!("{column} {op} {p}"));
        }
    }
    let tab_sort = get("status").and_then(|tab| spec.tab_sorts.iter().find(|(t, _)| *t == tab));
    let sort = match get("sort").or(tab_sort.map(|(_, sort)| *sort)) {
        None => spec.sorts[0].1,
        Some(s) => spec
            .sorts
            .iter()
            .find(|(v, _)| *v == s)
            .map(|(_, sql)| *sql)
            .ok_or_else(|| format!("Cannot sort by {s:?}."))?,
    };
    // A tab's own order is soonest first unless the URL says otherwise.
    let ascending = match get("dir") {
        Some(dir) => dir == "asc",
        None => get("sort").is_none() && tab_sort.is_some(),
    };
    Ok(Filter {
        sql: if conditions.is_empty() {
            "1 = 1".into()
        } else {
            conditions.join(" AND ")
        },
        params,
        sort,
        ascending,
    })
}

fn bind<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    params: &'q [Param],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for p in params {
        query = match p {
            Param::Text(t) => query.bind(t.as_str()),
            Param::Int(i) => query.bind(*i),
        };
    }
    query
}

fn select_list(spec: &Spec, sort: &str) -> String {
    let mut cols: Vec<String> = spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| match c.kind {
            Kind::Money | Kind::Time | Kind::DueIn => format!("CAST({} AS BIGINT) AS c{i}", c.sql),
            _ => format!("CAST({} AS TEXT) AS c{i}", c.sql),
        })
        .collect();
    cols.push(format!("CAST({} AS TEXT) AS row_id", spec.id));
    cols.push(format!("CAST({} AS TEXT) AS row_currency", spec.currency));
    cols.push(format!("CAST({sort} AS BIGINT) AS row_sort"));
    if spec.columns.iter().any(|c| matches!(c.kind, Kind::Customer)) {
        cols.push("CAST(c.id AS TEXT) AS row_customer".to_string());
    }
    cols.join(", ")
}

fn cell(kind: Kind, row: &sqlx::any::AnyRow, i: usize, currency: &str, customer: Option<&str>) -> Cell {
    let name = format!("c{i}");
    match kind {
        Kind::Money => {
            let v: Option<i64> = row.try_get(name.as_str()).ok().flatten();
            Cell {
                text: v.map(|v| money::format(v, currency)).unwrap_or_default(),
                raw: v.map(|v| money::to_input(v, currency)).unwrap_or_default(),
                numeric: true,
                ..Cell::default()
            }
        }
        Kind::DueIn => {
            let v: Option<i64> = row.try_get(name.as_str()).ok().flatten();
            let Some(due) = v else { return Cell::default() };
            let (text, tone) = due_in(due, crate::db::now_unix());
            Cell {
                text,
                raw: due.to_string(),
                badge: Some(tone.to_string()),
                ..Cell::default()
            }
        }
        Kind::Time => {
            let v: Option<i64> = row.try_get(name.as_str()).ok().flatten();
            let time = v.and_then(|t| chrono::DateTime::from_timestamp(t, 0));
            Cell {
                // Pages say the zone; CSV keeps the plain time its header names as UTC.
                text: time
                    .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default(),
                raw: time.map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(),
                time: true,
                ..Cell::default()
            }
        }
        _ => {
            let text: String = row
                .try_get::<Option<String>, _>(name.as_str())
                .ok()
                .flatten()
                .unwrap_or_default();
            let href = match kind {
                Kind::Link(prefix) if !text.is_empty() => Some(format!("{prefix}{text}")),
                Kind::Customer => customer.filter(|c| !c.is_empty()).map(|c| format!("/customers/{c}")),
                Kind::Anchor if !text.is_empty() => customer
                    .filter(|c| !c.is_empty())
                    .map(|c| format!("/customers/{c}#{text}")),
                _ => None,
            };
            let shown = match kind {
                Kind::Status | Kind::Label => crate::domain::status::label(&text),
                Kind::Plan => crate::domain::lists::plan(&text),
                _ => text.clone(),
            };
            Cell {
                badge: (matches!(kind, Kind::Status) && !text.is_empty())
                    .then(|| crate::domain::status::tone(&text).to_string()),
                raw: if matches!(kind, Kind::Plan) {
                    shown.clone()
                } else {
                    text
                },
                text: shown,
                href,
                numeric: false,
                time: false,
            }
        }
    }
}

/// A deadline as people count it: whole days left (rounded down), hours on the last day, and
/// how late once it passed; a tone for its badge (`bad` within three days).
fn due_in(due: i64, now: i64) -> (String, &'static str) {
    const DAY: i64 = 86_400;
    let left = due - now;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if left < 0 {
        let late = (-left).div_euclid(DAY);
        let text = if late == 0 {
            "Overdue today".to_string()
        } else {
            format!("Overdue by {}", plural(late, "day"))
        };
        (text, "bad")
    } else if left < DAY {
        (format!("{} left", plural(left.div_euclid(3600).max(1), "hour")), "bad")
    } else {
        let days = left.div_euclid(DAY);
        (
            format!("{} left", plural(days, "day")),
            if days <= 3 { "bad" } else { "wait" },
        )
    }
}

/// One page of a list, after the cursor in `q["after"]` ("sortvalue:id").
pub async fn page(
    db: &Db,
    name: &str,
    q: &HashMap<String, String>,
    wait: std::time::Duration,
) -> Result<ListResult, String> {
    let spec = spec(name).ok_or("No such list.")?;
    let mut filter = build(spec, q)?;
    let (cmp, order) = if filter.ascending { (">", "ASC") } else { ("<", "DESC") };
    let mut sql_where = filter.sql.clone();
    if let Some((sort, id)) = q.get("after").and_then(|a| a.split_once(':')) {
        let sort: i64 = sort
            .parse()
            .map_err(|_| "The page link is broken; start again from the first page.")?;
        filter.params.push(Param::Int(sort));
        let ps = filter.params.len();
        filter.params.push(Param::Text(id.to_string()));
        let pi = filter.params.len();
        sql_where = format!(
            "{sql_where} AND ({s} {cmp} ${ps} OR ({s} = ${ps} AND {id_col} {cmp} ${pi}))",
            s = filter.sort,
            id_col = spec.id
        );
    }
    let sql = format!(
        "SELECT {} FROM {} WHERE {sql_where} ORDER BY {} {order}, {} {order} LIMIT {}",
        select_list(spec, filter.sort),
        spec.from,
        filter.sort,
        spec.id,
        PAGE_SIZE + 1
    );
    let rows = bind(sqlx::query(&sql), &filter.params)
        .fetch_all(db.reader())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, list = name, "list query failed");
            "The database did not answer; try again in a moment.".to_string()
        })?;
    let more = rows.len() as i64 > PAGE_SIZE;
    let mut out = Vec::new();
    let mut next = None;
    for (n, row) in rows.iter().take(PAGE_SIZE as usize).enumerate() {
        let currency: String = row
            .try_get::<Option<String>, _>("row_currency")
            .ok()
            .flatten()
            .unwrap_or_default();
        let customer: Option<String> = row.try_get::<Option<String>, _>("row_customer").ok().flatten();
        out.push(
            spec.columns
                .iter()
                .enumerate()
                .map(|(i, c)| cell(c.kind, row, i, &currency, customer.as_deref()))
                .collect(),
        );
        if more && n as i64 == PAGE_SIZE - 1 {
            let sort: i64 = row.try_get::<Option<i64>, _>("row_sort").ok().flatten().unwrap_or(0);
            let id: String = row
                .try_get::<Option<String>, _>("row_id")
                .ok()
                .flatten()
                .unwrap_or_default();
            next = Some(format!("{sort}:{id}"));
        }
    }
    // Totals of the whole filtered list (not just this page), per currency: from the running
    // sums the database keeps when the filters are at most a status tab (metrics::sums; a few
    // rows, current at once, whatever the size of the table), else from the rows.
    if let Some(totals) = kept_totals(db, name, q).await? {
        return Ok(result(spec, out, next, totals, None));
    }
    let (totals_sql, base, searching) = totals_query(spec, q)?;
    // Totals scan every matching row: cached until the projection changes.
    static TOTALS: crate::db::cache::Cached<Vec<Total>> = crate::db::cache::Cached::new();
    let params_key: Vec<String> = base
        .params
        .iter()
        .map(|p| match p {
            Param::Text(t) => format!("t:{t}"),
            Param::Int(i) => format!("i:{i}"),
        })
        .collect();
    let key = format!("totals:{totals_sql}\u{1f}{}", params_key.join("\u{1f}"));
    let params = base.params.clone();
    let q_owned = q.clone();
    let owned_db = db.clone();
    // Totals of a list without a search are also kept in the database (as long as the projection
    // is unchanged), so the first list after a restart does not scan every row; searches are not,
    // so typing cannot grow that table.
    let keep = (!searching).then(|| key.clone());
    let (totals, totals_as_of) = TOTALS
        .get_bounded(db, &key, 0, wait, move || async move {
            let compute = || async {
                let rows = bind(sqlx::query(&totals_sql), &params)
                    .fetch_all(owned_db.reader())
                    .await?;
                Ok::<_, crate::db::DbError>(rows_to_totals(spec, &q_owned, &rows))
            };
            match keep {
                Some(keep) => {
                    // Read before computing: a value is never older than the stamp it is kept under.
                    let generation = crate::db::cache::generation(&owned_db).await?;
                    // At most once a minute: under steady webhooks totals change with every event.
                    let every = std::time::Duration::from_secs(60);
                    crate::db::cache::persisted(&owned_db, &keep, (generation, 0, 0), every, compute).await
                }
                None => compute().await,
            }
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, list = name, "list totals failed");
            "The database did not answer; try again in a moment.".to_string()
        })?;
    Ok(result(spec, out, next, totals.as_ref().clone(), totals_as_of))
}

/// The amount a list's totals add up for the tab of `q` (SQL), and what it is when it is not the
/// list's usual amount.
fn amount_of(spec: &Spec, q: &HashMap<String, String>) -> (Option<&'static str>, Option<&'static str>) {
    let tab = q.get("status").map(|s| s.trim());
    match spec.tab_amounts.iter().find(|(t, _, _)| Some(*t) == tab) {
        Some((_, sql, what)) => (Some(*sql), Some(*what)),
        None => (spec.amount, None),
    }
}

/// A list's totals query for the filters of `q` (its SQL, the filter, whether it searches).
fn totals_query(spec: &Spec, q: &HashMap<String, String>) -> Result<(String, Filter, bool), String> {
    let base = build(spec, q)?;
    let amount = amount_of(spec, q)
        .0
        .map_or("0".to_string(), |a| format!("COALESCE({a}, 0)"));
    // Without a search, the filters only name the list's own table: total it without the joins.
    let searching = q.get("q").is_some_and(|v| !v.trim().is_empty());
    let from = if searching {
        spec.from
    } else {
        spec.from.split(" LEFT JOIN ").next().unwrap_or(spec.from)
    };
    let sql = format!(
        "SELECT CAST({cur} AS TEXT) AS currency, CAST(COUNT(*) AS BIGINT) AS n, CAST(SUM({amount}) AS BIGINT) AS total \
         FROM {from} WHERE {} GROUP BY {cur} ORDER BY n DESC",
        base.sql,
        cur = spec.currency
    );
    Ok((sql, base, searching))
}

/// The statuses a list's tab stands for, when the running sums can total it: `Some(None)` for
/// every row (no tab, or `all`), `Some(Some(statuses))` for a tab that is exactly "status is one
/// of these" in `SPECS`, `None` otherwise (computed from the rows). Kept equal to `SPECS` by
/// tests/integration/sums.rs, which totals every tab both ways.
fn kept_tab(list: &str, tab: Option<&str>) -> Option<Option<&'static [&'static str]>> {
    let statuses: &'static [&'static str] = match (list, tab) {
        ("payments" | "invoices" | "subscriptions" | "customers", None | Some("all")) => return Some(None),
        ("subscriptions", Some("active")) => &["active", "past_due"],
        ("subscriptions", Some("trialing")) => &["trialing"],
        ("subscriptions", Some("past_due")) => &["past_due"],
        ("subscriptions", Some("canceled")) => &["canceled"],
        ("subscriptions", Some("incomplete")) => &["incomplete", "incomplete_expired", "unpaid", "paused"],
        ("payments", Some("succeeded")) => &["succeeded"],
        ("payments", Some("failed")) => &["failed"],
        ("invoices", Some("paid")) => &["paid"],
        ("invoices", Some("open")) => &["open"],
        ("invoices", Some("void")) => &["void"],
        ("invoices", Some("uncollectible")) => &["uncollectible"],
        _ => return None,
    };
    Some(Some(statuses))
}

/// A list's totals from the running sums (metrics::sums), when its filters are at most a status
/// tab they can total (`Ok(None)` otherwise).
pub async fn kept_totals(db: &Db, name: &str, q: &HashMap<String, String>) -> Result<Option<Vec<Total>>, String> {
    let spec = spec(name).ok_or("No such list.")?;
    let tab = q.get("status").map(|s| s.trim()).filter(|s| !s.is_empty());
    let Some(statuses) = kept_tab(name, tab) else {
        return Ok(None);
    };
    let mut rest = q.clone();
    rest.remove("status");
    if build(spec, &rest)?.sql != "1 = 1" {
        return Ok(None);
    }
    let sums = crate::revenue::sums::list_totals(db, name, statuses)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, list = name, "list totals failed");
            "The database did not answer; try again in a moment.".to_string()
        })?;
    Ok(Some(
        sums.into_iter()
            .map(|(currency, count, total)| {
                let currency = currency.unwrap_or_default();
                Total {
                    count,
                    amount: spec.amount.map(|_| money::format(total, &currency)),
                    sum: total,
                    measure: None,
                    currency,
                }
            })
            .collect(),
    ))
}

/// A list's totals counted from its rows, uncached: what `kept_totals` must equal.
pub async fn scanned_totals(db: &Db, name: &str, q: &HashMap<String, String>) -> Result<Vec<Total>, String> {
    let spec = spec(name).ok_or("No such list.")?;
    let (sql, base, _) = totals_query(spec, q)?;
    let rows = bind(sqlx::query(&sql), &base.params)
        .fetch_all(db.reader())
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows_to_totals(spec, q, &rows))
}

fn result(
    spec: &Spec,
    rows: Vec<Vec<Cell>>,
    next: Option<String>,
    totals: Vec<Total>,
    totals_as_of: Option<i64>,
) -> ListResult {
    ListResult {
        headers: spec.columns.iter().map(|c| c.header.to_string()).collect(),
        rows,
        next,
        totals,
        totals_as_of,
        tabs: spec.tabs.iter().map(|(v, _)| v.to_string()).collect(),
        sorts: spec.sorts.iter().map(|(v, _)| v.to_string()).collect(),
    }
}

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

/// A list's totals per currency from its totals query's rows.
fn rows_to_totals(spec: &Spec, q: &HashMap<String, String>, rows: &[sqlx::any::AnyRow]) -> Vec<Total> {
    let (amount, measure) = amount_of(spec, q);
    rows.iter()
        .map(|r| {
            let currency: String = r
                .try_get::<Option<String>, _>("currency")
                .ok()
                .flatten()
                .unwrap_or_default();
            let total: i64 = r.try_get::<Option<i64>, _>("total").ok().flatten().unwrap_or(0);
            Total {
                count: r.try_get("n").unwrap_or(0),
                amount: amount.map(|_| money::format(total, &currency)),
                sum: total,
                measure: measure.map(str::to_string),
                currency,
            }
        })
        .collect()
}

/// `GET /export/{list}.csv?filters`: every row of the filtered list, streamed as CSV (amounts as
/// plain decimals with a currency column).
pub async fn export(State(state): State<AppState>, Path(file): Path<String>, RawQuery(query): RawQuery) -> Response {
    let q: HashMap<String, String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let Some(name) = file.strip_suffix(".csv") else {
        return (StatusCode::NOT_FOUND, "No such export.").into_response();
    };
    if name == "movements" {
        return export_movements(state, q).await;
    }
    let Some(spec) = spec(name) else {
        return (StatusCode::NOT_FOUND, "No such export.").into_response();
    };
    let filter = match build(spec, &q) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let (cmp_order, _) = if filter.ascending { ("ASC", ()) } else { ("DESC", ()) };
    let sql = format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {} {cmp_order}, {} {cmp_order}",
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

async fn export_movements(state: AppState, q: HashMap<String, String>) -> Response {
    use crate::revenue::movements;
    let Some(currency) = q.get("currency").filter(|c| !c.is_empty()).cloned() else {
        return (StatusCode::BAD_REQUEST, "Choose a currency.").into_response();
    };
    let mut filter = movements::Filter {
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

    #[test]
    fn deadlines_count_days_left_and_days_late() {
        let now = 1_800_000_000;
        assert_eq!(due_in(now + 10 * 86_400 + 5, now), ("10 days left".to_string(), "wait"));
        assert_eq!(due_in(now + 3 * 86_400, now), ("3 days left".to_string(), "bad"));
        assert_eq!(due_in(now + 86_400, now), ("1 day left".to_string(), "bad"));
        assert_eq!(due_in(now + 5 * 3600 + 10, now), ("5 hours left".to_string(), "bad"));
        assert_eq!(due_in(now + 30, now), ("1 hour left".to_string(), "bad"));
        assert_eq!(due_in(now - 60, now), ("Overdue today".to_string(), "bad"));
        assert_eq!(
            due_in(now - 2 * 86_400 - 1, now),
            ("Overdue by 2 days".to_string(), "bad")
        );
    }

    #[test]
    fn open_disputes_open_soonest_deadline_first() {
        let spec = spec("disputes").unwrap();
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let f = build(spec, &q(&[("status", "open")])).unwrap();
        assert_eq!((f.sort, f.ascending), (DISPUTE_URGENCY, true));
        let f = build(spec, &q(&[("status", "open"), ("dir", "desc")])).unwrap();
        assert_eq!((f.sort, f.ascending), (DISPUTE_URGENCY, false));
        let f = build(spec, &q(&[("status", "won")])).unwrap();
        assert_eq!((f.sort, f.ascending), ("d.created", false));
        let f = build(spec, &q(&[("status", "open"), ("sort", "amount")])).unwrap();
        assert_eq!((f.sort, f.ascending), ("COALESCE(d.amount, 0)", false));
    }

    #[test]
    fn filters_refuse_unknown_tabs_and_sorts() {
        let spec = spec("payments").unwrap();
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert!(build(spec, &q("status", "nope")).is_err());
        assert!(build(spec, &q("sort", "id; DROP TABLE")).is_err());
        assert!(build(spec, &q("from", "yesterday")).is_err());
        let f = build(spec, &q("status", "failed")).unwrap();
        assert_eq!(f.sql, "(ch.status = 'failed')");
    }
}
