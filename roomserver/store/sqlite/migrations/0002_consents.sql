-- 0002: a citizen's consent to the data notice, per appointment: when, for which token.
-- No content, no name: the jti ties it to the invite in issued_tokens.
CREATE TABLE consents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id     TEXT NOT NULL REFERENCES rooms(id),
    jti         TEXT NOT NULL REFERENCES issued_tokens(jti),
    notice      TEXT NOT NULL,
    given_at    INTEGER NOT NULL
);
CREATE INDEX consents_by_room ON consents (room_id);

-- Who an invite was for, as the issuer labelled it (shown to staff in the console).
ALTER TABLE issued_tokens ADD COLUMN label TEXT NOT NULL DEFAULT '';
