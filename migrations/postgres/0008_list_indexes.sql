-- Indexes for the lists (newest first, per currency) and the overview's 30-day and monthly sums.
CREATE INDEX charges_currency_created ON charges (currency, created);
CREATE INDEX invoices_created ON invoices (created);
CREATE INDEX invoices_status ON invoices (status, currency);
CREATE INDEX refunds_currency_created ON refunds (currency, created);
CREATE INDEX disputes_created ON disputes (created);
CREATE INDEX subscriptions_created ON subscriptions (created);
CREATE INDEX subscriptions_currency_status ON subscriptions (currency, status);
CREATE INDEX customers_created ON customers (created);
