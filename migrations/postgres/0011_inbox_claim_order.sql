-- The worker claims pending events oldest first (Stripe's `created`, then id): this index gives
-- them in that order, so a claim stops after one batch instead of sorting the whole queue.
CREATE INDEX stripe_events_pending_order ON stripe_events (status, created, id);
-- It serves every status lookup the old queue index served (SQLite chose that one for claims and
-- sorted the whole queue each time); one index less to update per event.
DROP INDEX stripe_events_queue;

-- The last webhook received (overview): found directly even when most events came from a
-- backfill or reconciliation rather than webhooks.
CREATE INDEX stripe_events_source_received ON stripe_events (source, received_at);
