//! Running sums the database keeps (migrations 0021 and 0023): per currency, the subscriptions
//! and the active ones with their MRR and distinct customers; per currency and UTC day, the
//! charges; per list, status and currency, the totals of the payments, invoices, subscriptions
//! and customers lists. The database's triggers append the change of every write of a
//! subscription, charge, invoice or customer as a row, whoever writes (the worker, backfill,
//! reconciliation, billing actions, hand-run SQL); a figure is the sum of its key's rows, and
//! `compact` folds each key's rows into one. So a first request reads a few rows whatever the
//! size of the account, and the figures equal a scan of the data (tests/integration/sums.rs
//! checks that after every kind of write, on both databases).

use sqlx::Row;

use crate::config::Backend;
use crate::db::{Db, DbError};
use crate::domain::accounts::Scope;
use crate::domain::calendar::DAY;

/// One currency's subscriptions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionSums {
    /// Every subscription row (deleted ones too) and the sum of their MRR.
    pub subscriptions: i64,
    pub mrr: i64,
    /// Not deleted, status active or past_due: counted in MRR.
    pub active: i64,
    pub active_mrr: i64,
    /// Customers with at least one active subscription.
    pub active_customers: i64,
    /// Not deleted, status trialing.
    pub trialing: i64,
}

/// Charges created in a span, in one currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChargeSums {
    /// Succeeded charges' captured amount (the amount when nothing says captured).
    pub gross: i64,
    pub failed: i64,
    /// Every charge.
    pub payments: i64,
}

impl std::ops::AddAssign for ChargeSums {
    fn add_assign(&mut self, o: Self) {
        self.gross += o.gross;
        self.failed += o.failed;
        self.payments += o.payments;
    }
}

/// The sums of one currency's subscriptions in the accounts of `scope`.
pub async fn subscriptions(db: &Db, scope: &Scope, currency: &str) -> Result<SubscriptionSums, DbError> {
    let r = sqlx::query(&format!(
        "SELECT CAST(COALESCE(SUM(subscriptions), 0) AS BIGINT) AS subscriptions, \
                CAST(COALESCE(SUM(mrr), 0) AS BIGINT) AS mrr, \
                CAST(COALESCE(SUM(active), 0) AS BIGINT) AS active, \
                CAST(COALESCE(SUM(active_mrr), 0) AS BIGINT) AS active_mrr, \
                CAST(COALESCE(SUM(active_customers), 0) AS BIGINT) AS active_customers, \
                CAST(COALESCE(SUM(trialing), 0) AS BIGINT) AS trialing \
         FROM subscription_sums WHERE currency = $1 AND {}",
        scope.filter("account_id")
    ))
    .bind(currency)
    .fetch_one(db.reader())
    .await?;
    Ok(SubscriptionSums {
        subscriptions: r.try_get("subscriptions")?,
        mrr: r.try_get("mrr")?,
        active: r.try_get("active")?,
        active_mrr: r.try_get("active_mrr")?,
        active_customers: r.try_get("active_customers")?,
        trialing: r.try_get("trialing")?,
    })
}

/// Currencies with any subscription, the most MRR first (then the most subscriptions).
pub async fn subscription_currencies(db: &Db, scope: &Scope) -> Result<Vec<String>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT currency, CAST(SUM(mrr) AS BIGINT) AS total, CAST(SUM(subscriptions) AS BIGINT) AS n \
         FROM subscription_sums WHERE {} GROUP BY currency HAVING SUM(subscriptions) > 0 \
         ORDER BY total DESC, n DESC, currency",
        scope.filter("account_id")
    ))
    .fetch_all(db.reader())
    .await?;
    Ok(rows.iter().filter_map(|r| r.try_get("currency").ok()).collect())
}

/// The start of the UTC day holding `t`.
fn day_floor(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

/// The start of the first UTC day starting at or after `t`.
fn day_ceil(t: i64) -> i64 {
    -(-t).div_euclid(DAY) * DAY
}

/// Charges created in `[from, to)`: whole days from the day sums, the ends of partial days from
/// the charges themselves (at most two days' rows, over the `(currency, created)` index).
pub async fn charges(db: &Db, scope: &Scope, currency: &str, from: i64, to: i64) -> Result<ChargeSums, DbError> {
    if from >= to {
        return Ok(ChargeSums::default());
    }
    let (first, last) = (day_ceil(from), day_floor(to));
    if first >= last {
        return charge_rows(db, scope, currency, from, to).await;
    }
    let mut sums = charge_rows(db, scope, currency, from, first).await?;
    let r = sqlx::query(&format!(
        "SELECT CAST(COALESCE(SUM(gross), 0) AS BIGINT) AS g, CAST(COALESCE(SUM(failed), 0) AS BIGINT) AS f, \
                CAST(COALESCE(SUM(payments), 0) AS BIGINT) AS n \
         FROM charge_day_sums WHERE currency = $1 AND day >= $2 AND day < $3 AND {}",
        scope.filter("account_id")
    ))
    .bind(currency)
    .bind(first)
    .bind(last)
    .fetch_one(db.reader())
    .await?;
    sums += ChargeSums {
        gross: r.try_get("g")?,
        failed: r.try_get("f")?,
        payments: r.try_get("n")?,
    };
    sums += charge_rows(db, scope, currency, last, to).await?;
    Ok(sums)
}

/// Charges created in `[from, to)`, summed from their rows.
async fn charge_rows(db: &Db, scope: &Scope, currency: &str, from: i64, to: i64) -> Result<ChargeSums, DbError> {
    if from >= to {
        return Ok(ChargeSums::default());
    }
    let r = sqlx::query(&format!(
        "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'succeeded' THEN COALESCE(amount_captured, amount, 0) ELSE 0 END), 0) AS BIGINT) AS g, \
                CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS f, \
                CAST(COUNT(*) AS BIGINT) AS n \
         FROM charges WHERE currency = $1 AND created >= $2 AND created < $3 AND {}",
        scope.filter("account_id")
    ))
    .bind(currency)
    .bind(from)
    .bind(to)
    .fetch_one(db.reader())
    .await?;
    Ok(ChargeSums {
        gross: r.try_get("g")?,
        failed: r.try_get("f")?,
        payments: r.try_get("n")?,
    })
}

/// Charges per month for months starting at `starts` (ascending, consecutive, each the start of
/// a UTC day), the last one ending at `end`: one grouped read of the day sums, and the rows of
/// the last, partial day.
pub async fn charge_months(
    db: &Db,
    scope: &Scope,
    currency: &str,
    starts: &[i64],
    end: i64,
) -> Result<Vec<ChargeSums>, DbError> {
    let mut out = vec![ChargeSums::default(); starts.len()];
    let Some(&from) = starts.first() else {
        return Ok(out);
    };
    let whole = day_floor(end).max(from);
    // `$1` currency, `$2`..`$3` the whole days; month i ends before `$(i + 4)`.
    let bucket = super::month_bucket("day", starts.len(), 4);
    let sql = format!(
        "SELECT {bucket} AS m, CAST(SUM(gross) AS BIGINT) AS g, CAST(SUM(failed) AS BIGINT) AS f, \
         CAST(SUM(payments) AS BIGINT) AS n FROM charge_day_sums \
         WHERE currency = $1 AND day >= $2 AND day < $3 AND {} GROUP BY m",
        scope.filter("account_id")
    );
    let mut q = sqlx::query(&sql).bind(currency.to_string()).bind(from).bind(whole);
    for s in &starts[1..] {
        q = q.bind(*s);
    }
    let last = starts.len() - 1;
    for r in q.fetch_all(db.reader()).await? {
        let m: i64 = r.try_get("m")?;
        out[usize::try_from(m).unwrap_or(0).min(last)] += ChargeSums {
            gross: r.try_get("g")?,
            failed: r.try_get("f")?,
            payments: r.try_get("n")?,
        };
    }
    out[last] += charge_rows(db, scope, currency, whole, end).await?;
    Ok(out)
}

/// A list's totals (`payments`, `invoices`, `subscriptions`, `customers`) over the rows whose
/// status is one of `statuses` (`None`: every row): per currency (`None`: rows without one), the
/// rows and the sum of the list's amount, the most rows first.
pub async fn list_totals(
    db: &Db,
    scope: &Scope,
    list: &str,
    statuses: Option<&[&str]>,
) -> Result<Vec<(Option<String>, i64, i64)>, DbError> {
    let among = match statuses {
        Some([]) => return Ok(Vec::new()),
        Some(s) => format!(
            " AND status IN ({})",
            (2..s.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
        ),
        None => String::new(),
    };
    let sql = format!(
        "SELECT currency, CAST(SUM(n) AS BIGINT) AS n, CAST(SUM(amount) AS BIGINT) AS total FROM list_sums \
         WHERE list = $1{among} AND {} GROUP BY currency HAVING SUM(n) > 0 ORDER BY n DESC, currency",
        scope.filter("account_id")
    );
    let mut q = sqlx::query(&sql).bind(list);
    for s in statuses.unwrap_or_default() {
        q = q.bind(*s);
    }
    q.fetch_all(db.reader())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("currency")?, r.try_get("n")?, r.try_get("total")?)))
        .collect()
}

/// Folds each key's rows into one (a key with one row is left alone). Cheap when there is
/// nothing to fold: one read of each table's small index.
pub async fn compact(db: &Db) -> Result<(), DbError> {
    const TABLES: [(&str, &str, &str); 3] = [
        (
            "subscription_sums",
            "account_id, currency",
            "subscriptions, mrr, active, active_mrr, active_customers, trialing",
        ),
        (
            "charge_day_sums",
            "account_id, currency, day",
            "gross, failed, payments",
        ),
        ("list_sums", "account_id, list, status, currency", "n, amount"),
    ];
    for (table, key, columns) in TABLES {
        let folded: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT CAST(1 AS BIGINT) FROM {table} GROUP BY {key} HAVING COUNT(*) > 1 LIMIT 1"
        ))
        .fetch_optional(db.reader())
        .await?;
        if folded.is_none() {
            continue;
        }
        let sums = columns
            .split(", ")
            .map(|c| format!("SUM({c})"))
            .collect::<Vec<_>>()
            .join(", ");
        match db.backend() {
            // One statement, one snapshot: it deletes exactly the rows it adds up, whatever
            // other transactions commit meanwhile (and a second instance folding at the same
            // time skips the rows this one deleted).
            Backend::Postgres => {
                // A key may be NULL (a list's rows without a currency): NULLs are one key.
                let on = key
                    .split(", ")
                    .map(|k| format!("s.{k} IS NOT DISTINCT FROM k.{k}"))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                sqlx::query(&format!(
                    "WITH k AS (SELECT {key} FROM {table} GROUP BY {key} HAVING COUNT(*) > 1), \
                     gone AS (DELETE FROM {table} s USING k WHERE {on} RETURNING s.*) \
                     INSERT INTO {table} ({key}, {columns}) SELECT {key}, {sums} FROM gone GROUP BY {key}"
                ))
                .execute(db.writer())
                .await?;
            }
            // One writer: nothing else commits inside this transaction. Each key with several
            // rows up to `top` is summed, its rows deleted and the sum inserted (above `top`):
            // two statements per key over the key's index, memory bounded by the keys.
            Backend::Sqlite => {
                let mut tx = db.begin().await?;
                let top: Option<i64> = sqlx::query_scalar(&format!("SELECT MAX(id) FROM {table}"))
                    .fetch_one(&mut *tx)
                    .await?;
                let keys: Vec<&str> = key.split(", ").collect();
                let values: Vec<&str> = columns.split(", ").collect();
                let casts = values
                    .iter()
                    .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let folded = sqlx::query(&format!(
                    "SELECT {key}, {casts} FROM {table} WHERE id <= $1 GROUP BY {key} HAVING COUNT(*) > 1"
                ))
                .bind(top.unwrap_or(0))
                .fetch_all(&mut *tx)
                .await?;
                // `IS`: a NULL key (a list's rows without a currency) matches itself.
                let same = keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| format!("{k} IS ${}", i + 2))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let delete = format!("DELETE FROM {table} WHERE id <= $1 AND {same}");
                let placeholders = (1..=keys.len() + values.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let insert = format!("INSERT INTO {table} ({key}, {columns}) VALUES ({placeholders})");
                for row in &folded {
                    let mut d = sqlx::query(&delete).bind(top.unwrap_or(0));
                    let mut i = sqlx::query(&insert);
                    for k in &keys {
                        // `day` is a number; the other keys are text, perhaps NULL.
                        if *k == "day" {
                            let v: i64 = row.try_get(*k)?;
                            d = d.bind(v);
                            i = i.bind(v);
                        } else {
                            let v: Option<String> = row.try_get(*k)?;
                            d = d.bind(v.clone());
                            i = i.bind(v);
                        }
                    }
                    for c in &values {
                        i = i.bind(row.try_get::<i64, _>(*c)?);
                    }
                    d.execute(&mut *tx).await?;
                    i.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
    }
    Ok(())
}
