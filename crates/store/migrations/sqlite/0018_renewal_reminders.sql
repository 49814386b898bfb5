-- Reminders sent, per renewable and expiry: each offset (days before expiry) goes out
-- once per expiry; the ones missed while Muster was down are recorded with the one
-- message that caught them up.
CREATE TABLE renewal_reminders (
    renewable_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    offset_days BIGINT NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (renewable_id, expires_at, offset_days)
);
