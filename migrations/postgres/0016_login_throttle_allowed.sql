-- How many attempts of a key may have their password checked: LOGIN_MAX_FAILURES at first, then
-- one more after each lockout (NULL: the configured limit). Attempts are counted before their
-- check, so parallel guesses past this number are refused unchecked.
ALTER TABLE login_throttle ADD COLUMN allowed BIGINT;
