//! Reading the stored MRR movements (written by `projection::movements`): filters, sums, the
//! monthly roll-up and cursor pages for the Revenue page and the overview.

use sqlx::Row;

use crate::db::{Db, DbError};
use crate::domain::revenue::{Movement, MovementKind};

/// Which movements a list shows: kinds (`new`, `churn`, or several: `churn,contraction`), a
/// month (`YYYY-MM`) and a window in Unix seconds (`since` excluded, `through` included: the
/// overview's 30-day figures link with theirs).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The accounts whose movements count.
    pub scope: crate::domain::accounts::Scope,
    pub kind: Option<String>,
    pub month: Option<String>,
    pub since: Option<i64>,
    pub through: Option<i64>,
}

impl Filter {
    /// `WHERE` conditions after `currency = $1`, and their values. `None` when a kind is not a
    /// kind or the month not a month: nothing matches.
    fn clause(&self) -> Option<(String, Vec<QueryArg>)> {
        let mut sql = format!(" AND {}", self.scope.filter("account_id"));
        let mut args = Vec::new();
        if let Some(kind) = &self.kind {
            let kinds = kind
                .split(',')
                .map(|k| MovementKind::parse(k.trim()))
                .collect::<Option<Vec<_>>>()?;
            let mut placeholders = Vec::new();
            for k in kinds {
                args.push(QueryArg::Text(k.as_str().to_string()));
                placeholders.push(format!("${}", args.len() + 1));
            }
            sql.push_str(&format!(" AND kind IN ({})", placeholders.join(", ")));
        }
        if let Some(month) = &self.month {
            let (start, end) = month_bounds(month)?;
            args.push(QueryArg::Int(start));
            sql.push_str(&format!(" AND at >= ${}", args.len() + 1));
            args.push(QueryArg::Int(end));
            sql.push_str(&format!(" AND at < ${}", args.len() + 1));
        }
        if let Some(since) = self.since {
            args.push(QueryArg::Int(since));
            sql.push_str(&format!(" AND at > ${}", args.len() + 1));
        }
        if let Some(through) = self.through {
            args.push(QueryArg::Int(through));
            sql.push_str(&format!(" AND at <= ${}", args.len() + 1));
        }
        Some((sql, args))
    }
}

/// What every matching movement adds up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sums {
    /// The net change of MRR.
    pub delta: i64,
    pub movements: i64,
}

#[derive(Clone, Debug)]
enum QueryArg {
    Text(String),
    Int(i64),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: &[QueryArg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            QueryArg::Text(t) => q.bind(t.clone()),
            QueryArg::Int(i) => q.bind(*i),
        };
    }
    q
}

/// The first second of a `YYYY-MM` month and of the next one.
pub fn month_bounds(month: &str) -> Option<(i64, i64)> {
    crate::domain::revenue::month_span(month)
}

fn movement(r: &sqlx::any::AnyRow) -> Result<Movement, sqlx::Error> {
    let kind: String = r.try_get("kind")?;
    Ok(Movement {
        subscription_id: r.try_get("subscription_id")?,
        customer_id: r.try_get("customer_id")?,
        at: r.try_get("at")?,
        event_id: r.try_get("event_id")?,
        kind: MovementKind::parse(&kind).unwrap_or(MovementKind::Expansion),
        delta: r.try_get("delta")?,
        mrr_after: r.try_get("mrr_after")?,
    })
}

const COLUMNS: &str = "customer_id, subscription_id, at, event_id, kind, delta, mrr_after";

/// The sums of every movement in `currency` that matches.
pub async fn sums(db: &Db, currency: &str, filter: &Filter) -> Result<Sums, DbError> {
    let Some((clause, args)) = filter.clause() else {
        return Ok(Sums::default());
    };
    let sum_sql = format!(
        "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) AS delta, CAST(COUNT(*) AS BIGINT) AS n \
         FROM mrr_movements WHERE currency = $1{clause}"
    );
    let row = bind_all(sqlx::query(&sum_sql).bind(currency.to_string()), &args)
        .fetch_one(db.reader())
        .await?;
    Ok(Sums {
        delta: row.try_get("delta")?,
        movements: row.try_get("n")?,
    })
}

/// The matching movements' sums per month and kind, for the months from `first` (a month
/// number, see `domain::calendar::month_number`) on: the Revenue page's roll-up chart. The filter's month
/// is left out (the chart shows the months around it).
pub async fn monthly(
    db: &Db,
    currency: &str,
    filter: &Filter,
    first: i64,
) -> Result<Vec<(i64, MovementKind, i64)>, DbError> {
    let without_month = Filter {
        month: None,
        ..filter.clone()
    };
    let Some((clause, mut args)) = without_month.clause() else {
        return Ok(Vec::new());
    };
    args.push(QueryArg::Int(first));
    let sql = format!(
        "SELECT month, kind, CAST(SUM(delta) AS BIGINT) AS delta FROM mrr_movements \
         WHERE currency = $1{clause} AND month >= ${} GROUP BY month, kind",
        args.len() + 1
    );
    let rows = bind_all(sqlx::query(&sql).bind(currency.to_string()), &args)
        .fetch_all(db.reader())
        .await?;
    rows.iter()
        .filter_map(|r| {
            let kind: String = match r.try_get("kind") {
                Ok(k) => k,
                Err(e) => return Some(Err(e.into())),
            };
            let kind = MovementKind::parse(&kind)?;
            Some((|| Ok((r.try_get("month")?, kind, r.try_get("delta")?)))())
        })
        .collect()
}

/// Where a newest-first walk over the movements stopped: the last row's time, event and
/// subscription.
pub type Cursor = (i64, String, String);

/// The next `limit` matching movements in `currency`, newest first, after `cursor` (the CSV
/// export walks the whole list this way, a page at a time).
pub async fn page_after(
    db: &Db,
    currency: &str,
    filter: &Filter,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<Movement>, DbError> {
    let Some((mut clause, mut args)) = filter.clause() else {
        return Ok(Vec::new());
    };
    if let Some((at, event_id, subscription_id)) = cursor {
        let n = args.len() + 2;
        clause.push_str(&format!(
            " AND (at < ${n} OR (at = ${n} AND (event_id < ${} OR (event_id = ${} AND subscription_id < ${}))))",
            n + 1,
            n + 1,
            n + 2
        ));
        args.push(QueryArg::Int(*at));
        args.push(QueryArg::Text(event_id.clone()));
        args.push(QueryArg::Text(subscription_id.clone()));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM mrr_movements WHERE currency = $1{clause} \
         ORDER BY at DESC, event_id DESC, subscription_id DESC LIMIT {limit}"
    );
    let rows = bind_all(sqlx::query(&sql).bind(currency.to_string()), &args)
        .fetch_all(db.reader())
        .await?;
    Ok(rows.iter().map(movement).collect::<Result<Vec<_>, _>>()?)
}

/// Every movement in `currency`, oldest first (in Stripe's order).
pub async fn all(db: &Db, currency: &str) -> Result<Vec<Movement>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM mrr_movements WHERE currency = $1 ORDER BY at, event_id, subscription_id");
    let rows = sqlx::query(&sql)
        .bind(currency.to_string())
        .fetch_all(db.reader())
        .await?;
    Ok(rows.iter().map(movement).collect::<Result<Vec<_>, _>>()?)
}
