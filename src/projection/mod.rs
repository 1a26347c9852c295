//! Projection: Stripe objects into tables. One module per resource; the same code serves webhooks,
//! backfill and demo data.
//!
//! Every write goes through a `Tx`, whose commit bumps the figures cache (`db::cache::bump`), so
//! cached figures (overview, list totals) are recomputed.
//!
//! Parsing is lenient: objects are read as JSON values, unknown fields are ignored, unknown enum
//! values are kept as text, every field may be null or missing, and fields Stripe moved between API
//! versions are read from both places. Each row keeps the raw object and the version (event
//! created, event id) that wrote it; an upsert only replaces a row with an older version, and a
//! deleted row stays deleted. Projections have no foreign keys, so a subscription that arrives
//! before its customer still lands.

pub mod application_fees;
pub mod charges;
pub mod checkout_sessions;
pub mod coupons;
pub mod customers;
pub mod discounts;
pub mod disputes;
pub mod invoices;
pub mod movements;
pub mod mrr;
pub mod mrr_history;
pub mod order;
pub mod payment_intents;
pub mod payment_methods;
pub mod prices;
pub mod products;
pub mod promotion_codes;
pub mod refunds;
pub mod settle;
pub mod subscriptions;

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use crate::domain::resource::Resource;

/// A transaction that writes the projection. Its `commit` bumps the figures cache first
/// (`db::cache::bump`), so cached figures (overview, list totals, movements) are recomputed after
/// every write, whoever writes: the worker, backfill, fetches, billing actions, start-up.
/// Dereferences to the connection that projectors and queries take.
pub struct Tx(sqlx::Transaction<'static, sqlx::Any>);

impl Tx {
    pub async fn begin(db: &crate::db::Db) -> Result<Self, crate::db::DbError> {
        Ok(Self(db.begin().await?))
    }

    /// Bumps the figures cache, then commits.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        crate::db::cache::bump(&mut self.0).await?;
        self.0.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.0.rollback().await
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.0
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.0
    }
}

/// Writes an object Stripe returned to a request sent at `requested_at` (our clock) in its own
/// transaction: what backfill's fetches, billing actions and the Checkout return got back. It is
/// dated a little before the request left (`Version::fetched`), so Stripe's answer replaces older
/// data and a webhook about a change made since still wins. An object Stripe marks `deleted` is
/// written as a deletion.
pub async fn apply_fetched(
    db: &crate::db::Db,
    account: &str,
    resource: Resource,
    object: &Value,
    requested_at: i64,
) -> Result<Applied, crate::db::DbError> {
    let version = Version::fetched(requested_at);
    let deleted = object.get("deleted").and_then(Value::as_bool) == Some(true);
    let mut tx = Tx::begin(db).await?;
    let applied = apply_object(&mut tx, account, resource, object, &version, deleted)
        .await
        .map_err(|e| crate::db::DbError::Query(sqlx::Error::Protocol(e.to_string())))?;
    tx.commit().await?;
    Ok(applied)
}

/// Brings what the projection derives up to date at start, after the migrations: the stored MRR
/// movements built once from the MRR history (databases from before the table), and the history
/// following the configured discount policy (recomputed when it changed; a no-op otherwise).
pub async fn prepare(db: &crate::db::Db, policy: crate::config::DiscountPolicy) -> Result<(), crate::db::DbError> {
    movements::ensure_built(db).await?;
    mrr_history::use_policy(db, policy).await?;
    Ok(())
}

/// A typed column value.
#[derive(Clone, Debug, PartialEq)]
pub enum Col {
    Text(Option<String>),
    Int(Option<i64>),
}

/// Which write wins: the newer `at` (the event's `created`). At the same second, a fetched object
/// wins over events; between events the latest state of that second wins (`order`, `settle`),
/// never the event id alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub at: i64,
    pub event_id: String,
}

/// The `version_event` of an object fetched from Stripe's API (backfill, a settled tie, what an
/// action returned). The name is historical: backfill was the first such write.
pub const FETCHED: &str = "backfill";

/// How far behind its request's start a fetched object is dated: events of a later second (on
/// Stripe's clock, which may run a little behind ours) may postdate the answer and win over it;
/// events of this second or earlier happened before the request and are in the answer.
pub const FETCH_MARGIN_SECS: i64 = 2;

impl Version {
    /// The version of an object Stripe returned to a request sent at `requested_at` (our clock).
    pub fn fetched(requested_at: i64) -> Self {
        Version {
            at: requested_at - FETCH_MARGIN_SECS,
            event_id: FETCHED.to_string(),
        }
    }

    pub fn is_fetched(&self) -> bool {
        self.event_id == FETCHED
    }
}

/// Reading helpers that never fail: a missing or mistyped field is `None`.
pub mod read {
    use serde_json::Value;

    /// Text as a column can hold it: PostgreSQL's text refuses NUL characters (JSON may carry
    /// `\u0000`), so they are dropped, on both databases alike. The raw object keeps them.
    pub fn clean(s: &str) -> String {
        if s.contains('\0') {
            s.replace('\0', "")
        } else {
            s.to_string()
        }
    }

    /// A string field; for an expandable field also the `id` of the expanded object.
    pub fn id(v: &Value, key: &str) -> Option<String> {
        match v.get(key)? {
            Value::String(s) => Some(clean(s)),
            Value::Object(o) => o.get("id").and_then(Value::as_str).map(clean),
            _ => None,
        }
    }

    pub fn text(v: &Value, key: &str) -> Option<String> {
        as_text(v.get(key)?)
    }

    /// A value as text: a string (cleaned), a number or a boolean.
    pub fn as_text(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(clean(s)),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn int(v: &Value, key: &str) -> Option<i64> {
        let field = v.get(key)?;
        field.as_i64().or_else(|| field.as_str().and_then(|s| s.parse().ok()))
    }

    pub fn flag(v: &Value, key: &str) -> Option<i64> {
        v.get(key)?.as_bool().map(i64::from)
    }

    /// Follows a path of object keys.
    pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
        path.iter().try_fold(v, |cur, key| cur.get(key))
    }

    /// The `data` array of a list object (`{"object":"list","data":[…]}`), or a bare array.
    pub fn list(v: Option<&Value>) -> &[Value] {
        match v {
            Some(Value::Array(a)) => a,
            Some(Value::Object(o)) => o
                .get("data")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            _ => &[],
        }
    }
}

pub use read::{flag, id, int, text};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("the object has no id")]
    NoId,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl Resource {
    /// The typed columns this resource's table keeps of `object`.
    pub fn columns(self, object: &Value) -> Vec<(&'static str, Col)> {
        match self {
            Resource::Customer => customers::columns(object),
            Resource::PaymentMethod => payment_methods::columns(object),
            Resource::Product => products::columns(object),
            Resource::Price => prices::columns(object),
            Resource::Subscription => subscriptions::columns(object),
            Resource::Invoice => invoices::columns(object),
            Resource::PaymentIntent => payment_intents::columns(object),
            Resource::Charge => charges::columns(object),
            Resource::Refund => refunds::columns(object),
            Resource::Dispute => disputes::columns(object),
            Resource::CheckoutSession => checkout_sessions::columns(object),
            Resource::Coupon => coupons::columns(object),
            Resource::PromotionCode => promotion_codes::columns(object),
            Resource::Discount => discounts::columns(object),
            Resource::ApplicationFee => application_fees::columns(object),
        }
    }
}

/// Event types Tally applies; any other type is stored, acknowledged and marked ignored.
pub const HANDLED_EVENT_TYPES: &[&str] = &[
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.updated",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "charge.succeeded",
    "charge.failed",
    "charge.captured",
    "charge.updated",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "payment_intent.created",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_method.attached",
    "payment_method.detached",
    "payment_method.updated",
    "checkout.session.completed",
    "checkout.session.expired",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "product.created",
    "product.updated",
    "product.deleted",
    "price.created",
    "price.updated",
    "price.deleted",
    "coupon.created",
    "coupon.updated",
    "coupon.deleted",
    "promotion_code.created",
    "promotion_code.updated",
    "customer.discount.created",
    "customer.discount.updated",
    "customer.discount.deleted",
    "application_fee.created",
    "application_fee.refunded",
];

/// Event types whose object is gone for good in Stripe.
pub(crate) const DELETION_EVENT_TYPES: &[&str] = &[
    "customer.deleted",
    "product.deleted",
    "price.deleted",
    "coupon.deleted",
    "customer.discount.deleted",
];

pub fn is_handled(event_type: &str) -> bool {
    HANDLED_EVENT_TYPES.contains(&event_type)
}

/// What applying an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The row was written (or was already at this version).
    Written,
    /// A newer version (or a deletion) was already there; nothing changed.
    Stale,
    /// Not something Tally projects.
    Ignored(&'static str),
}

/// A stored Stripe event, parsed once (by the worker, from the inbox's payload): what the
/// projection needs of it.
#[derive(Clone, Debug)]
pub struct Event {
    pub event_type: String,
    /// `created` and the event's id.
    pub version: Version,
    /// `data.object`.
    pub object: Value,
    /// The account whose rows it changes (`account_id`; `''` the environment's): a Stripe Connect
    /// event's `account`, else the account it was filed under (whose secret verified it).
    pub account: String,
}

impl Event {
    /// Parses a stored payload filed under `account_id` (`None`: the environment's account);
    /// `data.object` is taken out of the event, not copied.
    pub fn parse(id: &str, payload: &str, account_id: Option<&str>) -> Result<Self, String> {
        let mut value: Value = serde_json::from_str(payload).map_err(|e| format!("stored payload unreadable: {e}"))?;
        let event_type = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let created = value.get("created").and_then(Value::as_i64).unwrap_or(0);
        let account = value
            .get("account")
            .and_then(Value::as_str)
            .or(account_id)
            .unwrap_or(crate::domain::accounts::ENVIRONMENT)
            .to_string();
        let object = value
            .get_mut("data")
            .and_then(|data| data.get_mut("object"))
            .map(Value::take)
            .unwrap_or(Value::Null);
        Ok(Self {
            event_type,
            version: Version {
                at: created,
                event_id: id.to_string(),
            },
            object,
            account,
        })
    }

    /// The object's id (empty when it has none).
    pub fn object_id(&self) -> String {
        read::text(&self.object, "id").unwrap_or_default()
    }

    /// The resource when this event can go into a multi-row upsert with others (`batchable`).
    pub fn batchable(&self) -> Option<Resource> {
        batchable(&self.event_type, &self.object)
    }

    /// Applies the event to its account's rows inside the caller's transaction.
    pub async fn apply(&self, conn: &mut AnyConnection) -> Result<Applied, ProjectionError> {
        apply_event_for(conn, &self.account, &self.event_type, &self.object, &self.version).await
    }
}

/// Applies one event of the environment's account inside the caller's transaction.
pub async fn apply_event(
    conn: &mut AnyConnection,
    event_type: &str,
    object: &Value,
    version: &Version,
) -> Result<Applied, ProjectionError> {
    apply_event_for(conn, crate::domain::accounts::ENVIRONMENT, event_type, object, version).await
}

/// Applies one event of `account` inside the caller's transaction.
pub async fn apply_event_for(
    conn: &mut AnyConnection,
    account: &str,
    event_type: &str,
    object: &Value,
    version: &Version,
) -> Result<Applied, ProjectionError> {
    if !is_handled(event_type) {
        return Ok(Applied::Ignored("event type not handled"));
    }
    let Some(resource) = Resource::of_object(object) else {
        return Ok(Applied::Ignored("object type not handled"));
    };
    let delete =
        DELETION_EVENT_TYPES.contains(&event_type) || object.get("deleted").and_then(Value::as_bool) == Some(true);
    apply_object(conn, account, resource, object, version, delete).await
}

/// Why an object is not written: its id is already another account's row. Stripe's ids are unique
/// across accounts, so this is a misfiled or forged event; it never changes the other account's
/// rows.
pub const OTHER_ACCOUNTS_OBJECT: &str = "the object is another Stripe account's: not applied";

/// Writes one object of `account` (and what it embeds: subscription items, a charge's refunds).
pub async fn apply_object(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    object: &Value,
    version: &Version,
    delete: bool,
) -> Result<Applied, ProjectionError> {
    let applied = if delete {
        if mark_deleted(conn, account, resource, object, version).await? {
            Applied::Written
        } else if another_accounts(conn, account, resource, object).await? {
            Applied::Ignored(OTHER_ACCOUNTS_OBJECT)
        } else {
            Applied::Stale
        }
    } else if !upsert_many(conn, account, resource, &[(object, version)])
        .await?
        .is_empty()
    {
        write_embedded(conn, account, resource, object, version).await?;
        Applied::Written
    } else {
        // Not written: a tie to settle, or (reported as such) another account's row.
        resolve_tie(conn, account, resource, object, version).await?
    };
    // Another account's row: nothing of it is touched (no MRR history, no fetch queued).
    if applied == Applied::Ignored(OTHER_ACCOUNTS_OBJECT) {
        return Ok(applied);
    }
    if resource == Resource::Subscription {
        // History for MRR movements: every version counts, even one older than the row.
        mrr_history::record(conn, object, version).await?;
    }
    if applied == Applied::Written
        && matches!(
            resource,
            Resource::Discount | Resource::Coupon | Resource::PromotionCode
        )
    {
        mrr_history::terms_changed(conn, resource, object).await?;
    }
    if !delete {
        request_missing_list(conn, account, resource, object, version).await?;
    }
    Ok(applied)
}

/// Whether the object's row exists and is another account's (asked only after a write did not
/// go through: the upserts never move a row between accounts).
async fn another_accounts(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    object: &Value,
) -> Result<bool, ProjectionError> {
    let id = read::text(object, "id").ok_or(ProjectionError::NoId)?;
    let owner: Option<String> =
        sqlx::query_scalar(&format!("SELECT account_id FROM {} WHERE id = $1", resource.table()))
            .bind(&id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(owner.is_some_and(|o| o != account))
}

/// What an object embeds, written with it: a subscription's items, a charge's refunds.
async fn write_embedded(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    object: &Value,
    version: &Version,
) -> Result<(), ProjectionError> {
    match resource {
        Resource::Subscription => {
            subscriptions::replace_items(conn, account, object).await?;
            // Discounts Stripe sent expanded (the legacy `discount`, or expanded lists) are kept,
            // so a later version listing them by id finds them. The subscription's history is
            // settled right after (apply_object).
            for discount in expanded_discounts(object) {
                write_discount(conn, account, &discount, version).await?;
            }
        }
        // A customer's own discount (the Customer object carries it expanded) applies to its
        // subscriptions without discounts of their own.
        Resource::Customer => {
            if let Some(discount) = own_discount(object) {
                if write_discount(conn, account, discount, version).await? {
                    mrr_history::terms_changed(conn, Resource::Discount, discount).await?;
                }
            }
        }
        Resource::Discount => {
            if let Some(coupon) = expanded_coupon(object) {
                upsert_many(conn, account, Resource::Coupon, &[(coupon, version)]).await?;
            }
        }
        Resource::Charge => {
            for refund in read::list(object.get("refunds")) {
                if upsert_many(conn, account, Resource::Refund, &[(refund, version)])
                    .await?
                    .is_empty()
                {
                    Box::pin(resolve_tie(conn, account, Resource::Refund, refund, version)).await?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether `v` is a Stripe object of that kind (an expanded one, not an id).
fn is_a(v: &Value, object: &str) -> bool {
    v.get("object").and_then(Value::as_str) == Some(object)
}

/// A customer's own discount, when the Customer object carries it expanded.
fn own_discount(customer: &Value) -> Option<&Value> {
    customer.get("discount").filter(|d| is_a(d, "discount"))
}

/// A discount's coupon, when expanded (`coupon` in older API versions, `source.coupon` now).
fn expanded_coupon(discount: &Value) -> Option<&Value> {
    discount
        .get("coupon")
        .or_else(|| read::at(discount, &["source", "coupon"]))
        .filter(|c| is_a(c, "coupon"))
}

/// The discount objects a subscription carries (its own and its items'), when Stripe sent them
/// expanded.
fn expanded_discounts(s: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let is_discount = |d: &Value| is_a(d, "discount");
    if let Some(d) = s.get("discount").filter(|d| is_discount(d)) {
        out.push(d.clone());
    }
    let lists =
        std::iter::once(s.get("discounts")).chain(read::list(s.get("items")).iter().map(|i| i.get("discounts")));
    for list in lists {
        for d in list.and_then(Value::as_array).into_iter().flatten() {
            if is_discount(d) {
                out.push(d.clone());
            }
        }
    }
    out
}

/// Writes a discount another object embeds (and its coupon when expanded); whether it wrote.
async fn write_discount(
    conn: &mut AnyConnection,
    account: &str,
    discount: &Value,
    version: &Version,
) -> Result<bool, ProjectionError> {
    if read::text(discount, "id").is_none() {
        return Ok(false);
    }
    let written = !upsert_many(conn, account, Resource::Discount, &[(discount, version)])
        .await?
        .is_empty();
    if written {
        Box::pin(write_embedded(conn, account, Resource::Discount, discount, version)).await?;
    }
    Ok(written)
}

/// The embedded list an object carries only in part (Stripe embeds the first page).
pub fn incomplete_list(resource: Resource, object: &Value) -> bool {
    let field = match resource {
        Resource::Subscription => "items",
        Resource::Invoice => "lines",
        Resource::Charge => "refunds",
        _ => return false,
    };
    read::at(object, &[field, "has_more"]).and_then(Value::as_bool) == Some(true)
}

/// Queues a fetch of an object whose embedded list is cut short; the row says it is incomplete
/// until the whole object arrives.
async fn request_missing_list(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    object: &Value,
    version: &Version,
) -> Result<(), ProjectionError> {
    if !incomplete_list(resource, object) {
        return Ok(());
    }
    let Some(id) = read::text(object, "id") else {
        return Ok(());
    };
    settle::request_fetch(
        conn,
        account,
        resource,
        &id,
        version.at,
        settle::FetchReason::IncompleteList,
    )
    .await
}

/// After a write that did not replace the row: if the row holds another event of the same second
/// (a tie), the latest version of that second is written. Returns `Written` when that is this
/// version.
pub async fn resolve_tie(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    object: &Value,
    version: &Version,
) -> Result<Applied, ProjectionError> {
    let id = read::text(object, "id").ok_or(ProjectionError::NoId)?;
    let row = sqlx::query(&format!(
        "SELECT raw, version_at, version_event, deleted, deleted_at, account_id FROM {} WHERE id = $1",
        resource.table()
    ))
    .bind(&id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Applied::Stale);
    };
    // Not written because the row is another account's (`write_rows` never moves a row).
    if row.try_get::<String, _>("account_id")? != account {
        return Ok(Applied::Ignored(OTHER_ACCOUNTS_OBJECT));
    }
    // A fetched object that did not replace the row is older than it: no tie to settle.
    if version.is_fetched() {
        return Ok(Applied::Stale);
    }
    let (row_at, row_event): (i64, String) = (row.try_get("version_at")?, row.try_get("version_event")?);
    let deleted_before = row.try_get::<i64, _>("deleted")? != 0
        && row
            .try_get::<Option<i64>, _>("deleted_at")?
            .is_some_and(|d| version.at > d);
    if row_at != version.at || row_event == version.event_id || row_event == FETCHED || deleted_before {
        return Ok(Applied::Stale);
    }
    let raw: String = row.try_get("raw")?;
    let mut known = vec![order::Candidate {
        event_id: version.event_id.clone(),
        event_type: None,
        object: object.clone(),
        previous: None,
    }];
    if let Ok(current) = serde_json::from_str::<Value>(&raw) {
        known.push(order::Candidate {
            event_id: row_event.clone(),
            event_type: None,
            object: current,
            previous: None,
        });
    }
    let (winner, differ) = settle::latest_of_second(conn, resource, &id, version.at, known).await?;
    if differ {
        settle::request_fetch(conn, account, resource, &id, version.at, settle::FetchReason::Tie).await?;
    }
    if winner.event_id == row_event {
        return Ok(Applied::Stale);
    }
    let standing = Version {
        at: version.at,
        event_id: winner.event_id.clone(),
    };
    write_rows(
        conn,
        account,
        resource,
        &[(&winner.object, &standing)],
        Rule::SameSecondToo,
    )
    .await?;
    write_embedded(conn, account, resource, &winner.object, &standing).await?;
    Ok(if winner.event_id == version.event_id {
        Applied::Written
    } else {
        Applied::Stale
    })
}

/// Whether an event can go through `upsert_many`: a handled, non-deleting event about a resource
/// whose projection is its own row only (no embedded lists, no MRR history).
pub fn batchable(event_type: &str, object: &Value) -> Option<Resource> {
    if !is_handled(event_type)
        || DELETION_EVENT_TYPES.contains(&event_type)
        || object.get("deleted").and_then(Value::as_bool) == Some(true)
    {
        return None;
    }
    let resource = Resource::of_object(object)?;
    own_row_only(resource, object)
        .then_some(resource)
        .filter(|_| read::text(object, "id").is_some())
}

/// Whether writing `object` touches its own row only (no embedded lists written beside it, no MRR
/// history, no fetch to queue): then it may go into a multi-row upsert with others.
fn own_row_only(resource: Resource, object: &Value) -> bool {
    match resource {
        // MRR history; discounts and their terms settle the histories they apply to.
        Resource::Subscription | Resource::Discount | Resource::Coupon | Resource::PromotionCode => false,
        // A customer's own discount travels inside it.
        Resource::Customer => object.get("discount").is_none_or(Value::is_null),
        // A charge embeds its refunds; without any, it is its own row.
        Resource::Charge => read::list(object.get("refunds")).is_empty(),
        // A list cut short is queued for a fetch (apply_object).
        _ => !incomplete_list(resource, object),
    }
}

/// A page of objects of one resource (distinct ids, as a list page has), all dated one version,
/// made ready to write before any connection is held: the rows of those that touch only their own
/// row are read out of the JSON (and the JSON serialized for `raw`) here, so the writer only binds
/// and executes. Pure work on owned data: run it off the async workers.
#[derive(Debug)]
pub struct PreparedPage {
    resource: Resource,
    version: Version,
    /// Objects that touch only their own row, in id order (as the worker writes, so concurrent
    /// writers lock rows in the same order): their rows, and the objects themselves where a tie
    /// may need them (not for a fetched page: a fetched object that is not written is older).
    rows: Vec<(ObjectRow, Option<Value>)>,
    /// The discounts customers of `rows` carry (their own, expanded): written after them, for
    /// the customers whose rows were written, as `apply_object` writes a customer's.
    discounts: Vec<OwnDiscount>,
    /// The others (deletions, embedded lists, MRR history): `apply_object` one by one.
    others: Vec<Value>,
}

/// A customer's own discount (`discount` on the Customer object, expanded), read out for a
/// page's rows: the discount's row, its expanded coupon's, and the discount itself (its terms
/// settle the customer's subscriptions when it is written).
#[derive(Debug)]
struct OwnDiscount {
    customer: String,
    row: ObjectRow,
    coupon: Option<ObjectRow>,
    discount: Value,
}

impl OwnDiscount {
    /// The customer's own discount, when it carries one expanded (with an id).
    fn of(customer: &Value) -> Result<Option<Self>, ProjectionError> {
        let Some(discount) = own_discount(customer).filter(|d| read::text(d, "id").is_some()) else {
            return Ok(None);
        };
        let coupon = expanded_coupon(discount)
            .filter(|c| read::text(c, "id").is_some())
            .map(|c| ObjectRow::of(Resource::Coupon, c))
            .transpose()?;
        Ok(Some(Self {
            customer: read::text(customer, "id").ok_or(ProjectionError::NoId)?,
            row: ObjectRow::of(Resource::Discount, discount)?,
            coupon,
            discount: discount.clone(),
        }))
    }
}

impl PreparedPage {
    pub fn new(resource: Resource, objects: Vec<Value>, version: Version) -> Result<Self, (String, ProjectionError)> {
        let deleted = |o: &Value| o.get("deleted").and_then(Value::as_bool) == Some(true);
        let mut rows = Vec::with_capacity(objects.len());
        let mut discounts = Vec::new();
        let mut others = Vec::new();
        for object in objects {
            let id_of = |o: &Value| read::text(o, "id").unwrap_or_default();
            // A customer whose own discount travels inside it: its row with the others, the
            // discount after them.
            let own = if resource == Resource::Customer && !deleted(&object) {
                OwnDiscount::of(&object).map_err(|e| (id_of(&object), e))?
            } else {
                None
            };
            if !deleted(&object)
                && (own.is_some() || own_row_only(resource, &object))
                && read::text(&object, "id").is_some()
            {
                let row = ObjectRow::of(resource, &object).map_err(|e| (id_of(&object), e))?;
                discounts.extend(own);
                // Dropped here, off the writer, when no tie can need it.
                rows.push((row, (!version.is_fetched()).then_some(object)));
            } else {
                others.push(object);
            }
        }
        rows.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Ok(Self {
            resource,
            version,
            rows,
            discounts,
            others,
        })
    }

    pub fn resource(&self) -> Resource {
        self.resource
    }

    /// Whether writing it may change the revenue of a closed month: the caller bumps
    /// `bump_revenue_closed` in the same transaction.
    pub fn closes_revenue(&self) -> bool {
        self.rows.iter().any(|(row, _)| row.closed_revenue)
    }
}

/// Writes a prepared page for `account`: rows in multi-row upserts, the other objects through
/// `apply_object`. Returns how many were written; on failure, the id of the object that failed.
/// The caller bumps `revenue_closed` when the page `closes_revenue` (once for several pages, and
/// after its other rows, so writers at once take that row last).
pub async fn write_page(
    conn: &mut AnyConnection,
    account: &str,
    page: &PreparedPage,
) -> Result<i64, (String, ProjectionError)> {
    let (resource, version) = (page.resource, &page.version);
    let mut written = 0;
    // The customers written by the upserts themselves (their own discounts follow them); a
    // customer written as the winner of a tie had its discount written by `resolve_tie`.
    let mut written_ids = std::collections::HashSet::new();
    // A fetched page's rows return nothing, so on SQLite one statement for the whole page beats
    // `rows_per_statement`'s 16 (the live-mode backfill benchmark: 11.6 ms of the writer per
    // page instead of 13).
    let per_statement = if version.is_fetched() {
        crate::db::rows_per_statement(conn).max(crate::stripe::LIST_PAGE)
    } else {
        crate::db::rows_per_statement(conn)
    };
    for chunk in page.rows.chunks(per_statement.max(1)) {
        let items: Vec<(&ObjectRow, &Version)> = chunk.iter().map(|(row, _)| (row, version)).collect();
        // A fetched object not written lost to a newer row (or another account's): no tie to
        // settle, so only the count is needed.
        if version.is_fetched() && page.discounts.is_empty() {
            written += count_rows(conn, account, resource, &items, Rule::Newer)
                .await
                .map_err(|e| (chunk[0].0.id.clone(), e))? as i64;
            continue;
        }
        let done = insert_rows(conn, account, resource, &items, Rule::Newer)
            .await
            .map_err(|e| (chunk[0].0.id.clone(), e))?;
        if !page.discounts.is_empty() {
            written_ids.extend(done.iter().cloned());
        }
        for (row, object) in chunk {
            if done.contains(&row.id) {
                written += 1;
                continue;
            }
            // Not written by the upsert: maybe a tie with the row's version of the same second.
            let Some(object) = object else { continue };
            if resolve_tie(conn, account, resource, object, version)
                .await
                .map_err(|e| (row.id.clone(), e))?
                == Applied::Written
            {
                written += 1;
            }
        }
    }
    write_own_discounts(conn, account, page, &written_ids).await?;
    for object in &page.others {
        let id_of = || read::text(object, "id").unwrap_or_default();
        let delete = object.get("deleted").and_then(Value::as_bool) == Some(true);
        let applied = apply_object(conn, account, resource, object, version, delete)
            .await
            .map_err(|e| (id_of(), e))?;
        if applied == Applied::Written {
            written += 1;
        }
    }
    Ok(written)
}

/// The own discounts of the customers `written` (of a prepared page), as `write_embedded` writes
/// a customer's: each discount (once per id) if newer than its row, the coupon of each discount
/// written, then the terms of each discount written settle the histories they apply to.
async fn write_own_discounts(
    conn: &mut AnyConnection,
    account: &str,
    page: &PreparedPage,
    written: &std::collections::HashSet<String>,
) -> Result<(), (String, ProjectionError)> {
    let mut seen = std::collections::HashSet::new();
    let own: Vec<&OwnDiscount> = page
        .discounts
        .iter()
        .filter(|d| written.contains(&d.customer) && seen.insert(d.row.id.as_str()))
        .collect();
    let version = &page.version;
    // A statement that fails is reported by the first object it wrote.
    let failed = |chunk: &[(&ObjectRow, &Version)]| {
        let id = chunk.first().map(|(row, _)| row.id.clone()).unwrap_or_default();
        move |e| (id, e)
    };
    let rows: Vec<(&ObjectRow, &Version)> = own.iter().map(|d| (&d.row, version)).collect();
    let mut done = std::collections::HashSet::new();
    for chunk in rows.chunks(crate::db::rows_per_statement(conn).max(1)) {
        done.extend(
            insert_rows(conn, account, Resource::Discount, chunk, Rule::Newer)
                .await
                .map_err(failed(chunk))?,
        );
    }
    let own: Vec<&OwnDiscount> = own.into_iter().filter(|d| done.contains(&d.row.id)).collect();
    let mut coupon_ids = std::collections::HashSet::new();
    let coupons: Vec<(&ObjectRow, &Version)> = own
        .iter()
        .filter_map(|d| d.coupon.as_ref())
        .filter(|c| coupon_ids.insert(c.id.as_str()))
        .map(|c| (c, version))
        .collect();
    for chunk in coupons.chunks(crate::db::rows_per_statement(conn).max(1)) {
        insert_rows(conn, account, Resource::Coupon, chunk, Rule::Newer)
            .await
            .map_err(failed(chunk))?;
    }
    for d in own {
        mrr_history::terms_changed(conn, Resource::Discount, &d.discount)
            .await
            .map_err(|e| (d.row.id.clone(), e))?;
    }
    Ok(())
}

/// Writes many objects of one resource (distinct ids, none deleting) with one statement, each
/// only if its version is newer than the row's (a later second; at the same second, a fetched
/// object, or the same event again); returns the ids written. An object not written may be a tie
/// (`resolve_tie`). A deleted row takes data only from events up to its deletion.
pub async fn upsert_many(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    objects: &[(&Value, &Version)],
) -> Result<std::collections::HashSet<String>, ProjectionError> {
    write_rows(conn, account, resource, objects, Rule::Newer).await
}

/// An object's row: its id, its JSON as text for `raw`, and the columns read out of it.
#[derive(Debug)]
struct ObjectRow {
    id: String,
    raw: String,
    livemode: i64,
    created: Option<i64>,
    typed: Vec<(&'static str, Col)>,
    /// Writing it may change the revenue of a closed month (`touches_closed_revenue`).
    closed_revenue: bool,
}

impl ObjectRow {
    fn of(resource: Resource, object: &Value) -> Result<Self, ProjectionError> {
        Ok(Self {
            id: read::text(object, "id").ok_or(ProjectionError::NoId)?,
            // Straight into bytes (`Display` goes through a formatter, a third slower).
            raw: serde_json::to_string(object).unwrap_or_default(),
            livemode: read::flag(object, "livemode").unwrap_or(0),
            created: read::int(object, "created"),
            typed: resource.columns(object),
            closed_revenue: touches_closed_revenue(resource, object),
        })
    }
}

/// When a write replaces a row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// A later second, or at the same second a fetched object or the same event.
    Newer,
    /// Also any version of the same second (the winner of a tie).
    SameSecondToo,
}

async fn write_rows(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    objects: &[(&Value, &Version)],
    rule: Rule,
) -> Result<std::collections::HashSet<String>, ProjectionError> {
    let rows = objects
        .iter()
        .map(|(object, _)| ObjectRow::of(resource, object))
        .collect::<Result<Vec<_>, _>>()?;
    let items: Vec<(&ObjectRow, &Version)> = rows.iter().zip(objects).map(|(row, (_, v))| (row, *v)).collect();
    let written = insert_rows(conn, account, resource, &items, rule).await?;
    if rows.iter().any(|row| row.closed_revenue) {
        bump_revenue_closed(conn).await?;
    }
    Ok(written)
}

/// One multi-row upsert of rows of one resource (distinct ids); returns the ids written.
async fn insert_rows(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    rows: &[(&ObjectRow, &Version)],
    rule: Rule,
) -> Result<std::collections::HashSet<String>, ProjectionError> {
    if rows.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!("{} RETURNING id", upsert_statement(conn, resource, rows, rule));
    let written = bind_rows(sqlx::query(&sql), account, rows)
        .fetch_all(&mut *conn)
        .await?;
    Ok(written
        .iter()
        .filter_map(|r| sqlx::Row::try_get::<String, _>(r, "id").ok())
        .collect())
}

/// As `insert_rows`, returning only how many were written (no row comes back, which saves a
/// message per row from the database).
async fn count_rows(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    rows: &[(&ObjectRow, &Version)],
    rule: Rule,
) -> Result<u64, ProjectionError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let sql = upsert_statement(conn, resource, rows, rule);
    let done = bind_rows(sqlx::query(&sql), account, rows).execute(&mut *conn).await?;
    Ok(done.rows_affected())
}

/// The multi-row upsert of `rows` (at least one; their placeholders in `bind_rows` order): a row
/// is replaced only under `rule`, never another account's, and a deleted row only by versions up
/// to its deletion.
fn upsert_statement(conn: &AnyConnection, resource: Resource, rows: &[(&ObjectRow, &Version)], rule: Rule) -> String {
    let first = rows[0].0;
    let table = resource.table();
    let mut names = vec![
        "id",
        "raw",
        "livemode",
        "created",
        "deleted",
        "deleted_at",
        "version_at",
        "version_event",
        "account_id",
    ];
    names.extend(first.typed.iter().map(|(n, _)| *n));
    let width = names.len();
    let mut params = crate::db::Params::new(conn);
    let placeholders: Vec<String> = (0..rows.len()).map(|_| format!("({})", params.list(width))).collect();
    let data_columns: Vec<&str> = names
        .iter()
        .copied()
        .filter(|c| !matches!(*c, "id" | "deleted" | "deleted_at" | "account_id"))
        .collect();
    let same_second = match rule {
        Rule::Newer => {
            format!("({table}.version_event = excluded.version_event OR excluded.version_event = '{FETCHED}')")
        }
        Rule::SameSecondToo => "1 = 1".to_string(),
    };
    format!(
        "INSERT INTO {table} ({cols}) VALUES {rows} ON CONFLICT (id) DO UPDATE SET {set} \
         WHERE {table}.account_id = excluded.account_id \
           AND ({table}.deleted = 0 OR excluded.version_at <= {table}.deleted_at) \
           AND ({table}.version_at < excluded.version_at \
                OR ({table}.version_at = excluded.version_at AND {same_second}))",
        cols = names.join(", "),
        rows = placeholders.join(", "),
        set = data_columns
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn bind_rows<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    account: &'q str,
    rows: &[(&'q ObjectRow, &'q Version)],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for (row, version) in rows {
        query = query
            .bind(row.id.as_str())
            .bind(row.raw.as_str())
            .bind(row.livemode)
            .bind(row.created)
            .bind(0i64)
            .bind(None::<i64>)
            .bind(version.at)
            .bind(version.event_id.as_str())
            .bind(account);
        for (_, value) in &row.typed {
            query = match value {
                Col::Text(v) => query.bind(v.as_deref()),
                Col::Int(v) => query.bind(*v),
            };
        }
    }
    query
}

/// Whether writing this object may change the revenue of a closed month (metrics caches those
/// months until counter `revenue_closed` grows). An hour of margin covers a transaction that
/// straddles the turn of a month.
fn touches_closed_revenue(resource: Resource, object: &Value) -> bool {
    matches!(resource, Resource::Charge | Resource::Refund | Resource::Dispute)
        && read::int(object, "created")
            .is_none_or(|created| created < crate::domain::calendar::month_start(crate::db::now_unix() + 3600, 0))
}

/// One row per process (db::cache), so instances on one Postgres never wait on each other here.
pub async fn bump_revenue_closed(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    crate::db::cache::bump_counter(conn, crate::db::cache::REVENUE_CLOSED).await
}

/// Marks the row deleted. A deletion marks the row (keeping the earliest deletion time) and never
/// touches its data; if the row does not exist yet, the deletion payload is stored as data of the
/// lowest version, so the object's earlier events, arriving late, still fill it in. The result is
/// the same whatever order events arrive in. Returns whether it wrote.
async fn mark_deleted(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    object: &Value,
    version: &Version,
) -> Result<bool, ProjectionError> {
    let object_id = read::text(object, "id").ok_or(ProjectionError::NoId)?;
    let table = resource.table();
    let typed = resource.columns(object);
    let mut names = vec![
        "id",
        "raw",
        "livemode",
        "created",
        "deleted",
        "deleted_at",
        "version_at",
        "version_event",
        "account_id",
    ];
    names.extend(typed.iter().map(|(n, _)| *n));
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    // A deletion marks the row (keeping the earliest deletion time) and leaves its data alone.
    let sql = format!(
        "INSERT INTO {table} ({cols}) VALUES ({vals}) ON CONFLICT (id) DO UPDATE \
         SET deleted = 1, deleted_at = excluded.deleted_at \
         WHERE {table}.account_id = excluded.account_id \
           AND ({table}.deleted = 0 OR excluded.deleted_at < {table}.deleted_at)",
        cols = names.join(", "),
        vals = placeholders.join(", "),
    );
    // A deletion that creates the row stores its payload as the oldest possible data.
    let mut query = sqlx::query(&sql)
        .bind(object_id)
        .bind(object.to_string())
        .bind(read::flag(object, "livemode").unwrap_or(0))
        .bind(read::int(object, "created"))
        .bind(1i64)
        .bind(Some(version.at))
        .bind(i64::MIN)
        .bind(String::new())
        .bind(account);
    for (_, value) in typed {
        query = match value {
            Col::Text(v) => query.bind(v),
            Col::Int(v) => query.bind(v),
        };
    }
    let done = query.execute(&mut *conn).await?;
    if touches_closed_revenue(resource, object) {
        bump_revenue_closed(conn).await?;
    }
    Ok(done.rows_affected() > 0)
}
