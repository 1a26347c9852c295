-- Figures of closed months (revenue per month, MRR movements per month), kept across restarts:
-- stored with the counter sums they were computed under (src/db/cache.rs, `get_persisted`), used
-- while those sums are unchanged, so the first overview after a restart does not recompute them.
CREATE TABLE figure_cache (
    key         TEXT PRIMARY KEY,
    stamp       TEXT NOT NULL,
    value       TEXT NOT NULL,     -- JSON
    computed_at BIGINT NOT NULL
);
