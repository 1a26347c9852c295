-- MRR movements, stored: each customer's movements (per currency), rebuilt from that customer's
-- MRR history inside the projection's transaction whenever a snapshot is added. The overview and
-- the Revenue page sum and page them through indexes instead of replaying the whole history.
-- Existing databases are filled once at startup (metrics::movements::ensure_built).
CREATE TABLE mrr_movements (
    currency        TEXT NOT NULL,
    customer_id     TEXT NOT NULL,     -- the customer (the subscription's id when it has none)
    subscription_id TEXT NOT NULL,
    at              BIGINT NOT NULL,
    month           BIGINT NOT NULL,   -- the month of `at` (UTC) as year * 12 + month - 1
    event_id        TEXT NOT NULL,
    kind            TEXT NOT NULL,     -- new, expansion, contraction, churn, reactivation
    delta           BIGINT NOT NULL,   -- the change of MRR (negative for contraction and churn)
    mrr_after       BIGINT NOT NULL,   -- the subscription's MRR after it
    subscribers     BIGINT NOT NULL,   -- +1 a subscription starts counting, -1 it stops, else 0
    customers       BIGINT NOT NULL,   -- +1 a customer starts paying, -1 churns, else 0
    PRIMARY KEY (currency, customer_id, at, event_id, subscription_id)
);
-- Sums per month (charts) and over 30 days (KPIs) from an index alone, and the newest-first list.
CREATE INDEX mrr_movements_month ON mrr_movements (currency, month, kind, delta, subscribers, customers);
CREATE INDEX mrr_movements_at ON mrr_movements (currency, at, kind, delta, customers);
CREATE INDEX mrr_movements_kind ON mrr_movements (currency, kind, at);

-- A customer's MRR history, for rebuilding its movements; the history in global order is no
-- longer read.
CREATE INDEX subscription_mrr_customer ON subscription_mrr (customer_id, currency, at, event_id, subscription_id, mrr);
DROP INDEX subscription_mrr_history;
