-- The customers a payments-API key may act for: those it created, or that the operator's backend
-- named explicitly (POST /api/v1/customers {customer_id}). Email lookups and ephemeral keys are
-- limited to them, so a leaked key cannot reach every customer.
CREATE TABLE api_key_customers (
    key_id      TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    added_at    BIGINT NOT NULL,
    PRIMARY KEY (key_id, customer_id)
);
