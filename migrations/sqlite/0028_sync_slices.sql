-- A type's backfill is fetched in slices of its `created` range, several at once: each slice has
-- its bounds and its own cursor, committed with every page, so a stopped or killed run resumes
-- every slice where it stopped. Slice 0 is the type's first (no upper bound); a slice is split
-- when a fetcher is idle (its older half becomes a new slice).
CREATE TABLE sync_slices (
    account_id  TEXT NOT NULL DEFAULT '',
    resource    TEXT NOT NULL,
    slice       BIGINT NOT NULL,
    created_gte BIGINT,
    created_lt  BIGINT,
    cursor      TEXT,
    done        BIGINT NOT NULL DEFAULT 0,
    fetched     BIGINT NOT NULL DEFAULT 0,
    pages       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, resource, slice)
);
-- Pages fetched per type; 0 once the API was seen to ignore `created` filters (one slice then).
ALTER TABLE sync_state ADD COLUMN pages BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sync_state ADD COLUMN sliced BIGINT NOT NULL DEFAULT 1;
-- An admin asked a running job to stop (Settings → Stripe sync): whichever process runs it sees
-- the flag within seconds and stops as on Ctrl-C.
ALTER TABLE jobs ADD COLUMN stop_requested BIGINT NOT NULL DEFAULT 0;
