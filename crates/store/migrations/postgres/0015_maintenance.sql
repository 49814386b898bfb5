-- Maintenance: while a change that suppresses alerts is in progress, alerts on its
-- services are recorded against it instead of paging. Emergency changes are usually
-- fixes, whose alerts people want to see: they do not suppress by default.
ALTER TABLE changes ADD COLUMN suppress_alerts BIGINT NOT NULL DEFAULT 1;
UPDATE changes SET suppress_alerts = 0 WHERE change_type = 'emergency';

-- Alerts that fired on a change's services while it was in progress.
CREATE TABLE change_alerts (
    change_id BIGINT NOT NULL REFERENCES changes (id),
    alert_id BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    PRIMARY KEY (change_id, alert_id)
);
CREATE INDEX change_alerts_by_alert ON change_alerts (alert_id);
