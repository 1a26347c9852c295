//! Refunds admins make from a payment's page. The form carries an idempotency key fixed when it
//! was rendered: a double submit finds the first request's row and never calls Stripe twice, and
//! Stripe sees the same key if Tally's own request is retried.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::Row;

use crate::db::{now_unix, Db, DbError};
use crate::domain::money;
use crate::domain::resource::Resource;
use crate::stripe::ops::{self, RefundReason};
use crate::stripe::{StripeApi, StripeApiError};

/// What an admin submitted.
#[derive(Clone, Debug, Default)]
pub struct RefundForm {
    pub charge_id: String,
    /// As typed (`12.50`); empty for all that remains refundable.
    pub amount: Option<String>,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub idempotency_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundDone {
    pub refund_id: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    /// Stripe's request id and the key sent, for the audit log.
    pub request_id: Option<String>,
    pub stripe_idempotency_key: String,
    /// False when this was a repeat of an earlier submit (nothing was sent to Stripe).
    pub sent_now: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("No such payment.")]
    NotFound,
    /// Something the admin can fix in the form.
    #[error("{0}")]
    Invalid(String),
    #[error("{}", .0.admin_message())]
    Stripe(StripeApiError),
    /// Stripe did not say whether it refunded (a timeout, a 5xx, an unreadable answer).
    #[error("Stripe did not confirm this refund ({0}). Tally is checking its outcome; until then the amount counts as being refunded, and it is never sent twice.")]
    OutcomeUnknown(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for RefundError {
    fn from(e: sqlx::Error) -> Self {
        RefundError::Db(DbError::Query(e))
    }
}

/// How much of a charge can still be refunded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refundable {
    pub captured: i64,
    pub refunded: i64,
    /// Refunds asked for and not yet known as refunds.
    pub in_flight: i64,
    pub remaining: i64,
    pub currency: String,
    pub status: String,
}

pub async fn refundable(db: &Db, charge_id: &str) -> Result<Option<Refundable>, RefundError> {
    let mut conn = db.reader().acquire().await.map_err(DbError::from)?;
    refundable_on(&mut conn, charge_id).await
}

/// As `refundable`, on a given connection (the refund's own transaction). One statement, so the
/// charge, its refunds and the requests in flight are read from one snapshot: read one by one, a
/// refund recorded between two reads (a request marked sent and its refund stored) could be
/// counted by neither.
async fn refundable_on(conn: &mut sqlx::AnyConnection, charge_id: &str) -> Result<Option<Refundable>, RefundError> {
    let Some(row) = sqlx::query(
        "SELECT c.amount, c.amount_captured, c.amount_refunded, c.currency, c.status, c.captured, \
         (SELECT CAST(COALESCE(SUM(f.amount), 0) AS BIGINT) FROM refunds f \
          WHERE f.charge_id = c.id AND f.deleted = 0 AND COALESCE(f.status, '') NOT IN ('failed', 'canceled')) AS listed, \
         (SELECT CAST(COALESCE(SUM(r.amount), 0) AS BIGINT) FROM refund_requests r \
          WHERE r.charge_id = c.id AND (r.status IN ('sending', 'unknown') OR (r.status = 'sent' AND NOT EXISTS \
            (SELECT 1 FROM refunds f WHERE f.id = r.refund_id)))) AS in_flight \
         FROM charges c WHERE c.id = $1",
    )
    .bind(charge_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let amount: Option<i64> = row.try_get("amount")?;
    let captured_flag: Option<i64> = row.try_get("captured")?;
    let captured = row
        .try_get::<Option<i64>, _>("amount_captured")?
        .filter(|c| *c > 0)
        .or(if captured_flag == Some(0) { Some(0) } else { amount })
        .unwrap_or(0);
    let charge_refunded: i64 = row.try_get::<Option<i64>, _>("amount_refunded")?.unwrap_or(0);
    // Refunds Tally knows of that still count (pending ones included, as Stripe counts them), and
    // refunds asked for and not yet known as refunds.
    let listed: i64 = row.try_get("listed")?;
    let in_flight: i64 = row.try_get("in_flight")?;
    let refunded = charge_refunded.max(listed);
    Ok(Some(Refundable {
        captured,
        refunded,
        in_flight,
        remaining: (captured - refunded - in_flight).max(0),
        currency: row
            .try_get::<Option<String>, _>("currency")?
            .unwrap_or_else(|| "usd".into()),
        status: row.try_get::<Option<String>, _>("status")?.unwrap_or_default(),
    }))
}

fn valid_key(key: &str) -> bool {
    (8..=100).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An earlier submit of the same form.
async fn earlier(
    db: &Db,
    key: &str,
    charge_id: &str,
) -> Result<Option<(String, Option<String>, i64, String, Option<String>)>, RefundError> {
    let row = sqlx::query(
        "SELECT status, refund_id, amount, currency, request_id, charge_id FROM refund_requests WHERE idempotency_key = $1",
    )
    .bind(key)
    .fetch_optional(db.writer())
    .await?;
    // A form's key belongs to the payment it was rendered for.
    if let Some(r) = &row {
        if r.try_get::<String, _>("charge_id")? != charge_id {
            return Err(RefundError::Invalid(
                "The form has expired; reload the page and try again.".into(),
            ));
        }
    }
    Ok(match row {
        Some(r) => Some((
            r.try_get("status")?,
            r.try_get("refund_id")?,
            r.try_get("amount")?,
            r.try_get("currency")?,
            r.try_get("request_id")?,
        )),
        None => None,
    })
}

fn repeat(
    key: &str,
    charge_id: &str,
    found: (String, Option<String>, i64, String, Option<String>),
) -> Result<RefundDone, RefundError> {
    let (status, refund_id, amount, currency, request_id) = found;
    match (status.as_str(), refund_id) {
        ("sent", Some(refund_id)) => Ok(RefundDone {
            refund_id,
            status: "pending".into(),
            amount,
            currency,
            request_id,
            stripe_idempotency_key: stripe_key(charge_id, key, amount),
            sent_now: false,
        }),
        ("unknown", _) => Err(RefundError::Invalid(
            "This refund was already submitted; Stripe did not confirm it and Tally is checking its outcome.".into(),
        )),
        _ => Err(RefundError::Invalid(
            "This refund was already submitted and is being sent to Stripe; reload the page in a moment.".into(),
        )),
    }
}

/// The key Stripe sees: the charge, the form's key and the amount, so a corrected amount after a
/// refusal is a new request while a double submit (or a check of an unknown outcome) is the same
/// one, and one form's key can never stand for a refund of another payment.
fn stripe_key(charge_id: &str, form_key: &str, amount: i64) -> String {
    format!("tally-refund-{charge_id}-{form_key}-{amount}")
}

/// Whether a failed request may still have been carried out by Stripe: it was not answered (a
/// timeout or a broken connection), failed on Stripe's side (5xx), was answered unreadably, or
/// met the same key in flight (409). A 4xx refusal or a rate limit is a definite no.
fn outcome_unknown(e: &StripeApiError) -> bool {
    use crate::stripe::ErrorKind;
    matches!(e.kind, ErrorKind::Connection | ErrorKind::Api | ErrorKind::Unexpected)
        || (e.status == Some(409) && e.kind != ErrorKind::Idempotency)
}

/// Checks the form, records the request, asks Stripe, records the refund (pending until its
/// webhooks say otherwise).
pub async fn refund(
    db: &Db,
    stripe: &dyn StripeApi,
    admin_email: &str,
    admin_id: i64,
    form: &RefundForm,
) -> Result<RefundDone, RefundError> {
    if !valid_key(&form.idempotency_key) {
        return Err(RefundError::Invalid(
            "The form has expired; reload the page and try again.".into(),
        ));
    }
    if let Some(found) = earlier(db, &form.idempotency_key, &form.charge_id).await? {
        if found.0 != "refused" {
            return repeat(&form.idempotency_key, &form.charge_id, found);
        }
        // Refused before: the admin may correct the form and submit it again.
        sqlx::query("DELETE FROM refund_requests WHERE idempotency_key = $1 AND status = 'refused'")
            .bind(&form.idempotency_key)
            .execute(db.writer())
            .await?;
    }
    // What remains refundable and the request that takes part of it are decided in one
    // transaction, one charge at a time: two forms submitted at once (other keys, same charge)
    // cannot both see the same remainder. SQLite has one writer; Postgres takes a lock per charge.
    let mut tx = db.begin().await?;
    let checked = check_and_record(&mut tx, admin_email, admin_id, form).await;
    let (charge, amount, reason, inserted) = match checked {
        Ok(found) => {
            tx.commit().await.map_err(DbError::from)?;
            found
        }
        Err(e) => {
            // Rolled back at once: a dropped transaction keeps its lock until its connection is
            // used again.
            tx.rollback().await.map_err(DbError::from)?;
            return Err(e);
        }
    };
    if inserted == 0 {
        // The same form, submitted twice at once: the other submit is sending it.
        let found = earlier(db, &form.idempotency_key, &form.charge_id)
            .await?
            .ok_or(RefundError::NotFound)?;
        return repeat(&form.idempotency_key, &form.charge_id, found);
    }
    let key = stripe_key(&form.charge_id, &form.idempotency_key, amount);
    let metadata = HashMap::from([
        ("tally_admin".to_string(), admin_email.to_string()),
        ("tally_refund_key".to_string(), form.idempotency_key.clone()),
    ]);
    let sent_at = super::sent_at();
    match ops::create_refund(stripe, &form.charge_id, amount, reason, metadata, &key).await {
        Ok(response) => {
            let refund_id = response
                .body
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let status = response
                .body
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("pending")
                .to_string();
            sqlx::query(
                "UPDATE refund_requests SET status = 'sent', refund_id = $1, request_id = $2 WHERE idempotency_key = $3",
            )
            .bind(&refund_id)
            .bind(response.request_id.as_deref())
            .bind(&form.idempotency_key)
            .execute(db.writer())
            .await?;
            let account = crate::db::accounts::owner_of(db, "charges", &form.charge_id)
                .await?
                .unwrap_or_default();
            super::project_or_log(db, &account, Resource::Refund, &response.body, sent_at).await;
            Ok(RefundDone {
                refund_id,
                status,
                amount,
                currency: charge.currency,
                request_id: response.request_id,
                stripe_idempotency_key: key,
                sent_now: true,
            })
        }
        Err(e) if outcome_unknown(&e) => {
            sqlx::query(
                "UPDATE refund_requests SET status = 'unknown', error = $1, request_id = $2, next_check_at = $3 \
                 WHERE idempotency_key = $4",
            )
            .bind(e.admin_message())
            .bind(e.request_id.as_deref())
            .bind(now_unix() + FIRST_CHECK_SECS)
            .bind(&form.idempotency_key)
            .execute(db.writer())
            .await?;
            tracing::warn!(charge_id = %form.charge_id, kind = e.kind.as_str(), "refund outcome unknown; checking it");
            Err(RefundError::OutcomeUnknown(e.admin_message()))
        }
        Err(e) => {
            sqlx::query(
                "UPDATE refund_requests SET status = 'refused', error = $1, request_id = $2 WHERE idempotency_key = $3",
            )
            .bind(e.admin_message())
            .bind(e.request_id.as_deref())
            .bind(&form.idempotency_key)
            .execute(db.writer())
            .await?;
            Err(RefundError::Stripe(e))
        }
    }
}

/// Checks the form against what remains refundable and records the request as being sent, on the
/// refund's transaction. Returns the charge, the amount, the reason and whether the request is new.
async fn check_and_record(
    conn: &mut sqlx::AnyConnection,
    admin_email: &str,
    admin_id: i64,
    form: &RefundForm,
) -> Result<(Refundable, i64, Option<RefundReason>, u64), RefundError> {
    if !conn.backend_name().eq_ignore_ascii_case("sqlite") {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("refund:{}", form.charge_id))
            .execute(&mut *conn)
            .await?;
    }
    let Some(charge) = refundable_on(conn, &form.charge_id).await? else {
        return Err(RefundError::NotFound);
    };
    if charge.status != "succeeded" {
        return Err(RefundError::Invalid(format!(
            "Only succeeded payments can be refunded; this one is {}.",
            if charge.status.is_empty() {
                "unknown"
            } else {
                &charge.status
            }
        )));
    }
    let amount = match form.amount.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => charge.remaining,
        Some(text) => money::parse_input(text, &charge.currency).map_err(RefundError::Invalid)?,
    };
    if charge.remaining == 0 {
        return Err(RefundError::Invalid(
            "Nothing is left to refund on this payment.".into(),
        ));
    }
    if amount <= 0 {
        return Err(RefundError::Invalid("The amount must be more than zero.".into()));
    }
    if amount > charge.remaining {
        return Err(RefundError::Invalid(format!(
            "At most {} can be refunded ({} paid, {} already refunded{}).",
            money::format(charge.remaining, &charge.currency),
            money::format(charge.captured, &charge.currency),
            money::format(charge.refunded, &charge.currency),
            if charge.in_flight > 0 {
                format!(", {} being refunded", money::format(charge.in_flight, &charge.currency))
            } else {
                String::new()
            }
        )));
    }
    let reason = match form.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(RefundReason::parse(r).ok_or_else(|| {
            RefundError::Invalid("Choose a reason: duplicate, fraudulent or requested by the customer.".into())
        })?),
    };
    let note = form.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 500) {
        return Err(RefundError::Invalid("The note is limited to 500 characters.".into()));
    }
    let inserted = sqlx::query(
        "INSERT INTO refund_requests (idempotency_key, charge_id, amount, currency, reason, note, admin_id, admin_email, \
         status, created_at, account_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'sending', $9, \
         COALESCE((SELECT account_id FROM charges WHERE id = $2), '')) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&form.idempotency_key)
    .bind(&form.charge_id)
    .bind(amount)
    .bind(&charge.currency)
    .bind(form.reason.as_deref().filter(|r| !r.is_empty()))
    .bind(note)
    .bind(admin_id)
    .bind(admin_email)
    .bind(now_unix())
    .execute(&mut *conn)
    .await?;
    Ok((charge, amount, reason, inserted.rows_affected()))
}

/// Seconds before an unknown outcome is first checked.
const FIRST_CHECK_SECS: i64 = 5;
/// A request still "sending" this long after it was recorded was interrupted (a crash between
/// sending it and recording Stripe's answer): its outcome is unknown.
const INTERRUPTED_AFTER_SECS: i64 = 60;
/// Stripe keeps idempotency keys for at least 24 hours: within this, the same request may be
/// sent again and Stripe answers with what it did the first time.
const RESEND_WITHIN_SECS: i64 = 23 * 3600;

/// What checking a request of unknown outcome found.
enum Settled {
    Sent { refund: Value, request_id: Option<String> },
    Refused(String),
    StillUnknown(String),
}

/// Settles refund requests whose outcome is unknown (and requests interrupted while being sent):
/// Stripe's refunds of the charge are listed, and one carrying the form's key is the answer;
/// otherwise the same request is sent again with the same idempotency key, which Stripe carries
/// out at most once. `now` is the clock's time (now_unix; tests pass a later one). Returns how
/// many it looked at.
pub async fn settle_unknown(db: &Db, stripe: &dyn StripeApi, now: i64) -> Result<usize, DbError> {
    settle_unknown_of(db, crate::domain::accounts::ENVIRONMENT, stripe, now).await
}

/// The accounts (other than the environment's) with refunds to settle (`settle_unknown_of`).
pub async fn accounts_to_settle(db: &Db, now: i64) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT account_id FROM refund_requests WHERE account_id <> '' \
         AND ((status = 'unknown' AND next_check_at <= $1) OR (status = 'sending' AND created_at <= $2))",
    )
    .bind(now)
    .bind(now - INTERRUPTED_AFTER_SECS)
    .fetch_all(db.reader())
    .await?)
}

/// `settle_unknown` for the refunds of `account`, with the client that acts for it.
pub async fn settle_unknown_of(db: &Db, account: &str, stripe: &dyn StripeApi, now: i64) -> Result<usize, DbError> {
    let rows = sqlx::query(
        "SELECT idempotency_key, charge_id, amount, reason, admin_id, admin_email, created_at, checks \
         FROM refund_requests WHERE account_id = $3 \
         AND ((status = 'unknown' AND next_check_at <= $1) OR (status = 'sending' AND created_at <= $2)) \
         ORDER BY created_at LIMIT 20",
    )
    .bind(now)
    .bind(now - INTERRUPTED_AFTER_SECS)
    .bind(account)
    .fetch_all(db.reader())
    .await?;
    for row in &rows {
        let key: String = row.try_get("idempotency_key")?;
        let charge: String = row.try_get("charge_id")?;
        let amount: i64 = row.try_get("amount")?;
        let reason: Option<String> = row.try_get("reason")?;
        let admin_email: String = row.try_get("admin_email")?;
        let admin_id: i64 = row.try_get("admin_id")?;
        let created_at: i64 = row.try_get("created_at")?;
        let checks: i64 = row.try_get("checks")?;
        let sent_at = super::sent_at();
        let outcome = settle_one(
            stripe,
            &key,
            &charge,
            amount,
            reason.as_deref(),
            &admin_email,
            now - created_at,
        )
        .await;
        let (outcome_text, detail) = match outcome {
            Settled::Sent { refund, request_id } => {
                let refund_id = refund.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                sqlx::query(
                    "UPDATE refund_requests SET status = 'sent', refund_id = $1, request_id = COALESCE($2, request_id), \
                     error = NULL WHERE idempotency_key = $3",
                )
                .bind(&refund_id)
                .bind(request_id.as_deref())
                .bind(&key)
                .execute(db.writer())
                .await?;
                super::project_or_log(db, account, Resource::Refund, &refund, sent_at).await;
                (
                    "success",
                    format!("refund {refund_id} confirmed after its outcome was unknown"),
                )
            }
            Settled::Refused(message) => {
                sqlx::query("UPDATE refund_requests SET status = 'refused', error = $1 WHERE idempotency_key = $2")
                    .bind(&message)
                    .bind(&key)
                    .execute(db.writer())
                    .await?;
                ("refused", format!("not carried out by Stripe: {message}"))
            }
            Settled::StillUnknown(message) => {
                sqlx::query(
                    "UPDATE refund_requests SET status = 'unknown', error = $1, checks = checks + 1, next_check_at = $2 \
                     WHERE idempotency_key = $3",
                )
                .bind(&message)
                .bind(now + (30 * (1i64 << checks.clamp(0, 7))).min(3600))
                .bind(&key)
                .execute(db.writer())
                .await?;
                continue;
            }
        };
        let entry = crate::db::audit::NewEntry {
            admin_id: Some(admin_id),
            admin_email: Some(admin_email),
            action: "payment.refund_settled",
            target: Some(charge),
            outcome: outcome_text,
            detail: Some(detail),
            ..Default::default()
        };
        crate::db::audit::record(db, entry).await?;
    }
    Ok(rows.len())
}

async fn settle_one(
    stripe: &dyn StripeApi,
    key: &str,
    charge: &str,
    amount: i64,
    reason: Option<&str>,
    admin_email: &str,
    age_secs: i64,
) -> Settled {
    let filters = [("charge".to_string(), charge.to_string())];
    match stripe.list_path("/refunds", &filters, None).await {
        Ok(page) => {
            let ours = page.data.into_iter().find(|r| {
                crate::projection::read::at(r, &["metadata", "tally_refund_key"]).and_then(Value::as_str) == Some(key)
                    && r.get("amount").and_then(Value::as_i64) == Some(amount)
            });
            if let Some(refund) = ours {
                return Settled::Sent {
                    refund,
                    request_id: None,
                };
            }
        }
        Err(e) => return Settled::StillUnknown(e.admin_message()),
    }
    if age_secs > RESEND_WITHIN_SECS {
        return Settled::Refused("Stripe has no refund for this request a day after it was made.".into());
    }
    let metadata = HashMap::from([
        ("tally_admin".to_string(), admin_email.to_string()),
        ("tally_refund_key".to_string(), key.to_string()),
    ]);
    let reason = reason.and_then(RefundReason::parse);
    match ops::create_refund(
        stripe,
        charge,
        amount,
        reason,
        metadata,
        &stripe_key(charge, key, amount),
    )
    .await
    {
        Ok(response) => Settled::Sent {
            refund: response.body,
            request_id: response.request_id,
        },
        Err(e) if outcome_unknown(&e) => Settled::StillUnknown(e.admin_message()),
        Err(e) => Settled::Refused(e.admin_message()),
    }
}
