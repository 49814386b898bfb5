-- Overrides made at run time (swaps, cover). Records of their own, not catalog
-- entries: a catalog import never touches them. `seq` orders them (a later one wins).
CREATE TABLE schedule_overrides (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    schedule_id TEXT NOT NULL,
    person TEXT NOT NULL,
    replaces TEXT,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX schedule_overrides_by_schedule ON schedule_overrides (schedule_id, ends_at);
