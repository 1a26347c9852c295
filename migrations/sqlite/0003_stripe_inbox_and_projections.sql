-- The webhook inbox: every verified Stripe event, stored before it is acknowledged.
CREATE TABLE stripe_events (
    id              TEXT PRIMARY KEY NOT NULL,   -- evt_…
    type            TEXT NOT NULL,
    api_version     TEXT,
    created         BIGINT NOT NULL,             -- Stripe's Unix seconds
    livemode        BIGINT NOT NULL,             -- 0/1
    account         TEXT,                        -- Connect account, if any
    object_id       TEXT,                        -- data.object.id
    payload         TEXT NOT NULL,               -- the raw body, exactly as received
    received_at     BIGINT NOT NULL,
    source          TEXT NOT NULL,               -- webhook | backfill | demo | replay
    status          TEXT NOT NULL,               -- pending | processing | applied | ignored | failed
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    processed_at    BIGINT,
    duration_ms     BIGINT,
    mode_mismatch   BIGINT NOT NULL DEFAULT 0    -- 1: livemode differs from the configured key
);
CREATE INDEX stripe_events_queue ON stripe_events (status, next_attempt_at);
CREATE INDEX stripe_events_received ON stripe_events (received_at);
CREATE INDEX stripe_events_object ON stripe_events (object_id);

-- Projections: one table per Stripe resource. Each keeps the raw object JSON, the typed columns
-- pages and metrics need, and the version (event created, event id) that last wrote it, so an
-- older event never overwrites newer state. deleted = 1 is final: deleted_at is the deletion
-- event's time; data from events up to that time may still fill the row, later ones are refused.
CREATE TABLE customers (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    email TEXT, name TEXT, currency TEXT, delinquent BIGINT
);
CREATE INDEX customers_email ON customers (email);

CREATE TABLE payment_methods (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    customer_id TEXT, type TEXT, card_brand TEXT, card_last4 TEXT, card_exp_month BIGINT, card_exp_year BIGINT
);
CREATE INDEX payment_methods_customer ON payment_methods (customer_id);

CREATE TABLE products (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    name TEXT, active BIGINT
);

CREATE TABLE prices (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    product_id TEXT, active BIGINT, currency TEXT, unit_amount BIGINT, type TEXT,
    recurring_interval TEXT, recurring_interval_count BIGINT, usage_type TEXT, nickname TEXT
);
CREATE INDEX prices_product ON prices (product_id);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    customer_id TEXT, status TEXT, currency TEXT, cancel_at_period_end BIGINT, cancel_at BIGINT,
    canceled_at BIGINT, ended_at BIGINT, trial_start BIGINT, trial_end BIGINT,
    current_period_start BIGINT, current_period_end BIGINT, start_date BIGINT
);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);
CREATE INDEX subscriptions_status ON subscriptions (status);

CREATE TABLE subscription_items (
    id TEXT PRIMARY KEY NOT NULL, subscription_id TEXT NOT NULL, price_id TEXT, product_id TEXT,
    quantity BIGINT, unit_amount BIGINT, currency TEXT, recurring_interval TEXT,
    recurring_interval_count BIGINT, usage_type TEXT, current_period_start BIGINT, current_period_end BIGINT,
    raw TEXT NOT NULL
);
CREATE INDEX subscription_items_subscription ON subscription_items (subscription_id);

CREATE TABLE invoices (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    customer_id TEXT, subscription_id TEXT, status TEXT, currency TEXT, amount_due BIGINT, amount_paid BIGINT,
    amount_remaining BIGINT, total BIGINT, subtotal BIGINT, tax BIGINT, charge_id TEXT, payment_intent_id TEXT,
    billing_reason TEXT, period_start BIGINT, period_end BIGINT, paid_at BIGINT, attempt_count BIGINT
);
CREATE INDEX invoices_customer ON invoices (customer_id);
CREATE INDEX invoices_subscription ON invoices (subscription_id);

CREATE TABLE payment_intents (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    customer_id TEXT, status TEXT, amount BIGINT, amount_received BIGINT, currency TEXT, latest_charge_id TEXT,
    invoice_id TEXT, canceled_at BIGINT, last_error TEXT
);
CREATE INDEX payment_intents_customer ON payment_intents (customer_id);

CREATE TABLE charges (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    customer_id TEXT, payment_intent_id TEXT, invoice_id TEXT, status TEXT, amount BIGINT, amount_captured BIGINT,
    amount_refunded BIGINT, currency TEXT, paid BIGINT, captured BIGINT, refunded BIGINT, disputed BIGINT,
    failure_code TEXT, failure_message TEXT, payment_method_id TEXT, card_brand TEXT, card_last4 TEXT
);
CREATE INDEX charges_customer ON charges (customer_id);
CREATE INDEX charges_created ON charges (created);

CREATE TABLE refunds (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    charge_id TEXT, payment_intent_id TEXT, status TEXT, amount BIGINT, currency TEXT, reason TEXT,
    failure_reason TEXT
);
CREATE INDEX refunds_charge ON refunds (charge_id);

CREATE TABLE disputes (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    charge_id TEXT, payment_intent_id TEXT, status TEXT, amount BIGINT, currency TEXT, reason TEXT,
    evidence_due_by BIGINT
);
CREATE INDEX disputes_charge ON disputes (charge_id);

CREATE TABLE checkout_sessions (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    customer_id TEXT, customer_email TEXT, status TEXT, payment_status TEXT, mode TEXT, subscription_id TEXT,
    payment_intent_id TEXT, invoice_id TEXT, amount_total BIGINT, currency TEXT, expires_at BIGINT
);
