-- Incidents: alerts and reports folded into one incident per problem, the timeline of
-- everything that happens to it, and the escalation that pages until acknowledged.

-- One row per engine consumer that must run on one server at a time; its row is
-- locked for the length of a transaction (SQLite's writer is exclusive already).
CREATE TABLE engine_locks (name TEXT PRIMARY KEY);
INSERT INTO engine_locks (name) VALUES ('incidents');

CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id TEXT NOT NULL,
    -- The group of the service's signals it holds; declared incidents have their own.
    group_key TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    -- `alert`, `flood`, or the actor who declared it.
    opened_by TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    mitigated_at INTEGER,
    resolved_at INTEGER,
    resolved_by TEXT,
    merged_into INTEGER,
    updated_at INTEGER NOT NULL
);
-- At most one open incident per group of a service, whoever opens it.
CREATE UNIQUE INDEX incidents_open_group ON incidents (service_id, group_key) WHERE state <> 'resolved';
CREATE INDEX incidents_by_state ON incidents (state, id);

CREATE TABLE incident_alerts (
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (incident_id, alert_id)
);
CREATE INDEX incident_alerts_by_alert ON incident_alerts (alert_id);

-- Firing alerts joined to no incident for now: `silenced` until their silences end,
-- `refire` for `refire_after` once their incident was resolved by hand.
CREATE TABLE held_alerts (
    alert_id INTEGER PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    recheck_at INTEGER NOT NULL
);
CREATE INDEX held_alerts_due ON held_alerts (recheck_at);

CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL: waiting in triage.
    incident_id INTEGER REFERENCES incidents (id),
    organisation TEXT NOT NULL,
    service_id TEXT,
    summary TEXT NOT NULL,
    details TEXT NOT NULL,
    reporter TEXT NOT NULL,
    channel TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    received_by TEXT NOT NULL,
    routed_by TEXT,
    routed_at INTEGER
);
CREATE INDEX reports_by_incident ON reports (incident_id, id);
CREATE INDEX reports_waiting ON reports (service_id, received_at) WHERE incident_id IS NULL;

CREATE TABLE incident_timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX incident_timeline_by_incident ON incident_timeline (incident_id, id);

-- The next step of each escalation still running (deleted on acknowledgement and
-- resolution, and when the last pass is done).
CREATE TABLE escalations (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents (id),
    team TEXT NOT NULL,
    pass INTEGER NOT NULL,
    step INTEGER NOT NULL,
    due_at INTEGER NOT NULL
);
CREATE INDEX escalations_due ON escalations (due_at);

-- Every step fired: the key makes firing one step twice impossible.
CREATE TABLE incident_pages (
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    pass INTEGER NOT NULL,
    step INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    fired_at INTEGER NOT NULL,
    people TEXT NOT NULL,
    PRIMARY KEY (incident_id, pass, step)
);

-- Acknowledgement links sent with pages, stored hashed.
CREATE TABLE ack_links (
    token_hash TEXT PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    person TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    used_at INTEGER
);
