//! The lists (subscriptions, payments, invoices, refunds, disputes, customers): one description
//! per list (`Spec`: its columns, status tabs, search and sort, here), one query builder for the
//! page (`query`: keyset pagination, totals per currency) and the CSV export (`export`: streamed,
//! same filters). Every row comes from one query with joins; nothing is queried per row.

pub mod export;
pub mod query;

pub const PAGE_SIZE: i64 = 50;

#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// A link to `prefix` + the cell's text.
    Link(&'static str),
    /// Customer label, linking to the customer (needs `customer_id` selected).
    Customer,
    /// Minor units in the row's currency.
    Money,
    Time,
    /// A Stripe status, shown as a badge with a readable label.
    Status,
    /// A Stripe enum value (a reason) as words.
    Label,
    /// `name|interval|interval count|items` of a subscription's main item, as "Pro · monthly".
    Plan,
    /// An id shown where it lives on its customer's page (`/customers/{customer}#{id}`).
    Anchor,
    /// A deadline (Unix seconds) as the days left until it: "3 days left", "Overdue by 2 days".
    DueIn,
}

struct Column {
    header: &'static str,
    sql: &'static str,
    kind: Kind,
}

struct Spec {
    name: &'static str,
    from: &'static str,
    id: &'static str,
    created: &'static str,
    currency: &'static str,
    /// The amount summed in the totals (per currency), if any.
    amount: Option<&'static str>,
    /// (tab value, SQL condition).
    tabs: &'static [(&'static str, &'static str)],
    /// Columns `q` searches (a prefix of the id, or anywhere in email and name).
    search: &'static [&'static str],
    /// (sort value, SQL expression).
    sorts: &'static [(&'static str, &'static str)],
    /// Dates other than `created` that `on=` can put the `since`/`through` window on.
    dates: &'static [(&'static str, &'static str)],
    /// Tabs whose totals add up another amount than `amount` (tab, SQL, what it is).
    tab_amounts: &'static [(&'static str, &'static str, &'static str)],
    /// Tabs that open sorted another way than by date, ascending (tab, sort value).
    tab_sorts: &'static [(&'static str, &'static str)],
    columns: &'static [Column],
}

const fn col(header: &'static str, sql: &'static str, kind: Kind) -> Column {
    Column { header, sql, kind }
}

/// A subquery over the customer's active subscriptions (index subscriptions_customer_active).
macro_rules! active_subscriptions {
    ($select:literal) => {
        concat!(
            "(SELECT ",
            $select,
            " FROM subscriptions sa WHERE sa.customer_id = c.id AND sa.status IN ('active', 'past_due') AND sa.deleted = 0)"
        )
    };
}
const CUSTOMER_ACTIVE: &str = active_subscriptions!("COUNT(*)");
const CUSTOMER_MRR: &str = active_subscriptions!("SUM(sa.mrr)");
const CUSTOMER_MRR_SORT: &str = concat!("COALESCE(", active_subscriptions!("SUM(sa.mrr)"), ", 0)");
const CUSTOMER_PAYING: &str = concat!("EXISTS ", active_subscriptions!("1"));
const CUSTOMER_NOT_PAYING: &str = concat!("NOT EXISTS ", active_subscriptions!("1"), " AND c.deleted = 0");

/// The evidence deadline of a dispute that still needs a response (else NULL).
const DISPUTE_DEADLINE: &str =
    "CASE WHEN d.status IN ('needs_response', 'warning_needs_response') THEN d.evidence_due_by END";
/// Disputes by how soon their evidence is due (those not waiting for a response last).
const DISPUTE_URGENCY: &str = "COALESCE(CASE WHEN d.status IN ('needs_response', 'warning_needs_response') \
    THEN d.evidence_due_by END, 4102444800)";

const SPECS: [Spec; 6] = [
    Spec {
        name: "subscriptions",
        from: "subscriptions s LEFT JOIN customers c ON c.id = s.customer_id",
        id: "s.id",
        created: "s.created",
        currency: "s.currency",
        amount: Some("s.mrr"),
        tabs: &[
            // `s.status || ''` keeps SQLite from picking the status index and sorting every
            // match: walking (created, id) backwards stops after one page.
            ("active", "s.status || '' IN ('active', 'past_due')"),
            ("trialing", "s.status || '' = 'trialing'"),
            ("past_due", "s.status || '' = 'past_due'"),
            ("canceled", "s.status || '' = 'canceled'"),
            (
                "incomplete",
                "s.status || '' IN ('incomplete', 'incomplete_expired', 'unpaid', 'paused')",
            ),
            // Trials that are over (the overview's trial conversion: those active now converted).
            (
                "trial_ended",
                "s.trial_end IS NOT NULL AND s.status || '' <> 'trialing' AND s.deleted = 0",
            ),
        ],
        search: &["s.id", "c.email", "c.name"],
        sorts: &[("created", "s.created"), ("mrr", "COALESCE(s.mrr, 0)")],
        dates: &[("trial_end", "s.trial_end")],
        tab_amounts: &[],
        tab_sorts: &[],
        columns: &[
            col("Customer", "COALESCE(c.name, c.email, s.customer_id)", Kind::Customer),
            col("Plan", crate::db::customers::SUBSCRIPTION_PLAN, Kind::Plan),
            col("Status", "s.status", Kind::Status),
            col("MRR", "s.mrr", Kind::Money),
            col("Started", "s.start_date", Kind::Time),
            col("Period ends", "s.current_period_end", Kind::Time),
            col(
                "Cancels at period end",
                "CASE WHEN s.cancel_at_period_end = 1 THEN 'yes' ELSE '' END",
                Kind::Text,
            ),
            col("Subscription", "s.id", Kind::Anchor),
        ],
    },
    Spec {
        name: "payments",
        from: "charges ch LEFT JOIN customers c ON c.id = ch.customer_id",
        id: "ch.id",
        created: "ch.created",
        currency: "ch.currency",
        amount: Some("ch.amount"),
        tabs: &[
            ("succeeded", "ch.status = 'succeeded'"),
            ("failed", "ch.status = 'failed'"),
            ("refunded", "COALESCE(ch.amount_refunded, 0) > 0"),
            ("disputed", "ch.disputed = 1"),
        ],
        search: &["ch.id", "c.email", "c.name"],
        sorts: &[("created", "ch.created"), ("amount", "COALESCE(ch.amount, 0)")],
        dates: &[],
        tab_amounts: &[],
        tab_sorts: &[],
        columns: &[
            col("Date", "ch.created", Kind::Time),
            col("Payment", "ch.id", Kind::Link("/payments/")),
            col("Customer", "COALESCE(c.name, c.email, ch.customer_id)", Kind::Customer),
            col("Status", "ch.status", Kind::Status),
            col("Amount", "ch.amount", Kind::Money),
            col("Refunded", "ch.amount_refunded", Kind::Money),
            col("Failure", "ch.failure_message", Kind::Text),
        ],
    },
    Spec {
        name: "invoices",
        from: "invoices i LEFT JOIN customers c ON c.id = i.customer_id",
        id: "i.id",
        created: "i.created",
        currency: "i.currency",
        amount: Some("i.amount_due"),
        tabs: &[
            ("paid", "i.status = 'paid'"),
            ("open", "i.status = 'open'"),
            (
                "failed",
                "i.status = 'open' AND COALESCE(i.attempt_count, 0) > 0 AND i.deleted = 0",
            ),
            ("void", "i.status = 'void'"),
            ("uncollectible", "i.status = 'uncollectible'"),
        ],
        search: &["i.id", "c.email", "c.name"],
        sorts: &[("created", "i.created"), ("amount", "COALESCE(i.amount_due, 0)")],
        dates: &[],
        // What is still owed on unpaid invoices (the overview's open failed payments).
        tab_amounts: &[("failed", "i.amount_remaining", "remaining")],
        tab_sorts: &[],
        columns: &[
            col("Date", "i.created", Kind::Time),
            col("Invoice", "i.id", Kind::Anchor),
            col("Customer", "COALESCE(c.name, c.email, i.customer_id)", Kind::Customer),
            col("Status", "i.status", Kind::Status),
            col("Amount due", "i.amount_due", Kind::Money),
            col("Paid", "i.amount_paid", Kind::Money),
            col("Attempts", "i.attempt_count", Kind::Text),
        ],
    },
    Spec {
        name: "refunds",
        from: "refunds r LEFT JOIN charges ch ON ch.id = r.charge_id LEFT JOIN customers c ON c.id = ch.customer_id",
        id: "r.id",
        created: "r.created",
        currency: "r.currency",
        amount: Some("r.amount"),
        tabs: &[
            ("succeeded", "r.status = 'succeeded'"),
            ("pending", "r.status = 'pending'"),
            // What the overview's net revenue subtracts (a refund without a status succeeded).
            ("counted", "COALESCE(r.status, 'succeeded') IN ('succeeded', 'pending')"),
            ("failed", "r.status IN ('failed', 'canceled')"),
        ],
        search: &["r.id", "r.charge_id", "c.email", "c.name"],
        sorts: &[("created", "r.created"), ("amount", "COALESCE(r.amount, 0)")],
        dates: &[],
        tab_amounts: &[],
        tab_sorts: &[],
        columns: &[
            col("Date", "r.created", Kind::Time),
            col("Refund", "r.id", Kind::Anchor),
            col("Payment", "r.charge_id", Kind::Link("/payments/")),
            col("Customer", "COALESCE(c.name, c.email, ch.customer_id)", Kind::Customer),
            col("Status", "r.status", Kind::Status),
            col("Amount", "r.amount", Kind::Money),
            col("Reason", "r.reason", Kind::Label),
        ],
    },
    Spec {
        name: "disputes",
        from: "disputes d LEFT JOIN charges ch ON ch.id = d.charge_id LEFT JOIN customers c ON c.id = ch.customer_id",
        id: "d.id",
        created: "d.created",
        currency: "d.currency",
        amount: Some("d.amount"),
        tabs: &[
            (
                "open",
                "d.status IN ('needs_response', 'warning_needs_response', 'under_review', 'warning_under_review')",
            ),
            (
                "needs_response",
                "d.status IN ('needs_response', 'warning_needs_response')",
            ),
            ("won", "d.status = 'won'"),
            ("lost", "d.status = 'lost'"),
        ],
        search: &["d.id", "d.charge_id", "c.email", "c.name"],
        sorts: &[
            ("created", "d.created"),
            ("evidence_due", "COALESCE(d.evidence_due_by, 0)"),
            ("amount", "COALESCE(d.amount, 0)"),
            // The soonest deadline of a dispute still waiting for evidence first.
            ("urgency", DISPUTE_URGENCY),
        ],
        dates: &[],
        tab_amounts: &[],
        tab_sorts: &[("open", "urgency"), ("needs_response", "urgency")],
        columns: &[
            col("Opened", "d.created", Kind::Time),
            col("Dispute", "d.id", Kind::Anchor),
            col("Payment", "d.charge_id", Kind::Link("/payments/")),
            col("Customer", "COALESCE(c.name, c.email, ch.customer_id)", Kind::Customer),
            col("Status", "d.status", Kind::Status),
            col("Amount", "d.amount", Kind::Money),
            col("Reason", "d.reason", Kind::Label),
            col("Evidence due", "d.evidence_due_by", Kind::Time),
            col("Respond within", DISPUTE_DEADLINE, Kind::DueIn),
        ],
    },
    Spec {
        name: "customers",
        // Per-customer figures as correlated subqueries over index subscriptions_customer_active:
        // a page evaluates them for its rows only, not for every customer.
        from: "customers c",
        id: "c.id",
        created: "c.created",
        currency: "c.currency",
        amount: Some(CUSTOMER_MRR),
        tabs: &[
            ("all", "1 = 1"),
            ("paying", CUSTOMER_PAYING),
            ("not_paying", CUSTOMER_NOT_PAYING),
            ("deleted", "c.deleted = 1"),
        ],
        search: &["c.id", "c.email", "c.name"],
        sorts: &[("created", "c.created"), ("mrr", CUSTOMER_MRR_SORT)],
        dates: &[],
        tab_amounts: &[],
        tab_sorts: &[],
        columns: &[
            col("Customer", "COALESCE(c.name, c.email, c.id)", Kind::Customer),
            col("Email", "c.email", Kind::Text),
            col("Active subscriptions", CUSTOMER_ACTIVE, Kind::Text),
            col("MRR", CUSTOMER_MRR, Kind::Money),
            col("Since", "c.created", Kind::Time),
            col(
                "Status",
                "CASE WHEN c.deleted = 1 THEN 'deleted' ELSE '' END",
                Kind::Status,
            ),
        ],
    },
];

fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}
