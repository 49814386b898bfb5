-- Change events belong to the changes domain: who did the work, whether an
-- in-progress change covered it, and the in-progress work near it when it did not.
ALTER TABLE change_events ADD COLUMN actor TEXT;
ALTER TABLE change_events ADD COLUMN covered_by BIGINT;
ALTER TABLE change_events ADD COLUMN unscheduled BIGINT NOT NULL DEFAULT 0;
-- JSON list of the in-progress changes nearby (number, service, path) when it came.
ALTER TABLE change_events ADD COLUMN nearby TEXT NOT NULL DEFAULT '[]';
CREATE INDEX change_events_by_time ON change_events (happened_at);
