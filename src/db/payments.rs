//! One payment (a charge) with its refunds, as its page shows it.

use sqlx::Row;

use super::{Db, DbError};
use crate::domain::payments::{PaymentView, RefundRow};

/// The charge, its customer's email, its refunds (newest first, with who asked for each from
/// Tally) and the amount of refunds whose outcome is being checked. What remains refundable and
/// the form's key are the caller's (`billing::refunds`); they start empty here.
pub async fn view(db: &Db, id: &str) -> Result<Option<PaymentView>, DbError> {
    let Some(row) = sqlx::query(
        "SELECT c.id, c.created, c.status, c.amount, c.currency, c.customer_id, c.card_brand, c.card_last4, \
                c.failure_message, cu.email FROM charges c LEFT JOIN customers cu ON cu.id = c.customer_id WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(db.reader())
    .await?
    else {
        return Ok(None);
    };
    let refunds = sqlx::query(
        "SELECT f.id, f.created, f.amount, f.status, f.reason, r.admin_email, r.note FROM refunds f \
         LEFT JOIN refund_requests r ON r.refund_id = f.id WHERE f.charge_id = $1 ORDER BY f.created DESC, f.id",
    )
    .bind(id)
    .fetch_all(db.reader())
    .await?
    .iter()
    .map(|r| {
        Ok(RefundRow {
            id: r.try_get("id")?,
            created: r.try_get("created")?,
            amount: r.try_get::<Option<i64>, _>("amount")?.unwrap_or(0),
            status: r.try_get("status")?,
            reason: r.try_get("reason")?,
            requested_by: r.try_get("admin_email")?,
            note: r.try_get("note")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let card = match (
        row.try_get::<Option<String>, _>("card_brand")?,
        row.try_get::<Option<String>, _>("card_last4")?,
    ) {
        (Some(brand), Some(last4)) => Some(format!("{brand} •••• {last4}")),
        _ => None,
    };
    let checking: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refund_requests WHERE charge_id = $1 AND status = 'unknown'",
    )
    .bind(id)
    .fetch_one(db.reader())
    .await?;
    Ok(Some(PaymentView {
        id: row.try_get("id")?,
        created: row.try_get("created")?,
        status: row.try_get("status")?,
        amount: row.try_get::<Option<i64>, _>("amount")?.unwrap_or(0),
        currency: row.try_get::<Option<String>, _>("currency")?.unwrap_or_default(),
        refunded: 0,
        remaining: 0,
        checking,
        customer_id: row.try_get("customer_id")?,
        customer_email: row.try_get("email")?,
        card,
        failure: row.try_get("failure_message")?,
        refunds,
        form_key: String::new(),
        stripe_ready: false,
    }))
}
