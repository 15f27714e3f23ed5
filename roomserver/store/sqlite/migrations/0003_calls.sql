-- 0003: expert calls, their events, callback requests, and the interpreter pool's languages.
CREATE TABLE expert_calls (
    id            TEXT PRIMARY KEY,
    room_id       TEXT NOT NULL REFERENCES rooms(id),
    requested_by  TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('department', 'language')),
    target        TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('ringing', 'accepted', 'timed_out', 'cancelled', 'no_one')),
    requested_at  INTEGER NOT NULL,
    accepted_at   INTEGER,
    accepted_by   TEXT,
    ended_at      INTEGER
);
CREATE INDEX expert_calls_by_room ON expert_calls (room_id);

-- One row per thing that happened to a call: requested, rung, declined, accepted, timed_out,
-- cancelled, no_one; account is who was rung, declined or accepted.
CREATE TABLE call_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT NOT NULL REFERENCES expert_calls(id),
    event       TEXT NOT NULL,
    at          INTEGER NOT NULL,
    account_id  TEXT
);
CREATE INDEX call_events_by_call ON call_events (call_id);

-- "Please call back": left by a counsellor when nobody answered; shown on the department's desks.
CREATE TABLE callback_requests (
    id            TEXT PRIMARY KEY,
    room_id       TEXT NOT NULL REFERENCES rooms(id),
    call_id       TEXT REFERENCES expert_calls(id),
    kind          TEXT NOT NULL,
    target        TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    caller_name   TEXT NOT NULL DEFAULT '',  -- the counsellor's display name (staff, never a citizen)
    created_at    INTEGER NOT NULL,
    done_at       INTEGER,
    done_by       TEXT
);
CREATE INDEX callback_requests_open ON callback_requests (kind, target, done_at);

CREATE TABLE interpreter_languages (
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    language    TEXT NOT NULL,
    PRIMARY KEY (account_id, language)
);
