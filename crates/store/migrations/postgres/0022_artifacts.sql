-- Shipped builds and the keys they pin (`muster scan --register`): each artifact
-- version, whether it is retired (no client runs it), and every certificate or SPKI
-- pin found in it, by key.
CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    owner TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE TABLE artifact_pins (
    artifact_id TEXT NOT NULL REFERENCES artifacts (id),
    path TEXT NOT NULL,
    byte_offset BIGINT NOT NULL,
    kind TEXT NOT NULL,
    spki_sha256 TEXT NOT NULL,
    subject TEXT,
    not_after BIGINT,
    PRIMARY KEY (artifact_id, path, byte_offset)
);
CREATE INDEX artifact_pins_by_key ON artifact_pins (spki_sha256);
