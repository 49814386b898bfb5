-- Each alert row's revision, bumped by every write to it: an instance that planned
-- from what it remembers of a row writes only if the row is still that revision, so
-- with several instances the database stays the truth.
ALTER TABLE alerts ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
