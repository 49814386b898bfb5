-- Changes that ship a fix for an incident (story 5: "a fix ships as a change linked to
-- the incident"). Kept apart from change_incidents, which records the incidents a
-- change caused: a change may fix one incident and cause another.
CREATE TABLE change_fixes (
    change_id BIGINT NOT NULL REFERENCES changes (id),
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    PRIMARY KEY (change_id, incident_id)
);
CREATE INDEX change_fixes_by_incident ON change_fixes (incident_id);
