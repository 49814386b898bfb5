-- Changes: planned work on services, its approvals and risk acceptances, and the log
-- of everything that happened to it.

CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    change_type TEXT NOT NULL,
    declared_risk TEXT NOT NULL,
    state TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    -- A person id, or free text naming an outside party; '' when nobody asked.
    requested_by TEXT NOT NULL,
    implementer TEXT,
    -- JSON (environment, result, link, tested_at, stale); NULL: none recorded.
    test_evidence TEXT,
    rollback_plan TEXT NOT NULL,
    public INTEGER NOT NULL,
    launch INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT
);
CREATE INDEX changes_by_implementer ON changes (implementer, end_at);
CREATE INDEX changes_launches ON changes (start_at) WHERE launch = 1;
CREATE INDEX changes_by_start ON changes (start_at);

-- A change's services, with its window copied so that "work near these services at
-- that time" is one index range per service.
CREATE TABLE change_services (
    change_id BIGINT NOT NULL REFERENCES changes (id),
    service_id TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    PRIMARY KEY (change_id, service_id)
);
CREATE INDEX change_services_window ON change_services (service_id, end_at, start_at);

CREATE TABLE change_approvals (
    change_id BIGINT NOT NULL REFERENCES changes (id),
    person TEXT NOT NULL,
    -- JSON list of the required teams this approval counts for.
    teams TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (change_id, person)
);

CREATE TABLE change_risk_acceptances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id BIGINT NOT NULL REFERENCES changes (id),
    accepted_by TEXT NOT NULL,
    on_behalf_of TEXT NOT NULL,
    reason TEXT NOT NULL,
    declined_recommendation TEXT NOT NULL,
    -- The safeguards missing when it was recorded.
    missing TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX change_risk_acceptances_by_change ON change_risk_acceptances (change_id);

CREATE TABLE change_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id BIGINT NOT NULL REFERENCES changes (id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX change_log_by_change ON change_log (change_id, id);
