//! A payment's page: the payment with its refunds, and refunding it (admins and owners).

use leptos::prelude::*;

use crate::domain::payments::PaymentView;

/// A refund of a payment (admins and owners). `amount` as typed (empty: all that remains);
/// `idempotency_key` fixed when the form was rendered.
#[server(endpoint = "billing/refund")]
pub async fn refund_payment(
    charge_id: String,
    amount: Option<String>,
    reason: Option<String>,
    note: Option<String>,
    idempotency_key: String,
) -> Result<String, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::billing::refunds::{self, RefundError, RefundForm};
    use crate::domain::admins::Role;
    use crate::domain::money;

    let me = require_role(Role::Admin)?;
    let state = crate::state::AppState::from_context()?;
    let form = RefundForm {
        charge_id: charge_id.clone(),
        amount,
        reason,
        note,
        idempotency_key: idempotency_key.clone(),
    };
    let result = refunds::refund(&state.db, state.stripe.as_ref(), &me.email, me.id, &form).await;
    match result {
        Ok(done) => {
            if done.sent_now {
                let detail = format!(
                    "refund {} of {} · key {} · request {}",
                    done.refund_id,
                    money::format(done.amount, &done.currency),
                    done.stripe_idempotency_key,
                    done.request_id.as_deref().unwrap_or("?")
                );
                super::audit_stripe_action(&state, &me, "payment.refund", &charge_id, true, detail).await;
            }
            Ok(format!(
                "Refund of {} {}: {} until Stripe confirms it.",
                money::format(done.amount, &done.currency),
                if done.sent_now { "sent" } else { "was already sent" },
                done.status
            ))
        }
        Err(RefundError::Db(e)) => Err(super::internal("recording a refund failed", e)),
        Err(e) => {
            match &e {
                RefundError::Stripe(se) => {
                    super::audit_stripe_action(&state, &me, "payment.refund", &charge_id, false, se.to_string()).await;
                }
                RefundError::OutcomeUnknown(message) => {
                    let detail = format!("outcome unknown, being checked: {message}");
                    super::audit_stripe_action(&state, &me, "payment.refund", &charge_id, false, detail).await;
                }
                _ => {}
            }
            Err(ServerFnError::new(e.to_string()))
        }
    }
}

#[server(endpoint = "billing/payment")]
pub async fn payment_detail(id: String) -> Result<Option<PaymentView>, ServerFnError> {
    use sqlx::Row;

    use crate::auth::server::require_role;

    use crate::domain::admins::Role;

    require_role(Role::Viewer)?;
    let state = crate::state::AppState::from_context()?;
    let db = &state.db;
    let failed = |e: sqlx::Error| super::internal("reading a payment failed", e);
    let Some(row) = sqlx::query(
        "SELECT c.id, c.created, c.status, c.amount, c.currency, c.customer_id, c.card_brand, c.card_last4, \
                c.failure_message, cu.email FROM charges c LEFT JOIN customers cu ON cu.id = c.customer_id WHERE c.id = $1",
    )
    .bind(&id)
    .fetch_optional(db.reader())
    .await
    .map_err(failed)?
    else {
        return Ok(None);
    };
    let refundable = crate::billing::refunds::refundable(db, &id)
        .await
        .map_err(|e| super::internal("reading a payment failed", e))?;
    let refunds = sqlx::query(
        "SELECT f.id, f.created, f.amount, f.status, f.reason, r.admin_email, r.note FROM refunds f \
         LEFT JOIN refund_requests r ON r.refund_id = f.id WHERE f.charge_id = $1 ORDER BY f.created DESC, f.id",
    )
    .bind(&id)
    .fetch_all(db.reader())
    .await
    .map_err(failed)?
    .iter()
    .map(|r| {
        Ok(crate::domain::payments::RefundRow {
            id: r.try_get("id")?,
            created: r.try_get("created")?,
            amount: r.try_get::<Option<i64>, _>("amount")?.unwrap_or(0),
            status: r.try_get("status")?,
            reason: r.try_get("reason")?,
            requested_by: r.try_get("admin_email")?,
            note: r.try_get("note")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()
    .map_err(failed)?;
    let card = match (
        row.try_get::<Option<String>, _>("card_brand").map_err(failed)?,
        row.try_get::<Option<String>, _>("card_last4").map_err(failed)?,
    ) {
        (Some(brand), Some(last4)) => Some(format!("{brand} •••• {last4}")),
        _ => None,
    };
    let checking: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refund_requests WHERE charge_id = $1 AND status = 'unknown'",
    )
    .bind(&id)
    .fetch_one(db.reader())
    .await
    .map_err(failed)?;
    let r = refundable.unwrap_or(crate::billing::refunds::Refundable {
        captured: 0,
        refunded: 0,
        in_flight: 0,
        remaining: 0,
        currency: "usd".into(),
        status: String::new(),
    });
    Ok(Some(PaymentView {
        id: row.try_get("id").map_err(failed)?,
        created: row.try_get("created").map_err(failed)?,
        status: row.try_get("status").map_err(failed)?,
        amount: row.try_get::<Option<i64>, _>("amount").map_err(failed)?.unwrap_or(0),
        currency: r.currency.clone(),
        refunded: r.refunded,
        remaining: if r.status == "succeeded" { r.remaining } else { 0 },
        checking,
        customer_id: row.try_get("customer_id").map_err(failed)?,
        customer_email: row.try_get("email").map_err(failed)?,
        card,
        failure: row.try_get("failure_message").map_err(failed)?,
        refunds,
        form_key: uuid::Uuid::new_v4().simple().to_string(),
        stripe_ready: state.config.stripe_mode().is_some(),
    }))
}
