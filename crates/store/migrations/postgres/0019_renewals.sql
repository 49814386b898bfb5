-- The renewal of each expiry: its pipeline state (the domain's, as JSON), its board
-- stage for queries, and when it was done; and the history of every move.
CREATE TABLE renewals (
    renewable_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    stage TEXT NOT NULL,
    done_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (renewable_id, expires_at)
);
CREATE TABLE renewal_history (
    id BIGSERIAL PRIMARY KEY,
    renewable_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    at BIGINT NOT NULL,
    stage TEXT NOT NULL,
    target TEXT,
    actor TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX renewal_history_by_renewal ON renewal_history (renewable_id, expires_at, id);
