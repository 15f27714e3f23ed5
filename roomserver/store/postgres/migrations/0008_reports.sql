-- 0008 (PostgreSQL): the pilot evaluation's figures. One row per consultation that was held (went live): when it
-- started and ended, which counselling team (agency department of its creator) held it, and counts of
-- its connection quality reports. No title, no name, no identity. Goes with the audit log's retention.
CREATE TABLE consultation_figures (
    room_id        TEXT PRIMARY KEY,
    started_at     BIGINT NOT NULL,
    ended_at       BIGINT,
    team           TEXT,              -- departments.id of the creator's agency department, NULL if none
    reports        INTEGER NOT NULL DEFAULT 0,  -- connection quality reports received
    poor_reports   INTEGER NOT NULL DEFAULT 0,
    seats          INTEGER NOT NULL DEFAULT 0,  -- seats that reported
    relay_seats    INTEGER NOT NULL DEFAULT 0   -- of which went through a TURN relay
);
CREATE INDEX consultation_figures_by_start ON consultation_figures (started_at);

-- Back-fill: consultations still in the audit log (first seat in, the room's end, its creator's team).
INSERT INTO consultation_figures (room_id, started_at, ended_at, team)
SELECT a.room_id, MIN(a.at), (SELECT r.ended_at FROM rooms r WHERE r.id = a.room_id),
       (SELECT d.id FROM rooms r JOIN accounts c ON c.id = r.created_by
          JOIN departments d ON d.id = c.department_id AND d.kind = 'agency' WHERE r.id = a.room_id)
FROM audit_events a
WHERE a.action IN ('seat.join', 'seat.admit') AND a.room_id IS NOT NULL
GROUP BY a.room_id;

-- Monthly figures, kept (small cells already hidden) for longer than the records they came from.
CREATE TABLE report_months (
    month      TEXT PRIMARY KEY,      -- YYYY-MM in the reports' time zone
    figures    TEXT NOT NULL,         -- the month's report as JSON: aggregates only
    stored_at  BIGINT NOT NULL
);

-- What reports read by time.
CREATE INDEX expert_calls_by_time ON expert_calls (requested_at);
CREATE INDEX callback_requests_by_time ON callback_requests (created_at);
CREATE INDEX audit_events_by_action ON audit_events (action, at);
