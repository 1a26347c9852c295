//! Revenue analytics: KPIs, MRR movements and monthly series, per currency (never summed across
//! currencies). Definitions in docs/metrics.md.

pub mod mrr;

use std::collections::HashMap;

use sqlx::Row;

use crate::db::{Db, DbError};
pub use crate::domain::metrics::{Kpis, MonthPoint, Movement, MovementKind};

pub const DAY: i64 = 86_400;
pub const WINDOW: i64 = 30 * DAY;

/// The start (Unix seconds, UTC) of the month containing `t`, and of the month `offset` months
/// later (negative: earlier).
pub fn month_start(t: i64, offset: i32) -> i64 {
    use chrono::{Datelike, TimeZone, Utc};
    let d = Utc.timestamp_opt(t, 0).single().unwrap_or_default();
    let total = d.year() * 12 + d.month0() as i32 + offset;
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .map(|x| x.timestamp())
        .unwrap_or(0)
}

/// `YYYY-MM` of a time.
pub fn month_label(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m").to_string())
        .unwrap_or_default()
}

/// Currencies with any subscription or charge, the one with the most active MRR first (the
/// overview's default), then by activity.
pub async fn currencies(db: &Db) -> Result<Vec<String>, DbError> {
    // Subscriptions decide the order; currencies with payments only follow (found through the
    // (currency, created) index one currency at a time, not by scanning every charge).
    let rows = sqlx::query(
        "SELECT currency, CAST(SUM(COALESCE(mrr, 0)) AS BIGINT) AS total, CAST(COUNT(*) AS BIGINT) AS n FROM subscriptions \
         WHERE currency IS NOT NULL GROUP BY currency ORDER BY total DESC, n DESC, currency",
    )
    .fetch_all(db.reader())
    .await?;
    let mut out: Vec<String> = rows
        .iter()
        .filter_map(|r| r.try_get::<String, _>("currency").ok())
        .collect();
    let mut after = String::new();
    loop {
        let next: Option<String> = sqlx::query_scalar("SELECT MIN(currency) FROM charges WHERE currency > $1")
            .bind(&after)
            .fetch_one(db.reader())
            .await?;
        let Some(currency) = next else { break };
        if !out.contains(&currency) {
            out.push(currency.clone());
        }
        after = currency;
    }
    Ok(out)
}

/// Every MRR movement in `currency`, oldest first: each change of a customer's MRR, classified
/// at the customer level (new, expansion, contraction, churn, reactivation). Cached per database
/// and currency until the MRR history changes (a new snapshot changes its count or latest time).
pub async fn movements(db: &Db, currency: &str) -> Result<std::sync::Arc<Vec<Movement>>, DbError> {
    static MOVEMENTS: crate::db::cache::Cached<Vec<Movement>> = crate::db::cache::Cached::new();
    let stamp_row = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(MAX(at), 0) AS BIGINT) AS latest, \
         CAST(COALESCE(SUM(mrr), 0) AS BIGINT) AS total FROM subscription_mrr WHERE currency = $1",
    )
    .bind(currency)
    .fetch_one(db.reader())
    .await?;
    let stamp = (
        stamp_row.try_get("n")?,
        stamp_row.try_get("latest")?,
        stamp_row.try_get("total")?,
    );
    MOVEMENTS
        .get_stamped(db, &format!("movements:{currency}"), stamp, || {
            compute_movements(db, currency)
        })
        .await
}

async fn compute_movements(db: &Db, currency: &str) -> Result<Vec<Movement>, DbError> {
    use futures_util::TryStreamExt;
    // Streamed: the history can be hundreds of thousands of rows, and only movements are kept.
    let mut rows = sqlx::query(
        "SELECT subscription_id, at, event_id, customer_id, mrr FROM subscription_mrr \
         WHERE currency = $1 ORDER BY at, event_id, subscription_id",
    )
    .bind(currency)
    .fetch(db.reader());
    // Per subscription: its MRR so far. Per customer: MRR so far, and whether it ever paid.
    let mut per_sub: HashMap<String, i64> = HashMap::new();
    let mut per_customer: HashMap<String, (i64, bool)> = HashMap::new();
    let mut out = Vec::new();
    while let Some(r) = rows.try_next().await? {
        // Columns by position, keys cloned only when first seen: this loop runs once per
        // snapshot (hundreds of thousands on a large account).
        let sub: String = r.try_get(0)?;
        let mrr: i64 = r.try_get(4)?;
        let before_sub = match per_sub.get_mut(&sub) {
            Some(v) => std::mem::replace(v, mrr),
            None => {
                per_sub.insert(sub.clone(), mrr);
                0
            }
        };
        let delta = mrr - before_sub;
        if delta == 0 {
            continue;
        }
        let at: i64 = r.try_get(1)?;
        let event_id: String = r.try_get(2)?;
        let customer: String = r.try_get::<Option<String>, _>(3)?.unwrap_or_else(|| sub.clone());
        let state = match per_customer.get_mut(&customer) {
            Some(state) => state,
            None => per_customer.entry(customer.clone()).or_insert((0, false)),
        };
        let before = state.0;
        let after = before + delta;
        let kind = if before == 0 && after > 0 {
            if state.1 {
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
        state.0 = after;
        state.1 |= after > 0;
        out.push(Movement {
            subscription_id: sub,
            customer_id: customer,
            at,
            event_id,
            kind,
            delta,
            mrr_after: mrr,
        });
    }
    out.shrink_to_fit();
    Ok(out)
}

/// The movements of one kind (`new`, `churn`, …) and/or one month (`YYYY-MM`), newest first.
pub fn filter_movements<'a>(
    moves: &'a [Movement],
    kind: Option<&'a str>,
    month: Option<&'a str>,
) -> impl Iterator<Item = &'a Movement> + 'a {
    moves
        .iter()
        .rev()
        .filter(move |m| kind.is_none_or(|k| m.kind.as_str() == k))
        .filter(move |m| month.is_none_or(|mo| month_label(m.at) == mo))
}

/// Month-end MRR and each month's movements for the last `months` months (the current one
/// included), from the movements.
pub fn monthly(movements: &[Movement], months: i32, now: i64) -> Vec<MonthPoint> {
    let first = month_start(now, -(months - 1));
    let mut points: Vec<MonthPoint> = (0..months)
        .map(|i| MonthPoint {
            month: month_label(month_start(first, i)),
            ..Default::default()
        })
        .collect();
    let mut mrr = 0i64;
    let mut idx = 0usize;
    for m in movements {
        if m.at > now {
            break;
        }
        if m.at >= first {
            while idx + 1 < points.len() && m.at >= month_start(first, idx as i32 + 1) {
                points[idx].mrr = mrr;
                idx += 1;
            }
            let p = &mut points[idx];
            match m.kind {
                MovementKind::New => p.new += m.delta,
                MovementKind::Expansion => p.expansion += m.delta,
                MovementKind::Reactivation => p.reactivation += m.delta,
                MovementKind::Contraction => p.contraction += m.delta,
                MovementKind::Churn => p.churn += m.delta,
            }
        }
        mrr += m.delta;
    }
    for p in points.iter_mut().skip(idx) {
        p.mrr = mrr;
    }
    points
}

/// Revenue per month: gross (succeeded charges), refunds, lost disputes, net. Closed months are
/// cached per database and currency until the projection writes a charge, refund or dispute
/// created before the current month (counter `revenue_closed`); the open month is summed per call.
pub async fn revenue_by_month(db: &Db, currency: &str, months: i32, now: i64) -> Result<Vec<MonthPoint>, DbError> {
    use crate::db::cache::{self, Cached};
    static CLOSED: Cached<Vec<MonthPoint>> = Cached::new();

    let months = months.max(1);
    let first = month_start(now, -(months - 1));
    let current = month_start(now, 0);
    let closed_starts: Vec<i64> = (0..months - 1).map(|i| month_start(first, i)).collect();
    // Only months closed in real time too are cached (a `now` in the future would count the
    // calendar's open month as closed, and the projection would not signal changes to it).
    let mut points: Vec<MonthPoint> = if current <= month_start(crate::db::now_unix(), 0) {
        // The counter is read before the sums, so a cached entry is never older than its counter.
        let stamp = (cache::counter(db, cache::REVENUE_CLOSED).await?, 0, 0);
        let key = format!("revenue:{currency}:{first}:{current}");
        CLOSED
            .get_stamped(db, &key, stamp, || sum_months(db, currency, &closed_starts, current))
            .await?
            .as_ref()
            .clone()
    } else {
        sum_months(db, currency, &closed_starts, current).await?
    };
    points.extend(sum_months(db, currency, &[current], now + 1).await?);
    Ok(points)
}

/// Sums charges, refunds and lost disputes per month for months starting at `starts` (ascending,
/// consecutive), the last one ending at `end`: one grouped query per table, whatever the rows.
async fn sum_months(db: &Db, currency: &str, starts: &[i64], end: i64) -> Result<Vec<MonthPoint>, DbError> {
    let mut points: Vec<MonthPoint> = starts
        .iter()
        .map(|s| MonthPoint {
            month: month_label(*s),
            ..Default::default()
        })
        .collect();
    let Some(&from) = starts.first() else {
        return Ok(points);
    };
    // `$1` currency, `$2`..`$3` the whole span; month i ends before `$(i + 4)`.
    let bucket = {
        let whens: Vec<String> = (0..starts.len() - 1)
            .map(|i| format!("WHEN created < ${} THEN {i}", i + 4))
            .collect();
        if whens.is_empty() {
            "CAST(0 AS BIGINT)".to_string()
        } else {
            format!("CAST(CASE {} ELSE {} END AS BIGINT)", whens.join(" "), starts.len() - 1)
        }
    };
    let grouped = |table: &str, sums: &str, filter: &str| {
        format!(
            "SELECT {bucket} AS m, {sums} FROM {table} WHERE currency = $1 AND created >= $2 AND created < $3 {filter} GROUP BY m"
        )
    };
    async fn rows(
        db: &Db,
        sql: &str,
        currency: &str,
        from: i64,
        end: i64,
        starts: &[i64],
    ) -> Result<Vec<sqlx::any::AnyRow>, DbError> {
        let mut q = sqlx::query(sql).bind(currency.to_string()).bind(from).bind(end);
        for s in &starts[1..] {
            q = q.bind(*s);
        }
        Ok(q.fetch_all(db.reader()).await?)
    }
    let month = |r: &sqlx::any::AnyRow| -> Result<usize, DbError> {
        let m: i64 = r.try_get("m")?;
        Ok(usize::try_from(m).unwrap_or(0).min(starts.len() - 1))
    };
    let charges = grouped(
        "charges",
        "CAST(SUM(CASE WHEN status = 'succeeded' THEN COALESCE(amount_captured, amount, 0) ELSE 0 END) AS BIGINT) AS g, \
         CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) AS f, CAST(COUNT(*) AS BIGINT) AS n",
        "",
    );
    for r in rows(db, &charges, currency, from, end, starts).await? {
        let p = &mut points[month(&r)?];
        p.gross = r.try_get("g")?;
        p.failed_payments = r.try_get("f")?;
        p.payments = r.try_get("n")?;
    }
    let refunds = grouped(
        "refunds",
        "CAST(SUM(COALESCE(amount, 0)) AS BIGINT) AS r",
        "AND COALESCE(status, 'succeeded') IN ('succeeded', 'pending')",
    );
    for r in rows(db, &refunds, currency, from, end, starts).await? {
        points[month(&r)?].refunds = r.try_get("r")?;
    }
    let disputes = grouped(
        "disputes",
        "CAST(SUM(COALESCE(amount, 0)) AS BIGINT) AS d",
        "AND status = 'lost'",
    );
    for r in rows(db, &disputes, currency, from, end, starts).await? {
        points[month(&r)?].disputes_lost = r.try_get("d")?;
    }
    for p in &mut points {
        p.net = p.gross - p.refunds - p.disputes_lost;
    }
    Ok(points)
}

/// Active subscribers at the end of each month (subscriptions counted in MRR).
pub fn subscribers_by_month(movements: &[Movement], months: i32, now: i64) -> Vec<(String, i64)> {
    let first = month_start(now, -(months - 1));
    let mut live: HashMap<&str, bool> = HashMap::new();
    let mut out = Vec::new();
    let mut iter = movements.iter().peekable();
    for i in 0..months {
        let end = if i == months - 1 {
            now
        } else {
            month_start(first, i + 1) - 1
        };
        while let Some(m) = iter.peek() {
            if m.at > end {
                break;
            }
            live.insert(m.subscription_id.as_str(), m.mrr_after > 0);
            iter.next();
        }
        out.push((
            month_label(month_start(first, i)),
            live.values().filter(|v| **v).count() as i64,
        ));
    }
    out
}

/// The overview's figures for `currency` at `now`.
pub async fn kpis(db: &Db, currency: &str, now: i64) -> Result<Kpis, DbError> {
    let moves = movements(db, currency).await?;
    kpis_with(db, currency, now, &moves).await
}

/// As `kpis`, with the currency's movements already loaded.
pub async fn kpis_with(db: &Db, currency: &str, now: i64, moves: &[Movement]) -> Result<Kpis, DbError> {
    let reader = db.reader();
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(mrr), 0) AS BIGINT) AS mrr, \
                CAST(COUNT(*) AS BIGINT) AS subs, CAST(COUNT(DISTINCT customer_id) AS BIGINT) AS customers \
         FROM subscriptions WHERE currency = $1 AND deleted = 0 AND status IN ('active', 'past_due')",
    )
    .bind(currency)
    .fetch_one(reader)
    .await?;
    let mrr: i64 = row.try_get("mrr")?;
    let active_subscriptions: i64 = row.try_get("subs")?;
    let active_customers: i64 = row.try_get("customers")?;
    let trials: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM subscriptions WHERE currency = $1 AND deleted = 0 AND status = 'trialing'",
    )
    .bind(currency)
    .fetch_one(reader)
    .await?;
    // Trials that ended in the last 30 days, and how many of them now pay.
    let trial_row = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS ended, \
                CAST(COALESCE(SUM(CASE WHEN status IN ('active', 'past_due') THEN 1 ELSE 0 END), 0) AS BIGINT) AS converted \
         FROM subscriptions WHERE currency = $1 AND deleted = 0 AND trial_end IS NOT NULL \
           AND trial_end > $2 AND trial_end <= $3 AND status <> 'trialing'",
    )
    .bind(currency)
    .bind(now - WINDOW)
    .bind(now)
    .fetch_one(reader)
    .await?;
    let trials_ended: i64 = trial_row.try_get("ended")?;
    let trials_converted: i64 = trial_row.try_get("converted")?;

    let this_month = month_start(now, 0);
    let window_start = now - WINDOW;
    let mut new_mrr_this_month = 0;
    let (mut churned_mrr_30d, mut contraction_mrr_30d, mut expansion_mrr_30d) = (0, 0, 0);
    let mut churned_customers_30d = 0;
    let mut mrr_30d_ago = 0;
    let mut customer_mrr: HashMap<&str, i64> = HashMap::new();
    for m in moves {
        if m.at > now {
            break;
        }
        if m.at <= window_start {
            mrr_30d_ago += m.delta;
            *customer_mrr.entry(m.customer_id.as_str()).or_insert(0) += m.delta;
        }
        if m.at >= this_month && m.kind == MovementKind::New {
            new_mrr_this_month += m.delta;
        }
        if m.at > window_start {
            match m.kind {
                MovementKind::Churn => {
                    churned_mrr_30d -= m.delta;
                    churned_customers_30d += 1;
                }
                MovementKind::Contraction => contraction_mrr_30d -= m.delta,
                MovementKind::Expansion => expansion_mrr_30d += m.delta,
                _ => {}
            }
        }
    }
    let customers_30d_ago = customer_mrr.values().filter(|v| **v > 0).count() as i64;
    let net = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'succeeded' THEN COALESCE(amount_captured, amount, 0) ELSE 0 END), 0) AS BIGINT) AS gross, \
                CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed \
         FROM charges WHERE currency = $1 AND created > $2 AND created <= $3",
    )
    .bind(currency)
    .bind(window_start)
    .bind(now)
    .fetch_one(reader)
    .await?;
    let gross_30d: i64 = net.try_get("gross")?;
    let refunds_30d: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds WHERE currency = $1 AND created > $2 AND created <= $3 \
         AND COALESCE(status, 'succeeded') IN ('succeeded', 'pending')",
    )
    .bind(currency)
    .bind(window_start)
    .bind(now)
    .fetch_one(reader)
    .await?;
    let disputes_lost_30d: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM disputes WHERE currency = $1 AND status = 'lost' \
         AND created > $2 AND created <= $3",
    )
    .bind(currency)
    .bind(window_start)
    .bind(now)
    .fetch_one(reader)
    .await?;
    let failed = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(amount_remaining), 0) AS BIGINT) AS amount FROM invoices \
         WHERE currency = $1 AND deleted = 0 AND status = 'open' AND COALESCE(attempt_count, 0) > 0",
    )
    .bind(currency)
    .fetch_one(reader)
    .await?;
    let arpu = if active_customers > 0 {
        (2 * mrr + active_customers) / (2 * active_customers)
    } else {
        0
    };
    // Rates in basis points (1/100 of a percent), rounded half up.
    let rate = |num: i64, den: i64| (den > 0).then(|| (2 * num * 10_000 + den) / (2 * den));
    let customer_churn_bp = rate(churned_customers_30d, customers_30d_ago);
    let revenue_churn_bp = rate(churned_mrr_30d + contraction_mrr_30d, mrr_30d_ago);
    // LTV = ARPU / monthly customer churn rate.
    let ltv = customer_churn_bp
        .filter(|bp| *bp > 0)
        .map(|bp| (2 * arpu * 10_000 + bp) / (2 * bp));
    Ok(Kpis {
        currency: currency.to_string(),
        mrr,
        arr: mrr * 12,
        active_subscriptions,
        active_customers,
        new_mrr_this_month,
        churned_mrr_30d,
        contraction_mrr_30d,
        expansion_mrr_30d,
        churned_customers_30d,
        customers_30d_ago,
        mrr_30d_ago,
        customer_churn_bp,
        revenue_churn_bp,
        arpu,
        ltv,
        gross_30d,
        refunds_30d,
        disputes_lost_30d,
        net_revenue_30d: gross_30d - refunds_30d - disputes_lost_30d,
        failed_payments_30d: net.try_get("failed")?,
        open_failed_invoices: failed.try_get("n")?,
        open_failed_amount: failed.try_get("amount")?,
        trials,
        trials_ended_30d: trials_ended,
        trials_converted_30d: trials_converted,
        trial_conversion_bp: rate(trials_converted, trials_ended),
    })
}

/// Sets `mrr` on subscription rows projected before MRR existed, and gives each a snapshot.
pub async fn backfill_mrr(db: &Db) -> Result<usize, DbError> {
    let rows = sqlx::query("SELECT id, raw, version_at, version_event FROM subscriptions WHERE mrr IS NULL")
        .fetch_all(db.reader())
        .await?;
    let now = crate::db::now_unix();
    for r in &rows {
        let raw: String = r.try_get("raw")?;
        let Ok(object) = serde_json::from_str::<serde_json::Value>(&raw) else {
            continue;
        };
        let id: String = r.try_get("id")?;
        let version = crate::webhooks::projection::Version {
            at: r.try_get("version_at")?,
            event_id: r.try_get("version_event")?,
        };
        let mut tx = db.begin().await?;
        sqlx::query("UPDATE subscriptions SET mrr = $1 WHERE id = $2")
            .bind(mrr::of_subscription(&object, now))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        crate::webhooks::projection::subscriptions::record_mrr(&mut tx, &object, &version)
            .await
            .map_err(|e| DbError::Query(sqlx::Error::Protocol(e.to_string())))?;
        crate::db::cache::bump(&mut tx).await?;
        tx.commit().await?;
    }
    Ok(rows.len())
}
