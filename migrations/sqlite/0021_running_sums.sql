-- Running sums the database keeps as the projection writes (triggers), so the overview reads a
-- handful of rows instead of every active subscription and every charge of a window; the cost
-- of a first request no longer grows with the data. Each write of a subscription or charge
-- appends the change it made as a row (never updates a shared row, so concurrent writers never
-- wait on each other here); Tally folds the rows of one key into one every second
-- (src/metrics/sums.rs). Reading a figure is the sum of its key's rows.

-- Per currency: subscriptions (every row, deleted too, and their MRR: they order the currency
-- switch), active ones (not deleted, status active or past_due: counted in MRR), their MRR,
-- the distinct customers among them, and trials.
CREATE TABLE subscription_sums (
    id               INTEGER PRIMARY KEY,
    currency         TEXT NOT NULL,
    subscriptions    BIGINT NOT NULL,
    mrr              BIGINT NOT NULL,
    active           BIGINT NOT NULL,
    active_mrr       BIGINT NOT NULL,
    active_customers BIGINT NOT NULL,
    trialing         BIGINT NOT NULL
);
CREATE INDEX subscription_sums_currency ON subscription_sums (currency);

-- A customer's active subscriptions per currency (a customer counts once, however many).
CREATE TABLE subscription_customers (
    currency    TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    active      BIGINT NOT NULL,
    PRIMARY KEY (currency, customer_id)
);

-- Per currency and UTC day of `created`: succeeded charges' captured amount, failed charges, and
-- all charges.
CREATE TABLE charge_day_sums (
    id       INTEGER PRIMARY KEY,
    currency TEXT NOT NULL,
    day      BIGINT NOT NULL,
    gross    BIGINT NOT NULL,
    failed   BIGINT NOT NULL,
    payments BIGINT NOT NULL
);
CREATE INDEX charge_day_sums_day ON charge_day_sums (currency, day);

-- What the data holds now.
INSERT INTO subscription_customers (currency, customer_id, active)
SELECT currency, customer_id, COUNT(*) FROM subscriptions
WHERE currency IS NOT NULL AND customer_id IS NOT NULL AND deleted = 0 AND status IN ('active', 'past_due')
GROUP BY currency, customer_id;

INSERT INTO subscription_sums (currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
SELECT currency, COUNT(*), SUM(COALESCE(mrr, 0)),
       SUM(CASE WHEN deleted = 0 AND status IN ('active', 'past_due') THEN 1 ELSE 0 END),
       SUM(CASE WHEN deleted = 0 AND status IN ('active', 'past_due') THEN COALESCE(mrr, 0) ELSE 0 END),
       0,
       SUM(CASE WHEN deleted = 0 AND status = 'trialing' THEN 1 ELSE 0 END)
FROM subscriptions WHERE currency IS NOT NULL GROUP BY currency;

INSERT INTO subscription_sums (currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
SELECT currency, 0, 0, 0, 0, COUNT(*), 0 FROM subscription_customers GROUP BY currency;

INSERT INTO charge_day_sums (currency, day, gross, failed, payments)
SELECT currency, created - ((created % 86400) + 86400) % 86400 AS d,
       SUM(CASE WHEN status = 'succeeded' THEN COALESCE(amount_captured, amount, 0) ELSE 0 END),
       SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END),
       COUNT(*)
FROM charges WHERE currency IS NOT NULL AND created IS NOT NULL GROUP BY currency, d;

-- A subscription row counts (+) when it appears and uncounts (-) when it goes; an update does
-- both when a column the sums read changed. Each half reads the customer's count on its own side
-- of its own change, so the halves are right in either order.
CREATE TRIGGER subscription_sums_insert AFTER INSERT ON subscriptions
WHEN NEW.currency IS NOT NULL
BEGIN
    INSERT INTO subscription_customers (currency, customer_id, active)
    SELECT NEW.currency, NEW.customer_id, 1
    WHERE NEW.customer_id IS NOT NULL AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due')
    ON CONFLICT (currency, customer_id) DO UPDATE SET active = active + 1;
    INSERT INTO subscription_sums (currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
    VALUES (
        NEW.currency, 1, COALESCE(NEW.mrr, 0),
        CASE WHEN NEW.deleted = 0 AND NEW.status IN ('active', 'past_due') THEN 1 ELSE 0 END,
        CASE WHEN NEW.deleted = 0 AND NEW.status IN ('active', 'past_due') THEN COALESCE(NEW.mrr, 0) ELSE 0 END,
        CASE WHEN NEW.customer_id IS NOT NULL AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due')
              AND (SELECT active FROM subscription_customers
                   WHERE currency = NEW.currency AND customer_id = NEW.customer_id) = 1 THEN 1 ELSE 0 END,
        CASE WHEN NEW.deleted = 0 AND NEW.status = 'trialing' THEN 1 ELSE 0 END
    );
END;

CREATE TRIGGER subscription_sums_delete AFTER DELETE ON subscriptions
WHEN OLD.currency IS NOT NULL
BEGIN
    INSERT INTO subscription_sums (currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
    VALUES (
        OLD.currency, -1, -COALESCE(OLD.mrr, 0),
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

CREATE TRIGGER subscription_sums_update_old AFTER UPDATE ON subscriptions
WHEN OLD.currency IS NOT NULL
 AND (OLD.currency IS NOT NEW.currency OR OLD.customer_id IS NOT NEW.customer_id OR OLD.status IS NOT NEW.status
      OR OLD.deleted IS NOT NEW.deleted OR OLD.mrr IS NOT NEW.mrr)
BEGIN
    INSERT INTO subscription_sums (currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
    VALUES (
        OLD.currency, -1, -COALESCE(OLD.mrr, 0),
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

CREATE TRIGGER subscription_sums_update_new AFTER UPDATE ON subscriptions
WHEN NEW.currency IS NOT NULL
 AND (OLD.currency IS NOT NEW.currency OR OLD.customer_id IS NOT NEW.customer_id OR OLD.status IS NOT NEW.status
      OR OLD.deleted IS NOT NEW.deleted OR OLD.mrr IS NOT NEW.mrr)
BEGIN
    INSERT INTO subscription_customers (currency, customer_id, active)
    SELECT NEW.currency, NEW.customer_id, 1
    WHERE NEW.customer_id IS NOT NULL AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due')
    ON CONFLICT (currency, customer_id) DO UPDATE SET active = active + 1;
    INSERT INTO subscription_sums (currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
    VALUES (
        NEW.currency, 1, COALESCE(NEW.mrr, 0),
        CASE WHEN NEW.deleted = 0 AND NEW.status IN ('active', 'past_due') THEN 1 ELSE 0 END,
        CASE WHEN NEW.deleted = 0 AND NEW.status IN ('active', 'past_due') THEN COALESCE(NEW.mrr, 0) ELSE 0 END,
        CASE WHEN NEW.customer_id IS NOT NULL AND NEW.deleted = 0 AND NEW.status IN ('active', 'past_due')
              AND (SELECT active FROM subscription_customers
                   WHERE currency = NEW.currency AND customer_id = NEW.customer_id) = 1 THEN 1 ELSE 0 END,
        CASE WHEN NEW.deleted = 0 AND NEW.status = 'trialing' THEN 1 ELSE 0 END
    );
END;

-- A charge counts in the day of its `created` (floor, also before 1970).
CREATE TRIGGER charge_day_sums_insert AFTER INSERT ON charges
WHEN NEW.currency IS NOT NULL AND NEW.created IS NOT NULL
BEGIN
    INSERT INTO charge_day_sums (currency, day, gross, failed, payments)
    VALUES (
        NEW.currency, NEW.created - ((NEW.created % 86400) + 86400) % 86400,
        CASE WHEN NEW.status = 'succeeded' THEN COALESCE(NEW.amount_captured, NEW.amount, 0) ELSE 0 END,
        CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END,
        1
    );
END;

CREATE TRIGGER charge_day_sums_delete AFTER DELETE ON charges
WHEN OLD.currency IS NOT NULL AND OLD.created IS NOT NULL
BEGIN
    INSERT INTO charge_day_sums (currency, day, gross, failed, payments)
    VALUES (
        OLD.currency, OLD.created - ((OLD.created % 86400) + 86400) % 86400,
        CASE WHEN OLD.status = 'succeeded' THEN -COALESCE(OLD.amount_captured, OLD.amount, 0) ELSE 0 END,
        CASE WHEN OLD.status = 'failed' THEN -1 ELSE 0 END,
        -1
    );
END;

CREATE TRIGGER charge_day_sums_update AFTER UPDATE ON charges
WHEN OLD.currency IS NOT NEW.currency OR OLD.created IS NOT NEW.created OR OLD.status IS NOT NEW.status
  OR OLD.amount IS NOT NEW.amount OR OLD.amount_captured IS NOT NEW.amount_captured
BEGIN
    INSERT INTO charge_day_sums (currency, day, gross, failed, payments)
    SELECT OLD.currency, OLD.created - ((OLD.created % 86400) + 86400) % 86400,
           CASE WHEN OLD.status = 'succeeded' THEN -COALESCE(OLD.amount_captured, OLD.amount, 0) ELSE 0 END,
           CASE WHEN OLD.status = 'failed' THEN -1 ELSE 0 END,
           -1
    WHERE OLD.currency IS NOT NULL AND OLD.created IS NOT NULL;
    INSERT INTO charge_day_sums (currency, day, gross, failed, payments)
    SELECT NEW.currency, NEW.created - ((NEW.created % 86400) + 86400) % 86400,
           CASE WHEN NEW.status = 'succeeded' THEN COALESCE(NEW.amount_captured, NEW.amount, 0) ELSE 0 END,
           CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END,
           1
    WHERE NEW.currency IS NOT NULL AND NEW.created IS NOT NULL;
END;
