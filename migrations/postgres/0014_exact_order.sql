-- Exact order within a second (see webhooks::projection::order).
--
-- The MRR history keeps one snapshot per subscription and second: the state that stands at the end
-- of that second, chosen by the same rule as the rows (events of one second carry no order of their
-- own). Existing histories keep, for each second, the snapshot the old rule (larger event id) chose.
DELETE FROM subscription_mrr a USING subscription_mrr b
WHERE a.subscription_id = b.subscription_id AND a.at = b.at AND a.event_id < b.event_id;
ALTER TABLE subscription_mrr DROP CONSTRAINT subscription_mrr_pkey;
ALTER TABLE subscription_mrr ADD PRIMARY KEY (subscription_id, at);

-- Objects to fetch from Stripe: a tie whose versions differ (settled by Stripe's answer), or an
-- object whose embedded list Stripe cut short (a subscription's items, an invoice's lines). One row
-- per object and second, so a burst of events costs one fetch.
CREATE TABLE stripe_fetches (
    object_id   TEXT NOT NULL,
    at          BIGINT NOT NULL,
    resource    TEXT NOT NULL,      -- the projection table
    reason      TEXT NOT NULL,      -- tie | incomplete_list
    due_at      BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    PRIMARY KEY (object_id, at)
);
CREATE INDEX stripe_fetches_due ON stripe_fetches (due_at);

-- A subscription whose items (or an invoice whose lines) Stripe sent only in part: MRR and pages
-- say so until the rest is fetched.
ALTER TABLE subscriptions ADD COLUMN items_incomplete BIGINT NOT NULL DEFAULT 0;
ALTER TABLE invoices ADD COLUMN lines_incomplete BIGINT NOT NULL DEFAULT 0;
-- The overview counts them on every visit: partial indexes hold only the flagged rows.
CREATE INDEX subscriptions_items_incomplete ON subscriptions (items_incomplete) WHERE items_incomplete = 1;
CREATE INDEX invoices_lines_incomplete ON invoices (lines_incomplete) WHERE lines_incomplete = 1;

-- Stripe's values as Stripe sent them: emails were stored lowercased. Searches compare
-- case-insensitively.
UPDATE customers SET email = raw::jsonb ->> 'email' WHERE raw LIKE '{%';

-- A type the key may not read is skipped (the reason and the API path) and the run is partial.
ALTER TABLE sync_state ADD COLUMN skipped TEXT;
