-- Messages over a throttle's limit go out bundled into one delivery: its delivery id.
ALTER TABLE notifications ADD COLUMN bundle_id TEXT;
