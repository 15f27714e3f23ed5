-- 0004: the live state of running rooms on a single node (a cluster keeps it in Redis instead), so that a
-- restart or a killed process finds every running room and seat again. One row per owned thing
-- ("room:<id>", "switchboard"); the snapshot is JSON written by core/roomstate.py (hashed resume
-- secrets only). Rows go when the room ends.
CREATE TABLE live_state (
    key         TEXT PRIMARY KEY,
    snapshot    TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
