-- Alert intake: integration keys (hashed), alerts (one row per instance: a fingerprint
-- and one activity range; `latest` marks the current instance of each fingerprint),
-- alert events (what the incidents engine reads), silences and PagerDuty change events.
CREATE TABLE integration_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- NULL for a global key, which routes by `service_label` else `fallback_service`.
    service_id TEXT,
    service_label TEXT,
    fallback_service TEXT,
    key_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT
);
CREATE INDEX integration_keys_by_service ON integration_keys (service_id);

CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    service_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    latest BIGINT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    generator_url TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    -- NULL: fires until resolved (PagerDuty events, webhook alerts).
    ends_at BIGINT,
    timeout BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- What the store last recorded; the expiry sweep flips it when `ends_at` passes.
    firing BIGINT NOT NULL,
    source TEXT NOT NULL,
    key_id TEXT,
    dedup_key TEXT,
    acknowledged_at BIGINT,
    resolved_at BIGINT,
    received_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX alerts_latest ON alerts (fingerprint, service_id) WHERE latest = 1;
CREATE INDEX alerts_firing_until ON alerts (ends_at) WHERE firing = 1;
CREATE INDEX alerts_resolved_at ON alerts (resolved_at) WHERE firing = 0;
CREATE INDEX alerts_by_service ON alerts (service_id, id);

CREATE TABLE alert_events (
    seq BIGSERIAL PRIMARY KEY,
    alert_id BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    -- Set by the consumer (the incidents engine) once it has acted on the event.
    handled_at BIGINT
);
CREATE INDEX alert_events_by_alert ON alert_events (alert_id, seq);
CREATE INDEX alert_events_unhandled ON alert_events (seq) WHERE handled_at IS NULL;

CREATE TABLE silences (
    id TEXT PRIMARY KEY,
    -- NULL: mutes matching alerts of every service.
    service_id TEXT,
    matchers TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX silences_ends_at ON silences (ends_at);

CREATE TABLE change_events (
    id BIGSERIAL PRIMARY KEY,
    service_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    source TEXT,
    happened_at BIGINT NOT NULL,
    custom_details TEXT,
    links TEXT NOT NULL,
    key_id TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX change_events_by_service ON change_events (service_id, happened_at);
