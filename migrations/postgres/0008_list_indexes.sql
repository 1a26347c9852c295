-- Indexes for the lists (newest first, per currency), their totals (covering: status, currency,
-- amount), and the overview's 30-day and monthly sums and MRR history stamp.
CREATE INDEX charges_currency_created ON charges (currency, created);
CREATE INDEX charges_totals ON charges (currency, status, amount);
CREATE INDEX invoices_created ON invoices (created);
CREATE INDEX invoices_totals ON invoices (currency, status, amount_due);
CREATE INDEX refunds_currency_created ON refunds (currency, created);
CREATE INDEX disputes_created ON disputes (created);
CREATE INDEX subscriptions_created ON subscriptions (created);
CREATE INDEX subscriptions_currency_status ON subscriptions (currency, status, mrr);
CREATE INDEX subscription_mrr_stamp ON subscription_mrr (currency, at, mrr);
CREATE INDEX customers_created ON customers (created);
