-- Coupons, discounts and promotion codes (Stripe's current API lists a subscription's discounts by
-- id): projected like every other resource, so MRR can apply them.
CREATE TABLE coupons (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    name TEXT, duration TEXT, duration_in_months BIGINT, percent_off TEXT, amount_off BIGINT, currency TEXT,
    valid BIGINT
);

-- end_at: Stripe's `end`; deleted_at: when Tally learnt of its removal (customer.discount.deleted).
CREATE TABLE discounts (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    customer_id TEXT, subscription_id TEXT, subscription_item_id TEXT, coupon_id TEXT, promotion_code_id TEXT,
    start_at BIGINT, end_at BIGINT
);
CREATE INDEX discounts_subscription ON discounts (subscription_id);
CREATE INDEX discounts_customer ON discounts (customer_id);
CREATE INDEX discounts_coupon ON discounts (coupon_id);
CREATE INDEX discounts_promotion_code ON discounts (promotion_code_id);

CREATE TABLE promotion_codes (
    id TEXT PRIMARY KEY NOT NULL, raw TEXT NOT NULL, livemode BIGINT NOT NULL, created BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0, deleted_at BIGINT, version_at BIGINT NOT NULL, version_event TEXT NOT NULL,
    code TEXT, coupon_id TEXT, active BIGINT
);

-- What each snapshot of the MRR history says about price and discounts (metrics::mrr::Basis,
-- JSON), so a late discount, a discount's end or a change of policy recomputes the history.
-- Snapshots at a discount's start or end that no event marks carry event_id 'discount'.
ALTER TABLE subscription_mrr ADD COLUMN basis TEXT;

-- The next time a discount starts or ends for a subscription (the clock, not an event, moves its MRR).
CREATE TABLE mrr_boundaries (
    subscription_id TEXT PRIMARY KEY NOT NULL,
    due_at          BIGINT NOT NULL
);
CREATE INDEX mrr_boundaries_due ON mrr_boundaries (due_at);
