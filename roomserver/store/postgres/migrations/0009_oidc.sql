-- 0009: staff who sign in with their organisation's OpenID Provider.
-- An account made at sign-in is linked to its provider (the [oidc.<name>] table) and the
-- provider's subject; disabled_by says who disabled it ('provider': its claims stopped mapping
-- to a role, lifted at a sign-in that maps again; NULL with disabled = 1: an administrator).
ALTER TABLE accounts ADD COLUMN provider TEXT;
ALTER TABLE accounts ADD COLUMN subject TEXT;
ALTER TABLE accounts ADD COLUMN disabled_by TEXT;
CREATE UNIQUE INDEX accounts_by_subject ON accounts (provider, subject);

-- A session begun at a provider keeps its ID token (the id_token_hint of the sign-out at the
-- provider) and the provider's session id (sid, named by a back-channel logout).
ALTER TABLE sessions ADD COLUMN provider TEXT;
ALTER TABLE sessions ADD COLUMN id_token TEXT;
ALTER TABLE sessions ADD COLUMN sid TEXT;
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX sessions_by_sid ON sessions (provider, sid);

-- Sign-ins in progress: sent to the provider, not yet back. Any node may take the callback;
-- each is usable once (used_at). Only a hash of the state is kept, the browser is bound by a
-- hash of a cookie, and the row is deleted once expired.
CREATE TABLE oidc_logins (
    state_hash     TEXT PRIMARY KEY,
    provider       TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    code_verifier  TEXT NOT NULL,
    browser_hash   TEXT NOT NULL,
    next_path      TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX oidc_logins_by_expiry ON oidc_logins (expires_at);
