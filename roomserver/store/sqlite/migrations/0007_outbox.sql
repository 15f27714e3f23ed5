-- 0007: the durable outbox. Every outbound message (a webhook event, an e-mail) is a row written in
-- the same transaction as the change that causes it (webhook events: when they are published); the
-- worker on each node claims due rows with a lease (claimed_by, lease_until) and records the outcome.
-- Rows of one lane (one webhook endpoint, one e-mailed invite) go out strictly in order.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,            -- 'webhook' or 'email'
    lane        TEXT NOT NULL,            -- 'webhook:<hash of the URL>' or 'invite:<jti>'
    payload     TEXT NOT NULL,            -- webhook: the signed JSON body; e-mail: {"jti", "type"} only
    state       TEXT NOT NULL DEFAULT 'pending',  -- pending, sent, failed, cancelled
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,          -- unix milliseconds, like the other times of this table
    next_at     INTEGER NOT NULL,          -- not before (back-off, a reminder's time, a lease's end)
    claimed_by  TEXT,                     -- the node sending it now
    lease_until INTEGER,
    done_at     INTEGER,
    last_error  TEXT                      -- a status code or a short reason, never a message text
);
CREATE INDEX outbox_due ON outbox (state, next_at);
CREATE INDEX outbox_lane ON outbox (lane, state, id);

-- Who an e-mailed invite goes to: the address only until the appointment is over (then erased).
CREATE TABLE invite_emails (
    jti         TEXT PRIMARY KEY REFERENCES issued_tokens(jti),
    room_id     TEXT NOT NULL REFERENCES rooms(id),
    address     TEXT,                     -- NULL once erased
    name        TEXT NOT NULL,            -- the invite's display name (the link is signed again from it)
    language    TEXT NOT NULL,
    sequence    INTEGER NOT NULL DEFAULT 0,  -- iCalendar SEQUENCE: raised by every UPDATE and CANCEL
    created_at  INTEGER NOT NULL
);
CREATE INDEX invite_emails_room ON invite_emails (room_id);
