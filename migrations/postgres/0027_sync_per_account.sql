-- Backfill, reconciliation and drift per Stripe account: each account has its own backfill
-- progress (sync_state keyed by account and type) and its own running job of each kind.
-- `''` is the environment's account, as in 0025.
ALTER TABLE sync_state ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE sync_state DROP CONSTRAINT sync_state_pkey;
ALTER TABLE sync_state ADD PRIMARY KEY (account_id, resource);

ALTER TABLE jobs ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
DROP INDEX jobs_one_running;
CREATE UNIQUE INDEX jobs_one_running ON jobs (kind, account_id) WHERE status = 'running';

-- The Stripe account an action at Stripe concerned (refunds, portals, subscription changes).
ALTER TABLE audit_log ADD COLUMN account_id TEXT;
