-- When an owner last reset the admin's password (Unix milliseconds): sessions that began before
-- it end.
ALTER TABLE admins ADD COLUMN password_reset_ms BIGINT NOT NULL DEFAULT 0;
