-- A refund request whose outcome Stripe did not confirm (a timeout, a 5xx, an unreadable answer)
-- is 'unknown': it keeps counting as being refunded and is settled in the background (the
-- charge's refunds are listed; the same request with the same idempotency key is sent again).
ALTER TABLE refund_requests ADD COLUMN next_check_at BIGINT;
ALTER TABLE refund_requests ADD COLUMN checks BIGINT NOT NULL DEFAULT 0;
CREATE INDEX refund_requests_unsettled ON refund_requests (status, next_check_at);
