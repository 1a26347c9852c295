//! Revenue analytics: KPIs, MRR movements and monthly series, per currency (never summed across
//! currencies). Definitions in docs/metrics.md.

pub mod connected;
pub mod movements;
pub mod sums;

use sqlx::Row;

use crate::db::{Db, DbError};
use crate::domain::accounts::Scope;
use crate::domain::calendar::{month_label, month_number, month_start};
use crate::domain::revenue::{Kpis, MonthPoint, Movement, MovementKind};

use crate::domain::revenue::WINDOW;

/// Currencies with any subscription or charge, the one with the most active MRR first (the
/// overview's default), then by activity.
pub async fn currencies(db: &Db, scope: &Scope) -> Result<Vec<String>, DbError> {
    // Subscriptions decide the order (their running sums); currencies with payments only follow
    // (found through the (currency, created) index one currency at a time, not by scanning every
    // charge).
    let mut out = sums::subscription_currencies(db, scope).await?;
    let mut after = String::new();
    loop {
        let next: Option<String> = sqlx::query_scalar(&scoped(
            scope,
            "SELECT MIN(currency) FROM charges WHERE currency > $1 AND {scope}",
        ))
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

/// Every MRR movement in `currency`, oldest first (see `movements`).
pub async fn movements(db: &Db, currency: &str) -> Result<Vec<Movement>, DbError> {
    movements::all(db, currency).await
}

/// `CASE` bucketing `column` into `n` consecutive months: month 0 until the value of parameter
/// `$first_param`, month i until `$(first_param + i)`, the last month after that.
fn month_bucket(column: &str, n: usize, first_param: usize) -> String {
    let whens: Vec<String> = (0..n.saturating_sub(1))
        .map(|i| format!("WHEN {column} < ${} THEN {i}", first_param + i))
        .collect();
    if whens.is_empty() {
        "CAST(0 AS BIGINT)".to_string()
    } else {
        format!("CAST(CASE {} ELSE {} END AS BIGINT)", whens.join(" "), n - 1)
    }
}

/// The movements' sums per closed month (before `current`, a month number) and kind.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct ClosedMonth {
    month: i64,
    kind: Option<MovementKind>,
    delta: i64,
    subscribers: i64,
    customers: i64,
}

/// Sums of closed months, grouped along the stored month (an index read in order); cached
/// until the projection adds history dated in a closed month (counter `movements_closed`).
async fn closed_movement_months(
    db: &Db,
    scope: &Scope,
    currency: &str,
    current: i64,
) -> Result<std::sync::Arc<Vec<ClosedMonth>>, DbError> {
    use crate::db::cache::{self, Cached};
    static CLOSED: Cached<Vec<ClosedMonth>> = Cached::new();
    let sum = || async {
        let rows = sqlx::query(&scoped(scope, "SELECT month, kind, CAST(SUM(delta) AS BIGINT) AS delta, CAST(SUM(subscribers) AS BIGINT) AS subscribers, \
             CAST(SUM(customers) AS BIGINT) AS customers FROM mrr_movements WHERE currency = $1 AND {scope} AND month < $2 \
             GROUP BY month, kind"))
        .bind(currency)
        .bind(current)
        .fetch_all(db.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(ClosedMonth {
                    month: r.try_get("month")?,
                    kind: MovementKind::parse(&kind),
                    delta: r.try_get("delta")?,
                    subscribers: r.try_get("subscribers")?,
                    customers: r.try_get("customers")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()
    };
    // Only months closed in real time are cached (the projection signals changes to those).
    if current > month_number(crate::db::now_unix()) {
        return Ok(std::sync::Arc::new(sum().await?));
    }
    // Read before the sums, so a cached entry is never older than its counter.
    let stamp = (cache::counter(db, cache::MOVEMENTS_CLOSED).await?, current, 0);
    CLOSED
        .get_persisted(db, &format!("movements:{}:{currency}", scope.cache_key()), stamp, sum)
        .await
}

/// Per month of the last `months` (the current one included, until `now`): the movements' sums
/// by kind and the change of subscribers, and the sums of MRR and subscribers before the first
/// month. Closed months come from `closed_movement_months`, the current one is summed by time
/// up to `now`.
async fn movement_sums(
    db: &Db,
    scope: &Scope,
    currency: &str,
    months: i32,
    now: i64,
) -> Result<((i64, i64), Vec<MovementMonth>), DbError> {
    let months = months.max(1) as usize;
    let current = month_number(now);
    let first = current - (months as i64 - 1);
    let closed = closed_movement_months(db, scope, currency, current).await?;
    let open = sqlx::query(&scoped(
        scope,
        "SELECT kind, CAST(SUM(delta) AS BIGINT) AS delta, CAST(SUM(subscribers) AS BIGINT) AS subscribers \
         FROM mrr_movements WHERE currency = $1 AND {scope} AND at >= $2 AND at <= $3 GROUP BY kind",
    ))
    .bind(currency)
    .bind(month_start(now, 0))
    .bind(now)
    .fetch_all(db.reader())
    .await?;
    let mut sums: Vec<(i64, Option<MovementKind>, i64, i64)> = closed
        .iter()
        .map(|c| (c.month, c.kind, c.delta, c.subscribers))
        .collect();
    for r in &open {
        let kind: String = r.try_get("kind")?;
        sums.push((
            current,
            MovementKind::parse(&kind),
            r.try_get("delta")?,
            r.try_get("subscribers")?,
        ));
    }
    // MRR and subscribers before the first month.
    let mut before = (0i64, 0i64);
    let mut out = vec![MovementMonth::default(); months];
    for (month, kind, delta, subscribers) in sums {
        let Ok(i) = usize::try_from(month - first) else {
            before.0 += delta;
            before.1 += subscribers;
            continue;
        };
        let p = &mut out[i.min(months - 1)];
        p.subscribers += subscribers;
        match kind {
            Some(MovementKind::New) => p.new += delta,
            Some(MovementKind::Expansion) => p.expansion += delta,
            Some(MovementKind::Reactivation) => p.reactivation += delta,
            Some(MovementKind::Contraction) => p.contraction += delta,
            Some(MovementKind::Churn) => p.churn += delta,
            None => {}
        }
    }
    Ok((before, out))
}

#[derive(Clone, Default)]
struct MovementMonth {
    new: i64,
    expansion: i64,
    reactivation: i64,
    contraction: i64,
    churn: i64,
    subscribers: i64,
}

impl MovementMonth {
    fn delta(&self) -> i64 {
        self.new + self.expansion + self.reactivation + self.contraction + self.churn
    }
}

/// Month-end MRR with each month's movements, and active subscribers (subscriptions counted in
/// MRR) at each month end, for the last `months` months (the current one included, as of `now`).
pub async fn monthly_series(
    db: &Db,
    scope: &Scope,
    currency: &str,
    months: i32,
    now: i64,
) -> Result<(Vec<MonthPoint>, Vec<(String, i64)>), DbError> {
    let first = month_start(now, -(months.max(1) - 1));
    let (before, sums) = movement_sums(db, scope, currency, months, now).await?;
    let (mut mrr, mut live) = before;
    let mut points = Vec::with_capacity(sums.len());
    let mut subscribers = Vec::with_capacity(sums.len());
    for (i, s) in sums.iter().enumerate() {
        let month = month_label(month_start(first, i as i32));
        mrr += s.delta();
        live += s.subscribers;
        subscribers.push((month.clone(), live));
        points.push(MonthPoint {
            month,
            mrr,
            new: s.new,
            expansion: s.expansion,
            reactivation: s.reactivation,
            contraction: s.contraction,
            churn: s.churn,
            ..Default::default()
        });
    }
    Ok((points, subscribers))
}

/// Month-end MRR and each month's movements (see `monthly_series`).
pub async fn monthly(
    db: &Db,
    scope: &Scope,
    currency: &str,
    months: i32,
    now: i64,
) -> Result<Vec<MonthPoint>, DbError> {
    Ok(monthly_series(db, scope, currency, months, now).await?.0)
}

/// Active subscribers at each month end (see `monthly_series`).
pub async fn subscribers_by_month(
    db: &Db,
    scope: &Scope,
    currency: &str,
    months: i32,
    now: i64,
) -> Result<Vec<(String, i64)>, DbError> {
    Ok(monthly_series(db, scope, currency, months, now).await?.1)
}

/// Revenue per month: gross (succeeded charges), refunds, lost disputes, net. Closed months are
/// cached per database and currency until the projection writes a charge, refund or dispute
/// created before the current month (counter `revenue_closed`); the open month is summed per call.
pub async fn revenue_by_month(
    db: &Db,
    scope: &Scope,
    currency: &str,
    months: i32,
    now: i64,
) -> Result<Vec<MonthPoint>, DbError> {
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
        let key = format!("revenue:{}:{currency}:{first}:{current}", scope.cache_key());
        CLOSED
            .get_persisted(db, &key, stamp, || {
                sum_months(db, scope, currency, &closed_starts, current)
            })
            .await?
            .as_ref()
            .clone()
    } else {
        sum_months(db, scope, currency, &closed_starts, current).await?
    };
    points.extend(sum_months(db, scope, currency, &[current], now + 1).await?);
    Ok(points)
}

/// Sums charges, refunds and lost disputes per month for months starting at `starts` (ascending,
/// consecutive), the last one ending at `end`: one grouped query per table, whatever the rows.
async fn sum_months(
    db: &Db,
    scope: &Scope,
    currency: &str,
    starts: &[i64],
    end: i64,
) -> Result<Vec<MonthPoint>, DbError> {
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
    let bucket = month_bucket("created", starts.len(), 4);
    let grouped = |table: &str, sums: &str, filter: &str| {
        format!(
            "SELECT {bucket} AS m, {sums} FROM {table} WHERE currency = $1 AND {scope} AND created >= $2 AND created < $3 {filter} GROUP BY m",
            scope = scope.filter("account_id")
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
    // Charges from the day sums (sums::charge_months), not their rows.
    for (p, c) in points
        .iter_mut()
        .zip(sums::charge_months(db, scope, currency, starts, end).await?)
    {
        p.gross = c.gross;
        p.failed_payments = c.failed;
        p.payments = c.payments;
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

/// The overview's figures for `currency` at `now`.
/// What net revenue adds up over a window `(from, to]`.
struct Net {
    charges: sums::ChargeSums,
    refunds: i64,
    disputes_lost: i64,
}

/// Charges (whole days from the day sums, the two partial days from rows), refunds and lost
/// disputes created in `(from, to]`.
async fn net_revenue(db: &Db, scope: &Scope, currency: &str, from: i64, to: i64) -> Result<Net, DbError> {
    let charges = sums::charges(db, scope, currency, from + 1, to + 1).await?;
    let refunds: i64 = sqlx::query_scalar(&scoped(scope, "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds WHERE currency = $1 AND {scope} AND created > $2 AND created <= $3 \
         AND COALESCE(status, 'succeeded') IN ('succeeded', 'pending')"))
    .bind(currency)
    .bind(from)
    .bind(to)
    .fetch_one(db.reader())
    .await?;
    let disputes_lost: i64 = sqlx::query_scalar(&scoped(scope, "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM disputes WHERE currency = $1 AND {scope} AND status = 'lost' \
         AND created > $2 AND created <= $3"))
    .bind(currency)
    .bind(from)
    .bind(to)
    .fetch_one(db.reader())
    .await?;
    Ok(Net {
        charges,
        refunds,
        disputes_lost,
    })
}

pub async fn kpis(db: &Db, scope: &Scope, currency: &str, now: i64) -> Result<Kpis, DbError> {
    let reader = db.reader();
    // Running sums kept by the database (sums.rs): a few rows, however many subscriptions.
    let subs = sums::subscriptions(db, scope, currency).await?;
    let (mrr, active_subscriptions, active_customers, trials) =
        (subs.active_mrr, subs.active, subs.active_customers, subs.trialing);
    // Trials that ended in the last 30 days, and how many of them now pay.
    let trial_row = sqlx::query(&scoped(scope, "SELECT CAST(COUNT(*) AS BIGINT) AS ended, \
                CAST(COALESCE(SUM(CASE WHEN status IN ('active', 'past_due') THEN 1 ELSE 0 END), 0) AS BIGINT) AS converted \
         FROM subscriptions WHERE currency = $1 AND {scope} AND deleted = 0 AND trial_end IS NOT NULL \
           AND trial_end > $2 AND trial_end <= $3 AND status <> 'trialing'"))
    .bind(currency)
    .bind(now - WINDOW)
    .bind(now)
    .fetch_one(reader)
    .await?;
    let trials_ended: i64 = trial_row.try_get("ended")?;
    let trials_converted: i64 = trial_row.try_get("converted")?;

    let this_month = month_start(now, 0);
    let window_start = now - WINDOW;
    // MRR and paying customers 30 days ago: the closed months before the window's first month
    // (cached), then that month up to the window's start; and the window's movements. Only
    // about two months of movements are read.
    let window_month = month_number(window_start);
    let closed = closed_movement_months(db, scope, currency, month_number(now)).await?;
    let (mut mrr_30d_ago, mut customers_30d_ago, mut subscriptions_30d_ago) = (0i64, 0i64, 0i64);
    for c in closed.iter().filter(|c| c.month < window_month) {
        mrr_30d_ago += c.delta;
        customers_30d_ago += c.customers;
        subscriptions_30d_ago += c.subscribers;
    }
    let partial = sqlx::query(&scoped(scope, "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) AS delta, CAST(COALESCE(SUM(customers), 0) AS BIGINT) AS customers, \
         CAST(COALESCE(SUM(subscribers), 0) AS BIGINT) AS subscribers \
         FROM mrr_movements WHERE currency = $1 AND {scope} AND at >= $2 AND at <= $3"))
    .bind(currency)
    .bind(month_start(window_start, 0))
    .bind(window_start)
    .fetch_one(reader)
    .await?;
    mrr_30d_ago += partial.try_get::<i64, _>("delta")?;
    customers_30d_ago += partial.try_get::<i64, _>("customers")?;
    subscriptions_30d_ago += partial.try_get::<i64, _>("subscribers")?;
    // The 30 days before the window, for the main figures' change.
    let previous_start = window_start - WINDOW;
    let churned_prev: i64 = sqlx::query_scalar(&scoped(
        scope,
        "SELECT CAST(COALESCE(SUM(-delta), 0) AS BIGINT) FROM mrr_movements \
         WHERE currency = $1 AND {scope} AND kind = 'churn' AND at > $2 AND at <= $3",
    ))
    .bind(currency)
    .bind(previous_start)
    .bind(window_start)
    .fetch_one(reader)
    .await?;
    let net_prev = net_revenue(db, scope, currency, previous_start, window_start).await?;
    let moves = sqlx::query(&scoped(scope, "SELECT CAST(COALESCE(SUM(CASE WHEN kind = 'churn' THEN -delta ELSE 0 END), 0) AS BIGINT) AS churned, \
                CAST(COALESCE(SUM(CASE WHEN kind = 'churn' THEN 1 ELSE 0 END), 0) AS BIGINT) AS churned_customers, \
                CAST(COALESCE(SUM(CASE WHEN kind = 'contraction' THEN -delta ELSE 0 END), 0) AS BIGINT) AS contraction, \
                CAST(COALESCE(SUM(CASE WHEN kind = 'expansion' THEN delta ELSE 0 END), 0) AS BIGINT) AS expansion \
         FROM mrr_movements WHERE currency = $1 AND {scope} AND at > $2 AND at <= $3"))
    .bind(currency)
    .bind(window_start)
    .bind(now)
    .fetch_one(reader)
    .await?;
    let churned_mrr_30d: i64 = moves.try_get("churned")?;
    let churned_customers_30d: i64 = moves.try_get("churned_customers")?;
    let contraction_mrr_30d: i64 = moves.try_get("contraction")?;
    let expansion_mrr_30d: i64 = moves.try_get("expansion")?;
    let new_mrr_this_month: i64 = sqlx::query_scalar(&scoped(
        scope,
        "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) FROM mrr_movements \
         WHERE currency = $1 AND {scope} AND kind = 'new' AND at >= $2 AND at <= $3",
    ))
    .bind(currency)
    .bind(this_month)
    .bind(now)
    .fetch_one(reader)
    .await?;
    let Net {
        charges: net,
        refunds: refunds_30d,
        disputes_lost: disputes_lost_30d,
    } = net_revenue(db, scope, currency, window_start, now).await?;
    let gross_30d = net.gross;
    let failed = sqlx::query(&scoped(scope, "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(amount_remaining), 0) AS BIGINT) AS amount FROM invoices \
         WHERE currency = $1 AND {scope} AND deleted = 0 AND status = 'open' AND COALESCE(attempt_count, 0) > 0"))
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
        net_revenue_prev_30d: net_prev.charges.gross - net_prev.refunds - net_prev.disputes_lost,
        churned_mrr_prev_30d: churned_prev,
        subscriptions_30d_ago,
        failed_payments_30d: net.failed,
        open_failed_invoices: failed.try_get("n")?,
        open_failed_amount: failed.try_get("amount")?,
        trials,
        trials_ended_30d: trials_ended,
        trials_converted_30d: trials_converted,
        trial_conversion_bp: rate(trials_converted, trials_ended),
    })
}

/// The currencies with data, and the one to show: `requested` when it has data, else the first.
pub async fn pick_currency(
    db: &Db,
    scope: &Scope,
    requested: Option<String>,
) -> Result<(Vec<String>, Option<String>), DbError> {
    let currencies = currencies(db, scope).await?;
    let wanted = requested
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| currencies.contains(c));
    let currency = wanted.or_else(|| currencies.first().cloned());
    Ok((currencies, currency))
}

/// `sql` with `{scope}` replaced by the scope's condition on `account_id`.
fn scoped(scope: &Scope, sql: &str) -> String {
    sql.replace("{scope}", &scope.filter("account_id"))
}
