-- Every projected row belongs to a Stripe account (issue: several accounts and Connect). `''` is
-- the environment's account (STRIPE_SECRET_KEY) for good: existing rows are its rows, and rotating
-- its key or learning its id later rewrites nothing. Other accounts' rows carry their `acct_…`.
-- Primary keys stay Stripe's ids (unique across accounts); a write never moves a row from one
-- account to another (src/projection/mod.rs), and every read filters on `account_id`
-- (domain::accounts::Scope). The running sums (0021, 0023) are kept per account: their triggers
-- are replaced by the same ones carrying the row's account; the existing sums rows are the
-- environment's.


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


-- The running sums' triggers, as in 0021 and 0023, carrying the row's account.


DROP TRIGGER subscription_sums_insert;
CREATE TRIGGER subscription_sums_insert AFTER INSERT ON subscriptions
WHEN NEW.currency IS NOT NULL
BEGIN
    INSERT INTO subscription_customers (currency, customer_id, active)
    SELECT NEW.currency, NEW.customer_id, 1
    WHERE NEW.customer_id IS NOT NULL AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due')
    ON CONFLICT (currency, customer_id) DO UPDATE SET active = active + 1;
    INSERT INTO subscription_sums (account_id, currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
    VALUES (
        NEW.account_id, NEW.currency, 1, COALESCE(NEW.mrr, 0),
        CASE WHEN NEW.deleted = 0 AND NEW.status IN ('active', 'past_due') THEN 1 ELSE 0 END,
        CASE WHEN NEW.deleted = 0 AND NEW.status IN ('active', 'past_due') THEN COALESCE(NEW.mrr, 0) ELSE 0 END,
        CASE WHEN NEW.customer_id IS NOT NULL AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due')
              AND (SELECT active FROM subscription_customers
                   WHERE currency = NEW.currency AND customer_id = NEW.customer_id) = 1 THEN 1 ELSE 0 END,
        CASE WHEN NEW.deleted = 0 AND NEW.status = 'trialing' THEN 1 ELSE 0 END
    );
END;

DROP TRIGGER subscription_sums_delete;
CREATE TRIGGER subscription_sums_delete AFTER DELETE ON subscriptions
WHEN OLD.currency IS NOT NULL
BEGIN
    INSERT INTO subscription_sums (account_id, currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
    VALUES (
        OLD.account_id, OLD.currency, -1, -COALESCE(OLD.mrr, 0),
        CASE WHEN OLD.deleted = 0 AND OLD.status IN ('active', 'past_due') THEN -1 ELSE 0 END,
        CASE WHEN OLD.deleted = 0 AND OLD.status IN ('active', 'past_due') THEN -COALESCE(OLD.mrr, 0) ELSE 0 END,
        CASE WHEN OLD.customer_id IS NOT NULL AND OLD.deleted = 0 AND OLD.status IN ('active', 'past_due')
              AND (SELECT active FROM subscription_customers
                   WHERE currency = OLD.currency AND customer_id = OLD.customer_id) = 1 THEN -1 ELSE 0 END,
        CASE WHEN OLD.deleted = 0 AND OLD.status = 'trialing' THEN -1 ELSE 0 END
    );
    UPDATE subscription_customers SET active = active - 1
    WHERE currency = OLD.currency AND customer_id = OLD.customer_id
      AND OLD.deleted = 0 AND OLD.status IN ('active', 'past_due');
    DELETE FROM subscription_customers
    WHERE currency = OLD.currency AND customer_id = OLD.customer_id AND active <= 0;
END;

DROP TRIGGER subscription_sums_update_old;
CREATE TRIGGER subscription_sums_update_old AFTER UPDATE ON subscriptions
WHEN OLD.currency IS NOT NULL
 AND (OLD.currency IS NOT NEW.currency OR OLD.customer_id IS NOT NEW.customer_id OR OLD.status IS NOT NEW.status
      OR OLD.deleted IS NOT NEW.deleted OR OLD.mrr IS NOT NEW.mrr)
BEGIN
    INSERT INTO subscription_sums (account_id, currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
    VALUES (
        OLD.account_id, OLD.currency, -1, -COALESCE(OLD.mrr, 0),
        CASE WHEN OLD.deleted = 0 AND OLD.status IN ('active', 'past_due') THEN -1 ELSE 0 END,
        CASE WHEN OLD.deleted = 0 AND OLD.status IN ('active', 'past_due') THEN -COALESCE(OLD.mrr, 0) ELSE 0 END,
        CASE WHEN OLD.customer_id IS NOT NULL AND OLD.deleted = 0 AND OLD.status IN ('active', 'past_due')
              AND (SELECT active FROM subscription_customers
                   WHERE currency = OLD.currency AND customer_id = OLD.customer_id) = 1 THEN -1 ELSE 0 END,
        CASE WHEN OLD.deleted = 0 AND OLD.status = 'trialing' THEN -1 ELSE 0 END
    );
    UPDATE subscription_customers SET active = active - 1
    WHERE currency = OLD.currency AND customer_id = OLD.customer_id
      AND OLD.deleted = 0 AND OLD.status IN ('active', 'past_due');
    DELETE FROM subscription_customers
    WHERE currency = OLD.currency AND customer_id = OLD.customer_id AND active <= 0;
END;

DROP TRIGGER subscription_sums_update_new;
CREATE TRIGGER subscription_sums_update_new AFTER UPDATE ON subscriptions
WHEN NEW.currency IS NOT NULL
 AND (OLD.currency IS NOT NEW.currency OR OLD.customer_id IS NOT NEW.customer_id OR OLD.status IS NOT NEW.status
      OR OLD.deleted IS NOT NEW.deleted OR OLD.mrr IS NOT NEW.mrr)
BEGIN
    INSERT INTO subscription_customers (currency, customer_id, active)
    SELECT NEW.currency, NEW.customer_id, 1
    WHERE NEW.customer_id IS NOT NULL AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due')
    ON CONFLICT (currency, customer_id) DO UPDATE SET active = active + 1;
    INSERT INTO subscription_sums (account_id, currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
    VALUES (
        NEW.account_id, NEW.currency, 1, COALESCE(NEW.mrr, 0),
        CASE WHEN NEW.deleted = 0 AND NEW.status IN ('active', 'past_due') THEN 1 ELSE 0 END,
        CASE WHEN NEW.deleted = 0 AND NEW.status IN ('active', 'past_due') THEN COALESCE(NEW.mrr, 0) ELSE 0 END,
        CASE WHEN NEW.customer_id IS NOT NULL AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due')
              AND (SELECT active FROM subscription_customers
                   WHERE currency = NEW.currency AND customer_id = NEW.customer_id) = 1 THEN 1 ELSE 0 END,
        CASE WHEN NEW.deleted = 0 AND NEW.status = 'trialing' THEN 1 ELSE 0 END
    );
END;

DROP TRIGGER charge_day_sums_insert;
CREATE TRIGGER charge_day_sums_insert AFTER INSERT ON charges
WHEN NEW.currency IS NOT NULL AND NEW.created IS NOT NULL
BEGIN
    INSERT INTO charge_day_sums (account_id, currency, day, gross, failed, payments)
    VALUES (
        NEW.account_id, NEW.currency, NEW.created - ((NEW.created % 86400) + 86400) % 86400,
        CASE WHEN NEW.status = 'succeeded' THEN COALESCE(NEW.amount_captured, NEW.amount, 0) ELSE 0 END,
        CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END,
        1
    );
END;

DROP TRIGGER charge_day_sums_delete;
CREATE TRIGGER charge_day_sums_delete AFTER DELETE ON charges
WHEN OLD.currency IS NOT NULL AND OLD.created IS NOT NULL
BEGIN
    INSERT INTO charge_day_sums (account_id, currency, day, gross, failed, payments)
    VALUES (
        OLD.account_id, OLD.currency, OLD.created - ((OLD.created % 86400) + 86400) % 86400,
        CASE WHEN OLD.status = 'succeeded' THEN -COALESCE(OLD.amount_captured, OLD.amount, 0) ELSE 0 END,
        CASE WHEN OLD.status = 'failed' THEN -1 ELSE 0 END,
        -1
    );
END;

DROP TRIGGER charge_day_sums_update;
CREATE TRIGGER charge_day_sums_update AFTER UPDATE ON charges
WHEN OLD.currency IS NOT NEW.currency OR OLD.created IS NOT NEW.created OR OLD.status IS NOT NEW.status
  OR OLD.amount IS NOT NEW.amount OR OLD.amount_captured IS NOT NEW.amount_captured
BEGIN
    INSERT INTO charge_day_sums (account_id, currency, day, gross, failed, payments)
    SELECT OLD.account_id, OLD.currency, OLD.created - ((OLD.created % 86400) + 86400) % 86400,
           CASE WHEN OLD.status = 'succeeded' THEN -COALESCE(OLD.amount_captured, OLD.amount, 0) ELSE 0 END,
           CASE WHEN OLD.status = 'failed' THEN -1 ELSE 0 END,
           -1
    WHERE OLD.currency IS NOT NULL AND OLD.created IS NOT NULL;
    INSERT INTO charge_day_sums (account_id, currency, day, gross, failed, payments)
    SELECT NEW.account_id, NEW.currency, NEW.created - ((NEW.created % 86400) + 86400) % 86400,
           CASE WHEN NEW.status = 'succeeded' THEN COALESCE(NEW.amount_captured, NEW.amount, 0) ELSE 0 END,
           CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END,
           1
    WHERE NEW.currency IS NOT NULL AND NEW.created IS NOT NULL;
END;

DROP TRIGGER list_sums_charges_insert;
CREATE TRIGGER list_sums_charges_insert AFTER INSERT ON charges
BEGIN
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (NEW.account_id, 'payments', NEW.status, NEW.currency, 1, COALESCE(NEW.amount, 0));
END;

DROP TRIGGER list_sums_charges_delete;
CREATE TRIGGER list_sums_charges_delete AFTER DELETE ON charges
BEGIN
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (OLD.account_id, 'payments', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount, 0));
END;

DROP TRIGGER list_sums_charges_update;
CREATE TRIGGER list_sums_charges_update AFTER UPDATE ON charges
WHEN OLD.currency IS NOT NEW.currency OR OLD.amount IS NOT NEW.amount OR OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (OLD.account_id, 'payments', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount, 0));
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (NEW.account_id, 'payments', NEW.status, NEW.currency, 1, COALESCE(NEW.amount, 0));
END;

DROP TRIGGER list_sums_invoices_insert;
CREATE TRIGGER list_sums_invoices_insert AFTER INSERT ON invoices
BEGIN
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (NEW.account_id, 'invoices', NEW.status, NEW.currency, 1, COALESCE(NEW.amount_due, 0));
END;

DROP TRIGGER list_sums_invoices_delete;
CREATE TRIGGER list_sums_invoices_delete AFTER DELETE ON invoices
BEGIN
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (OLD.account_id, 'invoices', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount_due, 0));
END;

DROP TRIGGER list_sums_invoices_update;
CREATE TRIGGER list_sums_invoices_update AFTER UPDATE ON invoices
WHEN OLD.currency IS NOT NEW.currency OR OLD.amount_due IS NOT NEW.amount_due OR OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (OLD.account_id, 'invoices', OLD.status, OLD.currency, -1, -COALESCE(OLD.amount_due, 0));
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (NEW.account_id, 'invoices', NEW.status, NEW.currency, 1, COALESCE(NEW.amount_due, 0));
END;

DROP TRIGGER list_sums_subscriptions_insert;
CREATE TRIGGER list_sums_subscriptions_insert AFTER INSERT ON subscriptions
BEGIN
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (NEW.account_id, 'subscriptions', NEW.status, NEW.currency, 1, COALESCE(NEW.mrr, 0));
    INSERT INTO list_sums (account_id, list, currency, n, amount)
    SELECT c.account_id, 'customers', c.currency, 0, COALESCE(NEW.mrr, 0) FROM customers c
    WHERE c.id = NEW.customer_id AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due');
END;

DROP TRIGGER list_sums_subscriptions_delete;
CREATE TRIGGER list_sums_subscriptions_delete AFTER DELETE ON subscriptions
BEGIN
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (OLD.account_id, 'subscriptions', OLD.status, OLD.currency, -1, -COALESCE(OLD.mrr, 0));
    INSERT INTO list_sums (account_id, list, currency, n, amount)
    SELECT c.account_id, 'customers', c.currency, 0, -COALESCE(OLD.mrr, 0) FROM customers c
    WHERE c.id = OLD.customer_id AND OLD.deleted = 0 AND OLD.status IN ('active', 'past_due');
END;

DROP TRIGGER list_sums_subscriptions_update;
CREATE TRIGGER list_sums_subscriptions_update AFTER UPDATE ON subscriptions
WHEN OLD.currency IS NOT NEW.currency OR OLD.mrr IS NOT NEW.mrr OR OLD.customer_id IS NOT NEW.customer_id
  OR OLD.status IS NOT NEW.status OR OLD.deleted IS NOT NEW.deleted
BEGIN
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (OLD.account_id, 'subscriptions', OLD.status, OLD.currency, -1, -COALESCE(OLD.mrr, 0));
    INSERT INTO list_sums (account_id, list, status, currency, n, amount) VALUES (NEW.account_id, 'subscriptions', NEW.status, NEW.currency, 1, COALESCE(NEW.mrr, 0));
    INSERT INTO list_sums (account_id, list, currency, n, amount)
    SELECT c.account_id, 'customers', c.currency, 0, -COALESCE(OLD.mrr, 0) FROM customers c
    WHERE c.id = OLD.customer_id AND OLD.deleted = 0 AND OLD.status IN ('active', 'past_due');
    INSERT INTO list_sums (account_id, list, currency, n, amount)
    SELECT c.account_id, 'customers', c.currency, 0, COALESCE(NEW.mrr, 0) FROM customers c
    WHERE c.id = NEW.customer_id AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due');
END;

DROP TRIGGER list_sums_customers_insert;
CREATE TRIGGER list_sums_customers_insert AFTER INSERT ON customers
BEGIN
    INSERT INTO list_sums (account_id, list, currency, n, amount)
    SELECT NEW.account_id, 'customers', NEW.currency, 1, COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
    WHERE s.customer_id = NEW.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
END;

DROP TRIGGER list_sums_customers_delete;
CREATE TRIGGER list_sums_customers_delete AFTER DELETE ON customers
BEGIN
    INSERT INTO list_sums (account_id, list, currency, n, amount)
    SELECT OLD.account_id, 'customers', OLD.currency, -1, -COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
    WHERE s.customer_id = OLD.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
END;

DROP TRIGGER list_sums_customers_update;
CREATE TRIGGER list_sums_customers_update AFTER UPDATE ON customers
WHEN OLD.currency IS NOT NEW.currency OR OLD.id IS NOT NEW.id
BEGIN
    INSERT INTO list_sums (account_id, list, currency, n, amount)
    SELECT OLD.account_id, 'customers', OLD.currency, -1, -COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
    WHERE s.customer_id = OLD.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
    INSERT INTO list_sums (account_id, list, currency, n, amount)
    SELECT NEW.account_id, 'customers', NEW.currency, 1, COALESCE(SUM(COALESCE(s.mrr, 0)), 0) FROM subscriptions s
    WHERE s.customer_id = NEW.id AND s.status IN ('active', 'past_due') AND s.deleted = 0;
END;
