-- Indexes for the lists (newest first: created then id, exactly their ORDER BY, so a page stops
-- after its rows), their totals (covering: currency, status, amount), and the overview's 30-day
-- and monthly sums and MRR history stamp.
CREATE INDEX charges_created_id ON charges (created, id);
CREATE INDEX charges_currency_created ON charges (currency, created);
CREATE INDEX charges_totals ON charges (currency, status, amount);
CREATE INDEX invoices_created_id ON invoices (created, id);
CREATE INDEX invoices_totals ON invoices (currency, status, amount_due);
CREATE INDEX refunds_created_id ON refunds (created, id);
CREATE INDEX refunds_currency_created ON refunds (currency, created);
CREATE INDEX disputes_created_id ON disputes (created, id);
CREATE INDEX subscriptions_created_id ON subscriptions (created, id);
CREATE INDEX subscriptions_currency_status ON subscriptions (currency, status, mrr);
CREATE INDEX subscription_mrr_stamp ON subscription_mrr (currency, at, mrr);
CREATE INDEX customers_created_id ON customers (created, id);
