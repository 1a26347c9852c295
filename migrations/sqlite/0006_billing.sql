-- Refunds admins ask for. The idempotency key comes from the refund form, so a double submit
-- finds its row and never reaches Stripe twice.
CREATE TABLE refund_requests (
    idempotency_key TEXT PRIMARY KEY NOT NULL,
    charge_id       TEXT NOT NULL,
    amount          BIGINT NOT NULL,             -- minor units
    currency        TEXT NOT NULL,
    reason          TEXT,
    note            TEXT,
    admin_id        BIGINT NOT NULL,
    admin_email     TEXT NOT NULL,
    status          TEXT NOT NULL,               -- sending | sent | refused
    refund_id       TEXT,
    request_id      TEXT,                        -- Stripe's Request-Id
    error           TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX refund_requests_charge ON refund_requests (charge_id);

-- Keys for the payments API (/api/v1). Only a SHA-256 of the key is kept; the prefix identifies it.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,                  -- the first characters, shown in Settings
    key_hash     TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
