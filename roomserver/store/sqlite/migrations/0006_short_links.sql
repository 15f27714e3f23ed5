-- 0006: short join links (/j/K7QM-3XWD-9FHT) for invites sent by SMS, read out or scanned.
-- Only a hash of the code is kept; the token is signed again from the ledger row and these
-- claims when the link is opened, so no usable token rests in the database.
CREATE TABLE short_links (
    code_hash   TEXT PRIMARY KEY,
    jti         TEXT NOT NULL UNIQUE REFERENCES issued_tokens(jti),
    room_id     TEXT NOT NULL REFERENCES rooms(id),
    name        TEXT NOT NULL,  -- the token's display name claim
    dept        TEXT,           -- the token's department claim (experts)
    created_at  INTEGER NOT NULL
);
