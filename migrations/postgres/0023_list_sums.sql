-- The totals a list shows without filters or with only a status tab (count and amount per status
-- and currency) as running sums, kept
-- by triggers like those of 0021 (appended changes, folded every second by src/metrics/sums.rs):
-- the first list request after a restart reads a few rows instead of every payment, invoice,
-- subscription or customer, even when the data changed meanwhile. Each list's amount is the one
-- its totals add up (src/lists.rs): payments `amount`, invoices `amount_due`, subscriptions
-- `mrr`, customers the MRR of their active subscriptions. Rows are kept per the row's own status
-- (customers have none: NULL), so a tab that is a set of statuses is a sum of some of them. A NULL
-- currency is a group of its own, as in the lists' own GROUP BY.

-- No writes while the sums are filled from the data and the triggers take over.
LOCK TABLE charges, invoices, subscriptions, customers IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE list_sums (
    id       BIGSERIAL PRIMARY KEY,
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
CREATE FUNCTION list_sums_charge_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('payments', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount, 0));
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('payments', NEW.status, NEW.currency, 1, COALESCE(NEW.amount, 0));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER list_sums_charges AFTER INSERT OR DELETE ON charges
FOR EACH ROW EXECUTE FUNCTION list_sums_charge_change();
CREATE TRIGGER list_sums_charges_update AFTER UPDATE ON charges
FOR EACH ROW WHEN (OLD.currency IS DISTINCT FROM NEW.currency OR OLD.amount IS DISTINCT FROM NEW.amount
      OR OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION list_sums_charge_change();

-- Invoices.
CREATE FUNCTION list_sums_invoice_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('invoices', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount_due, 0));
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('invoices', NEW.status, NEW.currency, 1, COALESCE(NEW.amount_due, 0));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER list_sums_invoices AFTER INSERT OR DELETE ON invoices
FOR EACH ROW EXECUTE FUNCTION list_sums_invoice_change();
CREATE TRIGGER list_sums_invoices_update AFTER UPDATE ON invoices
FOR EACH ROW WHEN (OLD.currency IS DISTINCT FROM NEW.currency OR OLD.amount_due IS DISTINCT FROM NEW.amount_due
      OR OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION list_sums_invoice_change();

-- Subscriptions, and their MRR in their customer's row of the customers list (under the
-- customer's currency; a subscription whose customer Tally does not have counts nowhere there).
CREATE FUNCTION list_sums_subscription_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('subscriptions', OLD.status, OLD.currency, -1, -COALESCE(OLD.mrr, 0));
        IF OLD.deleted = 0 AND OLD.status IN ('active', 'past_due') THEN
            INSERT INTO list_sums (list, currency, n, amount)
            SELECT 'customers', c.currency, 0, -COALESCE(OLD.mrr, 0) FROM customers c WHERE c.id = OLD.customer_id;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO list_sums (list, status, currency, n, amount) VALUES ('subscriptions', NEW.status, NEW.currency, 1, COALESCE(NEW.mrr, 0));
        IF NEW.deleted = 0 AND NEW.status IN ('active', 'past_due') THEN
            INSERT INTO list_sums (list, currency, n, amount)
            SELECT 'customers', c.currency, 0, COALESCE(NEW.mrr, 0) FROM customers c WHERE c.id = NEW.customer_id;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER list_sums_subscriptions AFTER INSERT OR DELETE ON subscriptions
FOR EACH ROW EXECUTE FUNCTION list_sums_subscription_change();
CREATE TRIGGER list_sums_subscriptions_update AFTER UPDATE ON subscriptions
FOR EACH ROW
WHEN (OLD.currency IS DISTINCT FROM NEW.currency OR OLD.mrr IS DISTINCT FROM NEW.mrr
      OR OLD.customer_id IS DISTINCT FROM NEW.customer_id OR OLD.status IS DISTINCT FROM NEW.status
      OR OLD.deleted IS DISTINCT FROM NEW.deleted)
EXECUTE FUNCTION list_sums_subscription_change();

-- Customers: a row counts once, with the MRR of its active subscriptions at that moment; a
-- change of currency (or id) moves both.
CREATE FUNCTION list_sums_customer_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO list_sums (list, currency, n, amount)
        SELECT 'customers', OLD.currency, -1, -COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
        WHERE s.customer_id = OLD.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO list_sums (list, currency, n, amount)
        SELECT 'customers', NEW.currency, 1, COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
        WHERE s.customer_id = NEW.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER list_sums_customers AFTER INSERT OR DELETE ON customers
FOR EACH ROW EXECUTE FUNCTION list_sums_customer_change();
CREATE TRIGGER list_sums_customers_update AFTER UPDATE ON customers
FOR EACH ROW WHEN (OLD.currency IS DISTINCT FROM NEW.currency OR OLD.id IS DISTINCT FROM NEW.id)
EXECUTE FUNCTION list_sums_customer_change();
