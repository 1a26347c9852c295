-- Running sums the database keeps as the projection writes (triggers), so the overview reads a
-- handful of rows instead of every active subscription and every charge of a window; the cost
-- of a first request no longer grows with the data. Each write of a subscription or charge
-- appends the change it made as a row (never updates a shared row, so concurrent writers never
-- wait on each other here); Tally folds the rows of one key into one every second
-- (src/metrics/sums.rs). Reading a figure is the sum of its key's rows.

-- No writes while the sums are filled from the data and the triggers take over.
LOCK TABLE subscriptions, charges IN SHARE ROW EXCLUSIVE MODE;

-- Per currency: subscriptions (every row, deleted too, and their MRR: they order the currency
-- switch), active ones (not deleted, status active or past_due: counted in MRR), their MRR,
-- the distinct customers among them, and trials.
CREATE TABLE subscription_sums (
    id               BIGSERIAL PRIMARY KEY,
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
    id       BIGSERIAL PRIMARY KEY,
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
-- both when a column the sums read changed.
CREATE FUNCTION subscription_sums_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
        INSERT INTO subscription_sums (currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
        VALUES (
            OLD.currency, -1, -COALESCE(OLD.mrr, 0),
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
        INSERT INTO subscription_sums (currency, subscriptions, mrr, active, active_mrr, active_customers, trialing)
        VALUES (
            NEW.currency, 1, COALESCE(NEW.mrr, 0),
            CASE WHEN counted THEN 1 ELSE 0 END,
            CASE WHEN counted THEN COALESCE(NEW.mrr, 0) ELSE 0 END,
            customers,
            CASE WHEN NEW.deleted = 0 AND NEW.status = 'trialing' THEN 1 ELSE 0 END
        );
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER subscription_sums_insert AFTER INSERT OR DELETE ON subscriptions
FOR EACH ROW EXECUTE FUNCTION subscription_sums_change();

CREATE TRIGGER subscription_sums_update AFTER UPDATE ON subscriptions
FOR EACH ROW
WHEN (OLD.currency IS DISTINCT FROM NEW.currency OR OLD.customer_id IS DISTINCT FROM NEW.customer_id
      OR OLD.status IS DISTINCT FROM NEW.status OR OLD.deleted IS DISTINCT FROM NEW.deleted
      OR OLD.mrr IS DISTINCT FROM NEW.mrr)
EXECUTE FUNCTION subscription_sums_change();

-- A charge counts in the day of its `created` (floor, also before 1970).
CREATE FUNCTION charge_day_sums_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.currency IS NOT NULL AND OLD.created IS NOT NULL THEN
        INSERT INTO charge_day_sums (currency, day, gross, failed, payments)
        VALUES (
            OLD.currency, OLD.created - ((OLD.created % 86400) + 86400) % 86400,
            CASE WHEN OLD.status = 'succeeded' THEN -COALESCE(OLD.amount_captured, OLD.amount, 0) ELSE 0 END,
            CASE WHEN OLD.status = 'failed' THEN -1 ELSE 0 END,
            -1
        );
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.currency IS NOT NULL AND NEW.created IS NOT NULL THEN
        INSERT INTO charge_day_sums (currency, day, gross, failed, payments)
        VALUES (
            NEW.currency, NEW.created - ((NEW.created % 86400) + 86400) % 86400,
            CASE WHEN NEW.status = 'succeeded' THEN COALESCE(NEW.amount_captured, NEW.amount, 0) ELSE 0 END,
            CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END,
            1
        );
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER charge_day_sums_insert AFTER INSERT OR DELETE ON charges
FOR EACH ROW EXECUTE FUNCTION charge_day_sums_change();

CREATE TRIGGER charge_day_sums_update AFTER UPDATE ON charges
FOR EACH ROW
WHEN (OLD.currency IS DISTINCT FROM NEW.currency OR OLD.created IS DISTINCT FROM NEW.created
      OR OLD.status IS DISTINCT FROM NEW.status OR OLD.amount IS DISTINCT FROM NEW.amount
      OR OLD.amount_captured IS DISTINCT FROM NEW.amount_captured)
EXECUTE FUNCTION charge_day_sums_change();
