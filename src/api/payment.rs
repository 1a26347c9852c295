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
    // The charge's account's client: its key, or the platform's with `Stripe-Account`.
    let (account, stripe) = super::acting_for(&state, &me, "charges", &charge_id).await?;
    let result = refunds::refund(&state.db, stripe.as_ref(), &me.email, me.id, &form).await;
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
                super::audit_stripe_action(&state, &me, &account, "payment.refund", &charge_id, true, detail).await;
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
                    super::audit_stripe_action(
                        &state,
                        &me,
                        &account,
                        "payment.refund",
                        &charge_id,
                        false,
                        se.to_string(),
                    )
                    .await;
                }
                RefundError::OutcomeUnknown(message) => {
                    let detail = format!("outcome unknown, being checked: {message}");
                    super::audit_stripe_action(&state, &me, &account, "payment.refund", &charge_id, false, detail)
                        .await;
                }
                _ => {}
            }
            Err(ServerFnError::new(e.to_string()))
        }
    }
}

/// A payment with its refunds and what is left to refund; `None` for an unknown id.
#[server(endpoint = "billing/payment")]
pub async fn payment_detail(id: String) -> Result<Option<PaymentView>, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;

    let me = require_role(Role::Viewer)?;
    let state = crate::state::AppState::from_context()?;
    let db = &state.db;
    let failed = |e| super::internal("reading a payment failed", e);
    // A payment of an account the admin may not see: 403.
    if let Some(account) = crate::db::accounts::owner_of(db, "charges", &id)
        .await
        .map_err(failed)?
    {
        crate::auth::server::require_account(db, &me, &account).await?;
    }
    let Some(mut view) = crate::db::payments::view(db, &id).await.map_err(failed)? else {
        return Ok(None);
    };
    let refundable = crate::billing::refunds::refundable(db, &id)
        .await
        .map_err(|e| super::internal("reading a payment failed", e))?;
    let r = refundable.unwrap_or(crate::billing::refunds::Refundable {
        captured: 0,
        refunded: 0,
        in_flight: 0,
        remaining: 0,
        currency: "usd".into(),
        status: String::new(),
    });
    view.refunded = r.refunded;
    view.remaining = if r.status == "succeeded" { r.remaining } else { 0 };
    view.currency = r.currency;
    view.form_key = uuid::Uuid::new_v4().simple().to_string();
    view.stripe_ready = state.config.stripe_mode().is_some();
    Ok(Some(view))
}
