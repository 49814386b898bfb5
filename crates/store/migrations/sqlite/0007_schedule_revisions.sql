-- Definitions of schedules over time, so editing a schedule does not rewrite its past.
-- Written when a catalog change alters a schedule's timezone or layers; a schedule
-- without rows has only its catalog definition. `effective_from` NULL: in force from
-- the beginning. `body` is the schedule document as it was.
CREATE TABLE schedule_revisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id TEXT NOT NULL,
    effective_from INTEGER,
    body TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX schedule_revisions_by_schedule ON schedule_revisions (schedule_id, seq);
