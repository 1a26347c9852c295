-- Counters that let readers cache derived figures safely (src/db/cache.rs): one row per counter
-- and process, `<counter>:<process id>`, summed by readers. `projection` grows with every change of
-- the projection; `revenue_closed` when it writes a charge, refund or dispute created before the
-- current month, so the revenue of closed months can be cached until then.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- Revenue per month reads only the index (no table rows): currency and time first, then what is summed.
CREATE INDEX charges_revenue ON charges (currency, created, status, amount_captured, amount);
DROP INDEX charges_currency_created;
-- The overview's active-subscription figures likewise.
CREATE INDEX subscriptions_active ON subscriptions (currency, status, deleted, mrr, customer_id);
-- Trials that ended in the last 30 days (overview).
CREATE INDEX subscriptions_trial_end ON subscriptions (currency, trial_end);
-- A customer's active subscriptions and MRR (customers list), read from the index alone.
CREATE INDEX subscriptions_customer_active ON subscriptions (customer_id, status, deleted, mrr);
