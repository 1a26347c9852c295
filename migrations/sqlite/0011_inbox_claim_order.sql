-- The worker claims pending events oldest first (Stripe's `created`, then id): this index gives
-- them in that order, so a claim stops after one batch instead of sorting the whole queue.
CREATE INDEX stripe_events_pending_order ON stripe_events (status, created, id);
