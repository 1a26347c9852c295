-- MRR: each subscription's current contribution (minor units a month, in its currency), and one
-- snapshot per event that touched it, so movements can be derived in Stripe's order whatever
-- order the events arrived in.
ALTER TABLE subscriptions ADD COLUMN mrr BIGINT;

CREATE TABLE subscription_mrr (
    subscription_id TEXT NOT NULL,
    at              BIGINT NOT NULL,   -- the event's created time (or a backfill's fetch time)
    event_id        TEXT NOT NULL,     -- evt_… or backfill
    customer_id     TEXT,
    currency        TEXT,
    status          TEXT,
    mrr             BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, at, event_id)
);
CREATE INDEX subscription_mrr_at ON subscription_mrr (currency, at);
