-- The totals a list shows without filters or with only a status tab (count and amount per status
-- and currency) as running sums, kept
-- by triggers like those of 0021 (appended changes, folded every second by src/metrics/sums.rs):
-- the first list request after a restart reads a few rows instead of every payment, invoice,
-- subscription or customer, even when the data changed meanwhile. Each list's amount is the one
-- its totals add up (src/lists.rs): payments `amount`, invoices `amount_due`, subscriptions
-- `mrr`, customers the MRR of their active subscriptions. Rows are kept per the row's own status
-- (customers have none: NULL), so a tab that is a set of statuses is a sum of some of them. A NULL
-- currency is a group of its own, as in the lists' own GROUP BY.
CREATE TABLE list_sums (
    id       INTEGER PRIMARY KEY,
    list     TEXT NOT NULL,
    status   TEXT,
    currency TEXT,
    n        BIGINT NOT NULL,
    amount   BIGINT NOT NULL
);
CREATE INDEX list_sums_list ON list_sums (list, status, currency);

INSERT INTO list_sums (list, status, currency, n, amount)
SELECT 'payments', status, currency, COUNT(*), SUM(COALESCE(amount, 0)) FROM charges GROUP BY status, currency;
INSERT INTO list_sums (list, status, currency, n, amount)
SELECT 'invoices', status, currency, COUNT(*), SUM(COALESCE(amount_due, 0)) FROM invoices GROUP BY status, currency;
INSERT INTO list_sums (list, status, currency, n, amount)
SELECT 'subscriptions', status, currency, COUNT(*), SUM(COALESCE(mrr, 0)) FROM subscriptions GROUP BY status, currency;
INSERT INTO list_sums (list, currency, n, amount)
SELECT 'customers', c.currency, COUNT(*), COALESCE(SUM(m.mrr), 0)
FROM customers c LEFT JOIN (
    SELECT customer_id, SUM(COALESCE(mrr, 0)) AS mrr FROM subscriptions
    WHERE status IN ('active', 'past_due') AND deleted = 0 GROUP BY customer_id
) m ON m.customer_id = c.id
GROUP BY c.currency;

-- Payments.
CREATE TRIGGER list_sums_charges_insert AFTER INSERT ON charges
BEGIN
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('payments', NEW.status, NEW.currency, 1, COALESCE(NEW.amount, 0));
END;
CREATE TRIGGER list_sums_charges_delete AFTER DELETE ON charges
BEGIN
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('payments', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount, 0));
END;
CREATE TRIGGER list_sums_charges_update AFTER UPDATE ON charges
WHEN OLD.currency IS NOT NEW.currency OR OLD.amount IS NOT NEW.amount OR OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('payments', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount, 0));
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('payments', NEW.status, NEW.currency, 1, COALESCE(NEW.amount, 0));
END;

-- Invoices.
CREATE TRIGGER list_sums_invoices_insert AFTER INSERT ON invoices
BEGIN
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('invoices', NEW.status, NEW.currency, 1, COALESCE(NEW.amount_due, 0));
END;
CREATE TRIGGER list_sums_invoices_delete AFTER DELETE ON invoices
BEGIN
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('invoices', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount_due, 0));
END;
CREATE TRIGGER list_sums_invoices_update AFTER UPDATE ON invoices
WHEN OLD.currency IS NOT NEW.currency OR OLD.amount_due IS NOT NEW.amount_due OR OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('invoices', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount_due, 0));
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('invoices', NEW.status, NEW.currency, 1, COALESCE(NEW.amount_due, 0));
END;

-- Subscriptions, and their MRR in their customer's row of the customers list (under the
-- customer's currency; a subscription whose customer Tally does not have counts nowhere there).
CREATE TRIGGER list_sums_subscriptions_insert AFTER INSERT ON subscriptions
BEGIN
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('subscriptions', NEW.status, NEW.currency, 1, COALESCE(NEW.mrr, 0));
    INSERT INTO list_sums (list, currency, n, amount)
    SELECT 'customers', c.currency, 0, COALESCE(NEW.mrr, 0) FROM customers c
    WHERE c.id = NEW.customer_id AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due');
END;
CREATE TRIGGER list_sums_subscriptions_delete AFTER DELETE ON subscriptions
BEGIN
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('subscriptions', OLD.status, OLD.currency, -1, -COALESCE(OLD.mrr, 0));
    INSERT INTO list_sums (list, currency, n, amount)
    SELECT 'customers', c.currency, 0, -COALESCE(OLD.mrr, 0) FROM customers c
    WHERE c.id = OLD.customer_id AND OLD.deleted = 0 AND OLD.status IN ('active', 'past_due');
END;
CREATE TRIGGER list_sums_subscriptions_update AFTER UPDATE ON subscriptions
WHEN OLD.currency IS NOT NEW.currency OR OLD.mrr IS NOT NEW.mrr OR OLD.customer_id IS NOT NEW.customer_id
  OR OLD.status IS NOT NEW.status OR OLD.deleted IS NOT NEW.deleted
BEGIN
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('subscriptions', OLD.status, OLD.currency, -1, -COALESCE(OLD.mrr, 0));
    INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('subscriptions', NEW.status, NEW.currency, 1, COALESCE(NEW.mrr, 0));
    INSERT INTO list_sums (list, currency, n, amount)
    SELECT 'customers', c.currency, 0, -COALESCE(OLD.mrr, 0) FROM customers c
    WHERE c.id = OLD.customer_id AND OLD.deleted = 0 AND OLD.status IN ('active', 'past_due');
    INSERT INTO list_sums (list, currency, n, amount)
    SELECT 'customers', c.currency, 0, COALESCE(NEW.mrr, 0) FROM customers c
    WHERE c.id = NEW.customer_id AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due');
END;

-- Customers: a row counts once, with the MRR of its active subscriptions at that moment; a
-- change of currency (or id) moves both.
CREATE TRIGGER list_sums_customers_insert AFTER INSERT ON customers
BEGIN
    INSERT INTO list_sums (list, currency, n, amount)
    SELECT 'customers', NEW.currency, 1, COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
    WHERE s.customer_id = NEW.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
END;
CREATE TRIGGER list_sums_customers_delete AFTER DELETE ON customers
BEGIN
    INSERT INTO list_sums (list, currency, n, amount)
    SELECT 'customers', OLD.currency, -1, -COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
    WHERE s.customer_id = OLD.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
END;
CREATE TRIGGER list_sums_customers_update AFTER UPDATE ON customers
WHEN OLD.currency IS NOT NEW.currency OR OLD.id IS NOT NEW.id
BEGIN
    INSERT INTO list_sums (list, currency, n, amount)
    SELECT 'customers', OLD.currency, -1, -COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
    WHERE s.customer_id = OLD.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
    INSERT INTO list_sums (list, currency, n, amount)
    SELECT 'customers', NEW.currency, 1, COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
    WHERE s.customer_id = NEW.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
END;
