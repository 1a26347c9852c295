-- Every projected row belongs to a Stripe account (issue: several accounts and Connect). `''` is
-- the environment's account (STRIPE_SECRET_KEY) for good: existing rows are its rows, and rotating
-- its key or learning its id later rewrites nothing. Other accounts' rows carry their `acct_…`.
-- Primary keys stay Stripe's ids (unique across accounts); a write never moves a row from one
-- account to another (src/projection/mod.rs), and every read filters on `account_id`
-- (domain::accounts::Scope). The running sums (0021, 0023) are kept per account: their triggers
-- are replaced by the same ones carrying the row's account; the existing sums rows are the
-- environment's.


LOCK TABLE subscriptions, charges, invoices, customers IN SHARE ROW EXCLUSIVE MODE;


ALTER TABLE customers ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE payment_methods ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE products ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE prices ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE subscription_items ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE invoices ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE payment_intents ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE charges ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE refunds ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE disputes ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE checkout_sessions ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE coupons ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE discounts ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE promotion_codes ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE subscription_mrr ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE mrr_movements ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE subscription_sums ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE charge_day_sums ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE list_sums ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE stripe_fetches ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE refund_requests ADD COLUMN account_id TEXT NOT NULL DEFAULT '';


-- An admin limited to some accounts has a row per account (none: every account). Owners see
-- every account whatever the rows say.
CREATE TABLE admin_accounts (
    admin_id   BIGINT NOT NULL,
    account_id TEXT NOT NULL,
    PRIMARY KEY (admin_id, account_id)
);

-- The indexes the figures read without visiting rows also hold the account, so a per-account
-- figure still reads only the index.
DROP INDEX charges_revenue;
CREATE INDEX charges_revenue ON charges (currency, created, status, amount_captured, amount, account_id);
DROP INDEX subscriptions_active;
CREATE INDEX subscriptions_active ON subscriptions (currency, status, deleted, mrr, customer_id, account_id);
DROP INDEX mrr_movements_month;
CREATE INDEX mrr_movements_month ON mrr_movements (currency, month, kind, delta, subscribers, customers, account_id);
DROP INDEX mrr_movements_at;
CREATE INDEX mrr_movements_at ON mrr_movements (currency, at, kind, delta, customers, account_id);

-- Events filed under a Connect account before 0024 knew the column.
UPDATE stripe_events SET account_id = account WHERE account_id IS NULL AND account IS NOT NULL;
-- Other accounts' events were stored but not applied until rows carried their account: applied now.
UPDATE stripe_events SET status = 'pending', last_error = NULL, processed_at = NULL, attempts = 0
WHERE status = 'ignored' AND last_error IN (
    'event of another Stripe account: stored under that account, not applied yet (docs/accounts.md)',
    'event of a connected account (Stripe Connect): stored, not applied to this account''s data'
);


-- The running sums' trigger functions, as in 0021 and 0023, carrying the row's account.


CREATE OR REPLACE FUNCTION subscription_sums_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted BOOLEAN;
    n BIGINT;
    customers BIGINT;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.currency IS NOT NULL THEN
        counted := COALESCE(OLD.deleted = 0 AND OLD.status IN ('active', 'past_due'), FALSE);
        customers := 0;
        IF counted AND OLD.customer_id IS NOT NULL THEN
            UPDATE subscription_customers SET active = active - 1
            WHERE currency = OLD.currency AND customer_id = OLD.customer_id
            RETURNING active INTO n;
            IF n IS NOT NULL AND n <= 0 THEN
                DELETE FROM subscription_customers WHERE currency = OLD.currency AND customer_id = OLD.customer_id;
                customers := -1;
            END IF;
        END IF;
        INSERT INTO subscription_sums (account_id, currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
        VALUES (
            OLD.account_id, OLD.currency, -1, -COALESCE(OLD.mrr, 0),
            CASE WHEN counted THEN -1 ELSE 0 END,
            CASE WHEN counted THEN -COALESCE(OLD.mrr, 0) ELSE 0 END,
            customers,
            CASE WHEN OLD.deleted = 0 AND OLD.status = 'trialing' THEN -1 ELSE 0 END
        );
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.currency IS NOT NULL THEN
        counted := COALESCE(NEW.deleted = 0 AND NEW.status IN ('active', 'past_due'), FALSE);
        customers := 0;
        IF counted AND NEW.customer_id IS NOT NULL THEN
            INSERT INTO subscription_customers AS c (currency, customer_id, active)
            VALUES (NEW.currency, NEW.customer_id, 1)
            ON CONFLICT (currency, customer_id) DO UPDATE SET active = c.active + 1
            RETURNING active INTO n;
            IF n = 1 THEN
                customers := 1;
            END IF;
        END IF;
        INSERT INTO subscription_sums (account_id, currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
        VALUES (
            NEW.account_id, NEW.currency, 1, COALESCE(NEW.mrr, 0),
            CASE WHEN counted THEN 1 ELSE 0 END,
            CASE WHEN counted THEN COALESCE(NEW.mrr, 0) ELSE 0 END,
            customers,
            CASE WHEN NEW.deleted = 0 AND NEW.status = 'trialing' THEN 1 ELSE 0 END
        );
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION charge_day_sums_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.currency IS NOT NULL AND OLD.created IS NOT NULL THEN
        INSERT INTO charge_day_sums (account_id, currency, day, gross, failed, payments)
        VALUES (
            OLD.account_id, OLD.currency, OLD.created - ((OLD.created % 86400) + 86400) % 86400,
            CASE WHEN OLD.status = 'succeeded' THEN -COALESCE(OLD.amount_captured, OLD.amount, 0) ELSE 0 END,
            CASE WHEN OLD.status = 'failed' THEN -1 ELSE 0 END,
            -1
        );
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.currency IS NOT NULL AND NEW.created IS NOT NULL THEN
        INSERT INTO charge_day_sums (account_id, currency, day, gross, failed, payments)
        VALUES (
            NEW.account_id, NEW.currency, NEW.created - ((NEW.created % 86400) + 86400) % 86400,
            CASE WHEN NEW.status = 'succeeded' THEN COALESCE(NEW.amount_captured, NEW.amount, 0) ELSE 0 END,
            CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END,
            1
        );
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION list_sums_charge_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (OLD.account_id, 'payments', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount, 0));
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (NEW.account_id, 'payments', NEW.status, NEW.currency, 1, COALESCE(NEW.amount, 0));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION list_sums_invoice_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (OLD.account_id, 'invoices', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount_due, 0));
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (NEW.account_id, 'invoices', NEW.status, NEW.currency, 1, COALESCE(NEW.amount_due, 0));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION list_sums_subscription_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (OLD.account_id, 'subscriptions', OLD.status, OLD.currency, -1, -COALESCE(OLD.mrr, 0));
        IF OLD.deleted = 0 AND OLD.status IN ('active', 'past_due') THEN
            INSERT INTO list_sums (account_id, list, currency, n, amount)
            SELECT c.account_id, 'customers', c.currency, 0, -COALESCE(OLD.mrr, 0) FROM customers c WHERE c.id = OLD.customer_id;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (NEW.account_id, 'subscriptions', NEW.status, NEW.currency, 1, COALESCE(NEW.mrr, 0));
        IF NEW.deleted = 0 AND NEW.status IN ('active', 'past_due') THEN
            INSERT INTO list_sums (account_id, list, currency, n, amount)
            SELECT c.account_id, 'customers', c.currency, 0, COALESCE(NEW.mrr, 0) FROM customers c WHERE c.id = NEW.customer_id;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION list_sums_customer_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO list_sums (account_id, list, currency, n, amount)
        SELECT OLD.account_id, 'customers', OLD.currency, -1, -COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
        WHERE s.customer_id = OLD.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO list_sums (account_id, list, currency, n, amount)
        SELECT NEW.account_id, 'customers', NEW.currency, 1, COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
        WHERE s.customer_id = NEW.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
    END IF;
    RETURN NULL;
END
$$;
