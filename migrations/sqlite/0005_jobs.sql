-- Background jobs an admin starts or a schedule runs: backfill (sync), reconciliation, drift.
-- One row a run; the page shows the latest of each kind and polls the running one.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY NOT NULL,  -- uuid
    kind         TEXT NOT NULL,              -- sync | reconcile | drift
    status       TEXT NOT NULL,              -- running | done | failed
    trigger      TEXT NOT NULL,              -- cli | admin | schedule
    requested_by TEXT,                       -- admin email, for admin-started runs
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,            -- a running job older than this + 2 min has died
    finished_at  BIGINT,
    summary      TEXT,                       -- JSON: counts, differences…
    error        TEXT
);
CREATE INDEX jobs_kind_started ON jobs (kind, started_at);
