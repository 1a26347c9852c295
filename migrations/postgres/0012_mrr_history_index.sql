-- The MRR history of a currency in Stripe's order, read from the index alone (the movements
-- behind the overview and the Revenue page); it also answers the history's change stamp, so the
-- two narrower indexes it replaces are dropped.
CREATE INDEX subscription_mrr_history ON subscription_mrr (currency, at, event_id, subscription_id, customer_id, mrr);
DROP INDEX subscription_mrr_at;
DROP INDEX subscription_mrr_stamp;
