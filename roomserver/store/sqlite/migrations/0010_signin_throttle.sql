-- 0010: sign-in throttling without a lock-out. Failed sign-ins are counted per client address,
-- per account name, per (account name, address) and per trusted device, under a hash of that
-- key only: no address, no username in here. A row is forgotten an hour after its last failure.
CREATE TABLE signin_failures (
    key_hash    TEXT PRIMARY KEY,
    failures    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL
);
CREATE INDEX signin_failures_by_age ON signin_failures (last_at);
-- A browser that signed in to an account gets a device cookie; only a hash of it is kept. Its
-- failures count against itself alone, so strangers guessing elsewhere never slow the owner down.
CREATE TABLE signin_devices (
    token_hash  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
);
CREATE INDEX signin_devices_by_age ON signin_devices (last_used_at);
-- The lock-out is gone (roomserver/domain/signin.py): old lock columns stay but are no longer read.
