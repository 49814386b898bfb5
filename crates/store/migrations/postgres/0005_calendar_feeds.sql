-- A person's iCalendar feed: one secret link per person (its SHA-256 kept, never the
-- link); making a new one replaces the old, deleting it revokes the feed.
CREATE TABLE calendar_feeds (
    person TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
