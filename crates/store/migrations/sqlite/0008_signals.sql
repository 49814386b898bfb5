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
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT
);
CREATE INDEX integration_keys_by_service ON integration_keys (service_id);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    latest INTEGER NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    generator_url TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    -- NULL: fires until resolved (PagerDuty events, webhook alerts).
    ends_at INTEGER,
    timeout INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- What the store last recorded; the expiry sweep flips it when `ends_at` passes.
    firing INTEGER NOT NULL,
    source TEXT NOT NULL,
    key_id TEXT,
    dedup_key TEXT,
    acknowledged_at INTEGER,
    resolved_at INTEGER,
    received_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX alerts_latest ON alerts (fingerprint, service_id) WHERE latest = 1;
CREATE INDEX alerts_firing_until ON alerts (ends_at) WHERE firing = 1;
CREATE INDEX alerts_resolved_at ON alerts (resolved_at) WHERE firing = 0;
CREATE INDEX alerts_by_service ON alerts (service_id, id);

CREATE TABLE alert_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,
    -- Set by the consumer (the incidents engine) once it has acted on the event.
    handled_at INTEGER
);
CREATE INDEX alert_events_by_alert ON alert_events (alert_id, seq);
CREATE INDEX alert_events_unhandled ON alert_events (seq) WHERE handled_at IS NULL;

CREATE TABLE silences (
    id TEXT PRIMARY KEY,
    -- NULL: mutes matching alerts of every service.
    service_id TEXT,
    matchers TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX silences_ends_at ON silences (ends_at);

CREATE TABLE change_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    source TEXT,
    happened_at INTEGER NOT NULL,
    custom_details TEXT,
    links TEXT NOT NULL,
    key_id TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX change_events_by_service ON change_events (service_id, happened_at);
