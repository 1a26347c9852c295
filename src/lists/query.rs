//! One page of a list and its totals: the query string's filters turned into SQL over the list's
//! `Spec`, keyset pagination, totals per currency from the running sums or a scan.

use std::collections::HashMap;

use sqlx::Row;

use super::{spec, Kind, Spec, PAGE_SIZE};
use crate::db::Db;
use crate::domain::accounts::Scope;
use crate::domain::lists::{Cell, ListResult, Total};
use crate::domain::money;

#[derive(Clone)]
pub(super) enum Param {
    Text(String),
    Int(i64),
}

/// The WHERE clause and its parameters for a query string's filters.
pub(super) struct Filter {
    pub(super) sql: String,
    pub(super) params: Vec<Param>,
    pub(super) sort: &'static str,
    pub(super) ascending: bool,
}

fn day(value: &str) -> Option<i64> {
    chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

pub(super) fn build(spec: &Spec, q: &HashMap<String, String>) -> Result<Filter, String> {
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

pub(super) fn bind<'q>(
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

pub(super) fn select_list(spec: &Spec, sort: &str) -> String {
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

pub(super) fn cell(kind: Kind, row: &sqlx::any::AnyRow, i: usize, currency: &str, customer: Option<&str>) -> Cell {
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

/// The `account_id` column of a list's own table (`s.account_id` for subscriptions …).
pub(super) fn account_column(spec: &Spec) -> String {
    let table = spec.id.split('.').next().unwrap_or_default();
    format!("{table}.account_id")
}

/// `filter` narrowed to the accounts of `scope` (on the list's own table).
pub(super) fn scoped(spec: &Spec, mut filter: Filter, scope: &Scope) -> Filter {
    if *scope != Scope::All {
        filter.sql = format!("{} AND {}", filter.sql, scope.filter(&account_column(spec)));
    }
    filter
}

/// One page of a list of the accounts of `scope`, after the cursor in `q["after"]`
/// ("sortvalue:id").
pub async fn page(
    db: &Db,
    name: &str,
    q: &HashMap<String, String>,
    scope: &Scope,
    wait: std::time::Duration,
) -> Result<ListResult, String> {
    let spec = spec(name).ok_or("No such list.")?;
    let mut filter = scoped(spec, build(spec, q)?, scope);
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
    // sums the database keeps when the filters are at most a status tab (revenue::sums; a few
    // rows, current at once, whatever the size of the table), else from the rows.
    if let Some(totals) = kept_totals(db, name, q, scope).await? {
        return Ok(result(spec, out, next, totals, None));
    }
    let (totals_sql, base, searching) = totals_query(spec, q, scope)?;
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
fn totals_query(spec: &Spec, q: &HashMap<String, String>, scope: &Scope) -> Result<(String, Filter, bool), String> {
    let base = scoped(spec, build(spec, q)?, scope);
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

/// A list's totals from the running sums (revenue::sums), when its filters are at most a status
/// tab they can total (`Ok(None)` otherwise).
pub async fn kept_totals(
    db: &Db,
    name: &str,
    q: &HashMap<String, String>,
    scope: &Scope,
) -> Result<Option<Vec<Total>>, String> {
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
    let sums = crate::revenue::sums::list_totals(db, scope, name, statuses)
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
pub async fn scanned_totals(
    db: &Db,
    name: &str,
    q: &HashMap<String, String>,
    scope: &Scope,
) -> Result<Vec<Total>, String> {
    let spec = spec(name).ok_or("No such list.")?;
    let (sql, base, _) = totals_query(spec, q, scope)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::DISPUTE_URGENCY;

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
