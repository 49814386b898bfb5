-- iCalendar feeds of the change calendar: any number, each optionally for one team or
-- service, each behind its own secret link (its SHA-256 kept, never the link). Deleting
-- a feed revokes it.
CREATE TABLE change_feeds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    team TEXT,
    service TEXT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
