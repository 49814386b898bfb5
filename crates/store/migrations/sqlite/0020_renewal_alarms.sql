-- When the stall engine next looks at a renewal (a deadline, or a page falling due),
-- and each stall raised: the holding team notified, then paged through an incident,
-- once per stage per renewal. `expiry` is the page inside the last reminder offset.
ALTER TABLE renewals ADD COLUMN check_at BIGINT;
CREATE INDEX renewals_to_check ON renewals (check_at) WHERE done_at IS NULL;
CREATE TABLE renewal_alarms (
    renewable_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    stage TEXT NOT NULL,
    level TEXT NOT NULL,
    at BIGINT NOT NULL,
    targets TEXT NOT NULL,
    incident_id BIGINT,
    PRIMARY KEY (renewable_id, expires_at, stage, level)
);
