//! The Connect list: each connected account's volume, MRR and the application fees the platform
//! took from it, per currency (never summed across currencies).

use std::collections::BTreeMap;

use sqlx::Row;

use crate::db::{Db, DbError};
use crate::domain::accounts::{ConnectedAccount, ConnectedFigures, Scope};
use crate::domain::revenue::WINDOW;

/// The connected accounts of `scope` with their figures as of `now`.
pub async fn list(db: &Db, scope: &Scope, now: i64) -> Result<Vec<ConnectedAccount>, DbError> {
    let accounts = crate::db::accounts::list(db).await?;
    let connected: Vec<_> = accounts
        .into_iter()
        .filter(|a| a.kind == crate::domain::accounts::AccountKind::Connected && scope.covers(&a.id))
        .collect();
    if connected.is_empty() {
        return Ok(Vec::new());
    }
    let only = Scope::only(connected.iter().map(|a| a.id.clone()));
    // (account, currency) → figures.
    let mut figures: BTreeMap<(String, String), ConnectedFigures> = BTreeMap::new();
    let mut add = |account: String, currency: String, f: &dyn Fn(&mut ConnectedFigures)| {
        let entry = figures
            .entry((account, currency.clone()))
            .or_insert_with(|| ConnectedFigures {
                currency,
                ..Default::default()
            });
        f(entry);
    };
    let volume = sqlx::query(&format!(
        "SELECT account_id, currency, CAST(SUM(COALESCE(amount_captured, amount, 0)) AS BIGINT) AS v FROM charges \
         WHERE status = 'succeeded' AND currency IS NOT NULL AND created > $1 AND created <= $2 AND {} \
         GROUP BY account_id, currency",
        only.filter("account_id")
    ))
    .bind(now - WINDOW)
    .bind(now)
    .fetch_all(db.reader())
    .await?;
    for r in &volume {
        let v: i64 = r.try_get("v")?;
        add(r.try_get("account_id")?, r.try_get("currency")?, &|f| f.volume_30d = v);
    }
    let mrr = sqlx::query(&format!(
        "SELECT account_id, currency, CAST(SUM(active_mrr) AS BIGINT) AS m FROM subscription_sums WHERE {} \
         GROUP BY account_id, currency HAVING SUM(subscriptions) > 0",
        only.filter("account_id")
    ))
    .fetch_all(db.reader())
    .await?;
    for r in &mrr {
        let m: i64 = r.try_get("m")?;
        add(r.try_get("account_id")?, r.try_get("currency")?, &|f| f.mrr = m);
    }
    // Fees are the platform's objects: the platforms in scope, taken from these accounts.
    let fees = sqlx::query(&format!(
        "SELECT connected_account_id, currency, \
         CAST(SUM(COALESCE(amount, 0) - COALESCE(amount_refunded, 0)) AS BIGINT) AS f FROM application_fees \
         WHERE currency IS NOT NULL AND created > $1 AND created <= $2 AND {} AND {} \
         GROUP BY connected_account_id, currency",
        only.filter("connected_account_id"),
        scope.filter("account_id")
    ))
    .bind(now - WINDOW)
    .bind(now)
    .fetch_all(db.reader())
    .await?;
    for r in &fees {
        let fee: i64 = r.try_get("f")?;
        add(r.try_get("connected_account_id")?, r.try_get("currency")?, &|f| {
            f.fees_30d = fee
        });
    }
    let mut out: Vec<ConnectedAccount> = connected
        .into_iter()
        .map(|a| {
            let mut mine: Vec<ConnectedFigures> = figures
                .iter()
                .filter(|((account, _), _)| *account == a.id)
                .map(|(_, f)| f.clone())
                .collect();
            mine.sort_by(|x, y| y.volume_30d.cmp(&x.volume_30d).then(x.currency.cmp(&y.currency)));
            ConnectedAccount {
                id: a.id,
                name: a.name,
                disabled: a.disabled,
                figures: mine,
            }
        })
        .collect();
    // The busiest first (by their largest currency's volume), then by name.
    out.sort_by(|x, y| {
        let top = |a: &ConnectedAccount| a.figures.first().map_or(0, |f| f.volume_30d);
        top(y).cmp(&top(x)).then(x.name.cmp(&y.name))
    });
    Ok(out)
}
