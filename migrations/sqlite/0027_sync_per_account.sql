-- Backfill, reconciliation and drift per Stripe account: each account has its own backfill
-- progress (sync_state keyed by account and type) and its own running job of each kind.
-- `''` is the environment's account, as in 0025.
CREATE TABLE sync_state_new (
    account_id TEXT NOT NULL DEFAULT '',
    resource   TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    since      BIGINT,
    cursor     TEXT,
    done       BIGINT NOT NULL DEFAULT 0,
    fetched    BIGINT NOT NULL DEFAULT 0,
    applied    BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    skipped    TEXT,
    PRIMARY KEY (account_id, resource)
);
INSERT INTO sync_state_new (account_id, resource, run_id, since, cursor, done, fetched, applied, started_at, updated_at, skipped)
SELECT '', resource, run_id, since, cursor, done, fetched, applied, started_at, updated_at, skipped FROM sync_state;
DROP TABLE sync_state;
ALTER TABLE sync_state_new RENAME TO sync_state;

ALTER TABLE jobs ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
DROP INDEX jobs_one_running;
CREATE UNIQUE INDEX jobs_one_running ON jobs (kind, account_id) WHERE status = 'running';

-- The Stripe account an action at Stripe concerned (refunds, portals, subscription changes).
ALTER TABLE audit_log ADD COLUMN account_id TEXT;
