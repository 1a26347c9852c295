-- Admin accounts, browser sessions, login throttling and the audit log.
CREATE TABLE admins (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,          -- stored lower-case
    password_hash TEXT NOT NULL,                 -- argon2id PHC string
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    disabled      BIGINT NOT NULL DEFAULT 0,     -- 0 or 1 (portable flag, see README)
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_login_at BIGINT
);

-- tower-sessions records: JSON data, expiry in Unix seconds.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    data       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Failed-login counters per account ('account:<email>') and per client address ('address:<ip>').
CREATE TABLE login_throttle (
    key           TEXT PRIMARY KEY NOT NULL,
    failures      BIGINT NOT NULL,
    first_failure BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    admin_id    BIGINT,
    admin_email TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    outcome     TEXT NOT NULL,
    client_addr TEXT,
    request_id  TEXT,
    detail      TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_action ON audit_log (action, at);
CREATE INDEX audit_log_admin ON audit_log (admin_email, at);
