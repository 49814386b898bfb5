-- Overrides made at run time (swaps, cover). Records of their own, not catalog
-- entries: a catalog import never touches them. `seq` orders them (a later one wins).
CREATE TABLE schedule_overrides (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    schedule_id TEXT NOT NULL,
    person TEXT NOT NULL,
    replaces TEXT,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX schedule_overrides_by_schedule ON schedule_overrides (schedule_id, ends_at);
