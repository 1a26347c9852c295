-- The Stripe accounts Tally knows (issue: several accounts and Connect). One row per account:
-- its id (`acct_…`, from GET /v1/account or a Connect event), a display name, its mode, how Tally
-- reaches it, and the secrets it needs, sealed with TALLY_SECRETS_KEY (never stored in clear).
--   kind: 'direct' (its own secret key) or 'connected' (a Connect account, reached with the
--         platform's key and `Stripe-Account`);
--   source: 'environment' (STRIPE_SECRET_KEY; its secrets stay in the environment), 'settings',
--         'cli' or 'connect' (registered on first sight of one of its events).
CREATE TABLE stripe_accounts (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    renamed         BIGINT NOT NULL DEFAULT 0,   -- 1 once an owner named it: Stripe's names no longer replace it
    livemode        BIGINT,
    kind            TEXT NOT NULL,
    source          TEXT NOT NULL,
    platform_id     TEXT,
    secret_key      TEXT,
    webhook_secrets TEXT,
    raw             TEXT,
    disabled_at     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX stripe_accounts_platform ON stripe_accounts (platform_id);

-- The account an event was filed under: the account whose endpoint secret verified it, or, for a
-- Connect event, the connected account it names. NULL for events stored before accounts existed
-- (they are the first account's).
ALTER TABLE stripe_events ADD COLUMN account_id TEXT;
