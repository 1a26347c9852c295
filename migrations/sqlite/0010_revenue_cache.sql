-- Counters that let readers cache derived figures safely. `revenue_closed` grows whenever the
-- projection writes a charge, refund or dispute created before the current month, so the revenue
-- of closed months can be cached until it changes (and only the open month is summed per request).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('revenue_closed', 0);

-- Revenue per month reads only the index (no table rows): currency and time first, then what is summed.
CREATE INDEX charges_revenue ON charges (currency, created, status, amount_captured, amount);
DROP INDEX charges_currency_created;
-- The overview's active-subscription figures likewise.
CREATE INDEX subscriptions_active ON subscriptions (currency, status, deleted, mrr, customer_id);
-- Trials that ended in the last 30 days (overview).
CREATE INDEX subscriptions_trial_end ON subscriptions (currency, trial_end);
-- A customer's active subscriptions and MRR (customers list), read from the index alone.
CREATE INDEX subscriptions_customer_active ON subscriptions (customer_id, status, deleted, mrr);
