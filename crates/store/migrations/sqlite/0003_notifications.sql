-- The notification outbox: every message Muster sends, queued durably before any
-- attempt, claimed with a lease by one deliverer at a time, retried with backoff.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    give_up_at INTEGER NOT NULL,
    claimed_by TEXT,
    claimed_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_recipient ON notifications (recipient, id);
CREATE TABLE notification_attempts (
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (notification_id, attempt)
);
