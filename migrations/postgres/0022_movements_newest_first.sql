-- The Revenue page lists movements newest first (at, event, subscription, descending): these
-- indexes hand them over in that order, with or without a kind, instead of sorting every
-- movement of the currency (284 ms for 212,000 movements before).
CREATE INDEX mrr_movements_newest ON mrr_movements (currency, at, event_id, subscription_id);
DROP INDEX mrr_movements_kind;
CREATE INDEX mrr_movements_kind ON mrr_movements (currency, kind, at, event_id, subscription_id);
