//! Customer queries: the list and one customer's billing history, each in a fixed number of queries.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Db, DbError};
use crate::domain::customers::{CustomerDetail, CustomerRow, MoneyRow, PaymentMethodRow, SubscriptionRow};

/// A subscription's largest item: its interval, interval count, how many items the subscription
/// has, and its product's name last (a name may hold any character), packed for
/// `domain::lists::plan`; the subscriptions list shows it too.
pub const SUBSCRIPTION_PLAN: &str = "(SELECT COALESCE(si.recurring_interval, '') \
    || '|' || CAST(COALESCE(si.recurring_interval_count, 1) AS TEXT) \
    || '|' || CAST((SELECT COUNT(*) FROM subscription_items sj WHERE sj.subscription_id = s.id) AS TEXT) \
    || '|' || COALESCE(p.name, si.product_id, '') \
    FROM subscription_items si LEFT JOIN products p ON p.id = si.product_id WHERE si.subscription_id = s.id \
    ORDER BY COALESCE(si.unit_amount, 0) * COALESCE(si.quantity, 1) DESC, si.id LIMIT 1)";

const LIVE_SUBSCRIPTION: &str = "('active', 'trialing', 'past_due')";

fn customer_row(r: &AnyRow) -> Result<CustomerRow, sqlx::Error> {
    Ok(CustomerRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        created: r.try_get("created")?,
        deleted: r.try_get::<i64, _>("deleted")? != 0,
        active_subscriptions: r.try_get("active_subscriptions")?,
    })
}

fn customer_select() -> String {
    format!(
        "SELECT c.id, c.email, c.name, c.created, c.deleted, \
         (SELECT COUNT(*) FROM subscriptions s WHERE s.customer_id = c.id AND s.status IN {LIVE_SUBSCRIPTION}) \
           AS active_subscriptions FROM customers c"
    )
}

fn money_rows(rows: &[AnyRow], note: &str) -> Result<Vec<MoneyRow>, sqlx::Error> {
    rows.iter()
        .map(|r| {
            Ok(MoneyRow {
                id: r.try_get("id")?,
                created: r.try_get("created")?,
                status: r.try_get("status")?,
                amount: r.try_get("amount")?,
                currency: r.try_get("currency")?,
                note: if note.is_empty() { None } else { r.try_get(note)? },
            })
        })
        .collect()
}

pub async fn detail(db: &Db, id: &str) -> Result<Option<CustomerDetail>, DbError> {
    let Some(customer) = sqlx::query(&format!("{} WHERE c.id = $1", customer_select()))
        .bind(id)
        .fetch_optional(db.reader())
        .await?
    else {
        return Ok(None);
    };
    let customer = customer_row(&customer)?;
    let pool = db.reader();
    let subs = sqlx::query(&format!(
        "SELECT s.id, s.status, s.currency, s.cancel_at_period_end, s.current_period_end, s.items_incomplete, s.mrr, \
         CAST({} AS TEXT) AS plan, \
         CAST((SELECT SUM(COALESCE(i.quantity, 1)) FROM subscription_items i WHERE i.subscription_id = s.id) AS BIGINT) AS seats \
         FROM subscriptions s WHERE s.customer_id = $1 ORDER BY COALESCE(s.created, 0) DESC",
        SUBSCRIPTION_PLAN
    ))
    .bind(id)
    .fetch_all(pool)
    .await?;
    let subscriptions = subs
        .iter()
        .map(|r| {
            let seats: Option<i64> = r.try_get("seats")?;
            let plan: Option<String> = r.try_get("plan")?;
            Ok(SubscriptionRow {
                id: r.try_get("id")?,
                status: r.try_get("status")?,
                currency: r.try_get("currency")?,
                cancel_at_period_end: r.try_get::<Option<i64>, _>("cancel_at_period_end")?.unwrap_or(0) != 0,
                current_period_end: r.try_get("current_period_end")?,
                plan: crate::domain::lists::plan(plan.as_deref().unwrap_or_default()),
                quantity: seats.unwrap_or(0),
                mrr: r.try_get("mrr")?,
                items_incomplete: r.try_get::<i64, _>("items_incomplete")? != 0,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let invoices = sqlx::query(
        "SELECT id, created, status, total AS amount, currency, billing_reason FROM invoices \
         WHERE customer_id = $1 ORDER BY COALESCE(created, 0) DESC LIMIT 100",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let charges = sqlx::query(
        "SELECT id, created, status, amount, currency, failure_message FROM charges \
         WHERE customer_id = $1 ORDER BY COALESCE(created, 0) DESC LIMIT 100",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let refunds = sqlx::query(
        "SELECT r.id, r.created, r.status, r.amount, r.currency, r.reason FROM refunds r \
         JOIN charges c ON c.id = r.charge_id WHERE c.customer_id = $1 ORDER BY COALESCE(r.created, 0) DESC LIMIT 100",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let disputes = sqlx::query(
        "SELECT d.id, d.created, d.status, d.amount, d.currency, d.reason FROM disputes d \
         JOIN charges c ON c.id = d.charge_id WHERE c.customer_id = $1 ORDER BY COALESCE(d.created, 0) DESC LIMIT 100",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let methods = sqlx::query(
        "SELECT id, type, card_brand, card_last4, card_exp_month, card_exp_year FROM payment_methods \
         WHERE customer_id = $1 ORDER BY COALESCE(created, 0) DESC",
    )
    .bind(id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(PaymentMethodRow {
            id: r.try_get("id")?,
            kind: r.try_get("type")?,
            card_brand: r.try_get("card_brand")?,
            card_last4: r.try_get("card_last4")?,
            exp_month: r.try_get("card_exp_month")?,
            exp_year: r.try_get("card_exp_year")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // The timeline: events about the customer or any of its objects.
    let events = super::events::for_customer(db, id, 100).await?;
    Ok(Some(CustomerDetail {
        customer,
        subscriptions,
        invoices: money_rows(&invoices, "billing_reason")?,
        charges: money_rows(&charges, "failure_message")?,
        refunds: money_rows(&refunds, "reason")?,
        disputes: money_rows(&disputes, "reason")?,
        payment_methods: methods,
        events,
        form_token: uuid::Uuid::new_v4().simple().to_string(),
        stripe_ready: false,
    }))
}
