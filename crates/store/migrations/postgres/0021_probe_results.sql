-- Every probe of every target, kept as history: what it saw (the finding as JSON:
-- expiry, identity, chain, problems, or why it failed) and its verdict in words.
CREATE TABLE probe_results (
    id BIGSERIAL PRIMARY KEY,
    renewable_id TEXT NOT NULL,
    target TEXT NOT NULL,
    at BIGINT NOT NULL,
    method TEXT NOT NULL,
    expires_at BIGINT,
    identity TEXT,
    verdict TEXT NOT NULL,
    finding TEXT NOT NULL
);
CREATE INDEX probe_results_by_target ON probe_results (renewable_id, target, at);
