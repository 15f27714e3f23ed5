-- 0001: the first schema. Times are unix seconds (UTC).
CREATE TABLE departments (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('agency', 'county')),
    created_at  INTEGER NOT NULL
);

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('counsellor', 'expert', 'interpreter', 'operator', 'admin')),
    department_id  TEXT REFERENCES departments(id),
    password_hash  TEXT,
    disabled       INTEGER NOT NULL DEFAULT 0,
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until   INTEGER,
    created_at     INTEGER NOT NULL
);

CREATE TABLE rooms (
    id                TEXT PRIMARY KEY,
    title             TEXT NOT NULL,
    scheduled_start   INTEGER,
    scheduled_end     INTEGER,
    waiting_room      INTEGER NOT NULL,
    max_participants  INTEGER NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('open', 'live', 'ended')),
    created_by        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    ended_at          INTEGER,
    ended_reason      TEXT
);
CREATE INDEX rooms_by_state ON rooms (state, scheduled_start);

CREATE TABLE issued_tokens (
    jti          TEXT PRIMARY KEY,
    room_id      TEXT NOT NULL REFERENCES rooms(id),
    role         TEXT NOT NULL,
    identity     TEXT NOT NULL,
    not_before   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    single_use   INTEGER NOT NULL,
    issued_by    TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    used_at      INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX issued_tokens_by_room ON issued_tokens (room_id, identity);

CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    csrf        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- Audit events are append-only: who, when, what; never content.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    actor_role  TEXT,
    action      TEXT NOT NULL,
    room_id     TEXT,
    subject     TEXT,
    detail      TEXT
);
CREATE INDEX audit_events_by_time ON audit_events (at);
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
