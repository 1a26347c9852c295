-- Backfill progress per resource, so a sync that is killed continues where it stopped.
CREATE TABLE sync_state (
    resource   TEXT PRIMARY KEY,  -- customers, invoices, …
    run_id     TEXT NOT NULL,              -- the sync run this row belongs to
    since      BIGINT,                     -- created[gte] filter of the run, Unix seconds
    cursor     TEXT,                       -- id of the last object applied (Stripe's starting_after)
    done       BIGINT NOT NULL DEFAULT 0,  -- 0/1
    fetched    BIGINT NOT NULL DEFAULT 0,
    applied    BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
