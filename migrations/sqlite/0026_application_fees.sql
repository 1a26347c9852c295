-- Stripe Connect: the fees a platform collects on its connected accounts' payments
-- (application_fee.* events on the platform's own endpoint). Projected like every resource
-- (newer version wins, raw object kept); `account_id` is the platform's account (the one whose
-- event it is), `connected_account_id` the connected account the fee was taken from.
CREATE TABLE application_fees (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    account_id TEXT NOT NULL DEFAULT '',
    connected_account_id TEXT, charge_id TEXT, amount BIGINT, amount_refunded BIGINT, currency TEXT, refunded BIGINT
);
CREATE INDEX application_fees_connected ON application_fees (connected_account_id, currency, created);
