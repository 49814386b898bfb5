-- Incidents a change caused: an outcome of the change, kept apart from its state (a
-- completed or rolled-back change can have caused one).
CREATE TABLE change_incidents (
    change_id BIGINT NOT NULL REFERENCES changes (id),
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    marked_by TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (change_id, incident_id)
);
CREATE INDEX change_incidents_by_incident ON change_incidents (incident_id);
CREATE INDEX changes_by_end ON changes (ended_at);
