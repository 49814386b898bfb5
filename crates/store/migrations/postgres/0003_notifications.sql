-- The notification outbox: every message Muster sends, queued durably before any
-- attempt, claimed with a lease by one deliverer at a time, retried with backoff.
CREATE TABLE notifications (
    id BIGSERIAL PRIMARY KEY,
    delivery_id TEXT NOT NULL UNIQUE,
    dedup_key TEXT NOT NULL UNIQUE,
    recipient TEXT NOT NULL,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    -- The signing secret of a webhook, sealed like every stored secret.
    secret TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    not_before BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    give_up_at BIGINT NOT NULL,
    claimed_by TEXT,
    claimed_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_recipient ON notifications (recipient, id);
CREATE TABLE notification_attempts (
    notification_id BIGINT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (notification_id, attempt)
);
