//! MRR movements, stored. Each change of a customer's MRR is a row of `mrr_movements`, classified
//! at the customer level (new, expansion, contraction, churn, reactivation). A customer's rows are
//! rebuilt from its MRR history (`subscription_mrr`, in Stripe's order whatever the arrival order)
//! inside the projection's transaction whenever a snapshot is added, so the overview and the
//! Revenue page are sums and pages over an index: no replay of the whole history per request, and
//! memory does not grow with it.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use sqlx::{AnyConnection, Row};

use crate::db::{Db, DbError};
use crate::domain::revenue::{Movement, MovementKind};

/// A movement and what it changes besides MRR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    pub movement: Movement,
    /// +1 when the subscription starts counting in MRR, -1 when it stops, else 0.
    pub subscribers: i64,
    /// +1 when the customer starts paying (new, reactivation), -1 when it churns, else 0.
    pub customers: i64,
}

/// One snapshot of a customer's MRR history: subscription, time, event, the subscription's MRR.
pub type Snapshot = (String, i64, String, i64);

/// One customer's movements from its history in time order (one snapshot per subscription and
/// second). Within one second, changes that raise MRR come before those that lower it: the
/// customer moved from one plan to another, it did not churn in between.
pub fn derive(customer: &str, history: impl IntoIterator<Item = Snapshot>) -> Vec<Derived> {
    let mut history: Vec<Snapshot> = history.into_iter().collect();
    history.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    let mut per_sub: HashMap<String, i64> = HashMap::new();
    let mut ordered: Vec<(Snapshot, i64)> = Vec::with_capacity(history.len());
    for second in history.chunk_by(|a, b| a.1 == b.1) {
        let mut group: Vec<(Snapshot, i64)> = second
            .iter()
            .map(|snap| {
                let delta = snap.3 - per_sub.get(&snap.0).copied().unwrap_or(0);
                (snap.clone(), delta)
            })
            .collect();
        group.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0 .0.cmp(&b.0 .0)));
        for (snap, _) in &group {
            per_sub.insert(snap.0.clone(), snap.3);
        }
        ordered.extend(group);
    }
    let mut per_sub: HashMap<String, i64> = HashMap::new();
    let (mut customer_mrr, mut ever_paid) = (0i64, false);
    let mut out = Vec::new();
    for ((sub, at, event_id, mrr), _) in ordered {
        let before_sub = per_sub.insert(sub.clone(), mrr).unwrap_or(0);
        let delta = mrr - before_sub;
        if delta == 0 {
            continue;
        }
        let before = customer_mrr;
        let after = before + delta;
        let kind = if before == 0 && after > 0 {
            if ever_paid {
                MovementKind::Reactivation
            } else {
                MovementKind::New
            }
        } else if before > 0 && after <= 0 {
            MovementKind::Churn
        } else if delta > 0 {
            MovementKind::Expansion
        } else {
            MovementKind::Contraction
        };
        customer_mrr = after;
        ever_paid |= after > 0;
        let subscribers = i64::from(mrr > 0) - i64::from(before_sub > 0);
        let customers = match kind {
            MovementKind::New | MovementKind::Reactivation => 1,
            MovementKind::Churn => -1,
            _ => 0,
        };
        out.push(Derived {
            movement: Movement {
                subscription_id: sub,
                customer_id: customer.to_string(),
                at,
                event_id,
                kind,
                delta,
                mrr_after: mrr,
            },
            subscribers,
            customers,
        });
    }
    out
}

/// Rebuilds the movements of one customer in one currency (`customer` `None`: a subscription
/// without customer, which counts as its own customer) inside the caller's transaction.
pub async fn rebuild_customer(
    conn: &mut AnyConnection,
    currency: &str,
    customer: Option<&str>,
    subscription_id: &str,
) -> Result<(), sqlx::Error> {
    let (sql, key) = match customer {
        Some(c) => (
            "SELECT subscription_id, at, event_id, mrr FROM subscription_mrr \
             WHERE customer_id = $1 AND currency = $2 ORDER BY at, event_id, subscription_id",
            c,
        ),
        None => (
            "SELECT subscription_id, at, event_id, mrr FROM subscription_mrr \
             WHERE subscription_id = $1 AND currency = $2 AND customer_id IS NULL ORDER BY at, event_id, subscription_id",
            subscription_id,
        ),
    };
    // Two transactions adding to one customer's history at once (two instances' workers, or a
    // backfill beside the worker) would each miss the other's point and write movements from
    // half the history. On Postgres the second waits here for the first to commit, then reads
    // the whole history; SQLite has a single writer.
    if !conn.backend_name().eq_ignore_ascii_case("sqlite") {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("mrr_movements:{currency}:{key}"))
            .execute(&mut *conn)
            .await?;
    }
    let rows = sqlx::query(sql).bind(key).bind(currency).fetch_all(&mut *conn).await?;
    let mut history = Vec::with_capacity(rows.len());
    for r in &rows {
        history.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
    }
    sqlx::query("DELETE FROM mrr_movements WHERE currency = $1 AND customer_id = $2")
        .bind(currency)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    insert(conn, currency, &derive(key, history)).await
}

async fn insert(conn: &mut AnyConnection, currency: &str, rows: &[Derived]) -> Result<(), sqlx::Error> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    // A customer's movements are its account's (one customer, one account): the account of its
    // subscription.
    let account: String = sqlx::query_scalar("SELECT account_id FROM subscriptions WHERE id = $1")
        .bind(&first.movement.subscription_id)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or_default();
    let per_statement = crate::db::rows_per_statement(conn);
    for chunk in rows.chunks(per_statement) {
        let mut params = crate::db::Params::new(conn);
        let values: Vec<String> = (0..chunk.len()).map(|_| format!("({})", params.list(12))).collect();
        let sql = format!(
            "INSERT INTO mrr_movements (currency, customer_id, subscription_id, at, month, event_id, kind, delta, \
             mrr_after, subscribers, customers, account_id) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for d in chunk {
            let m = &d.movement;
            q = q
                .bind(currency)
                .bind(&m.customer_id)
                .bind(&m.subscription_id)
                .bind(m.at)
                .bind(crate::domain::calendar::month_number(m.at))
                .bind(&m.event_id)
                .bind(m.kind.as_str())
                .bind(m.delta)
                .bind(m.mrr_after)
                .bind(d.subscribers)
                .bind(d.customers)
                .bind(&account);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

const BUILT: &str = "mrr_movements_built";

/// Fills `mrr_movements` from the whole MRR history once (databases from before the table, and
/// after a change of how movements are derived: bump the marker's value). Several instances
/// starting together on Postgres: one builds, the others wait for it and find the marker.
pub async fn ensure_built(db: &Db) -> Result<(), DbError> {
    // 2: one snapshot per subscription and second, increases first within a second.
    const VERSION: &str = "2";
    if crate::db::settings::get(db, BUILT).await?.as_deref() == Some(VERSION) {
        return Ok(());
    }
    let mut tx = super::Tx::begin(db).await?;
    if db.backend() == crate::config::Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7243318401)")
            .execute(&mut *tx)
            .await?;
        let built: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(BUILT)
            .fetch_optional(&mut *tx)
            .await?;
        if built.as_deref() == Some(VERSION) {
            return Ok(());
        }
    }
    sqlx::query("DELETE FROM mrr_movements").execute(&mut *tx).await?;
    // Streamed from a reader, one customer at a time, written by the transaction: the history
    // can be hundreds of thousands of rows. (SQLite: the transaction holds the only writer, so
    // the history cannot change meanwhile; Postgres: the worker starts after this.)
    let mut rows = sqlx::query(
        "SELECT currency, COALESCE(customer_id, subscription_id) AS customer, subscription_id, at, event_id, mrr \
         FROM subscription_mrr WHERE currency IS NOT NULL \
         ORDER BY currency, COALESCE(customer_id, subscription_id), at, event_id, subscription_id",
    )
    .fetch(db.reader());
    let mut group: Option<(String, String)> = None;
    let mut history: Vec<Snapshot> = Vec::new();
    let mut batch: Vec<Derived> = Vec::new();
    let mut batch_currency = String::new();
    let mut built = 0usize;
    loop {
        let row = rows.try_next().await?;
        let key = match &row {
            Some(r) => Some((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)),
            None => None,
        };
        // A customer's history is complete when the next row is someone else's (or none).
        if let Some((currency, customer)) = group.take_if(|g| Some(&*g) != key.as_ref()) {
            if currency != batch_currency || batch.len() >= 4096 {
                insert(&mut tx, &batch_currency, &batch).await?;
                batch.clear();
                batch_currency = currency;
            }
            batch.extend(derive(&customer, history.drain(..)));
            built += 1;
        }
        let Some(r) = row else { break };
        if group.is_none() {
            group = key;
        }
        history.push((r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?));
    }
    drop(rows);
    insert(&mut tx, &batch_currency, &batch).await?;
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(BUILT)
    .bind(VERSION)
    .bind(crate::db::now_unix())
    .execute(&mut *tx)
    .await?;
    crate::db::cache::bump_counter(&mut tx, crate::db::cache::MOVEMENTS_CLOSED).await?;
    tx.commit().await?;
    if built > 0 {
        tracing::info!(customers = built, "MRR movements built from the MRR history");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(sub: &str, at: i64, event: &str, mrr: i64) -> Snapshot {
        (sub.into(), at, event.into(), mrr)
    }

    fn kinds(rows: &[Derived]) -> Vec<(String, MovementKind, i64)> {
        rows.iter()
            .map(|d| (d.movement.subscription_id.clone(), d.movement.kind, d.movement.delta))
            .collect()
    }

    #[test]
    fn a_switch_between_subscriptions_in_one_second_is_not_a_churn() {
        // sub_a 10.00 from t=100; at t=200 it ends and sub_b 20.00 starts, in the same second.
        // In either order of the history rows (the ids say nothing about order).
        for history in [
            vec![
                snap("sub_a", 100, "evt_1", 1000),
                snap("sub_a", 200, "evt_9", 0),
                snap("sub_b", 200, "evt_2", 2000),
            ],
            vec![
                snap("sub_b", 200, "evt_2", 2000),
                snap("sub_a", 200, "evt_9", 0),
                snap("sub_a", 100, "evt_1", 1000),
            ],
        ] {
            assert_eq!(
                kinds(&derive("cus_1", history)),
                [
                    ("sub_a".to_string(), MovementKind::New, 1000),
                    ("sub_b".to_string(), MovementKind::Expansion, 2000),
                    ("sub_a".to_string(), MovementKind::Contraction, -1000),
                ]
            );
        }
    }

    #[test]
    fn a_customer_leaving_every_subscription_in_one_second_churns_once() {
        let history = vec![
            snap("sub_a", 100, "evt_1", 1000),
            snap("sub_b", 100, "evt_2", 500),
            snap("sub_b", 300, "evt_3", 0),
            snap("sub_a", 300, "evt_4", 0),
        ];
        let rows = derive("cus_1", history);
        assert_eq!(
            kinds(&rows),
            [
                ("sub_a".to_string(), MovementKind::New, 1000),
                ("sub_b".to_string(), MovementKind::Expansion, 500),
                ("sub_b".to_string(), MovementKind::Contraction, -500),
                ("sub_a".to_string(), MovementKind::Churn, -1000),
            ]
        );
        assert_eq!(rows.iter().map(|d| d.customers).sum::<i64>(), 0);
    }
}
