//! The notification outbox: messages are queued in the database before any attempt,
//! claimed with a lease by one deliverer at a time (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL; SQLite has one writer), and completed with a logged attempt.

use crate::secrets::random_token;
use crate::{Result, Store, dispatch, per_dialect};
use muster_domain::notify::{Channel, Outcome, backoff};
use serde::Serialize;

/// A message to queue. `dedup_key` makes queuing idempotent: the same key is queued once.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub dedup_key: String,
    pub recipient: String,
    pub channel: Channel,
    /// Email address, or webhook URL (sealed for Slack and Teams, whose URL is the secret).
    pub destination: String,
    /// Sealed signing secret of a webhook.
    pub secret: Option<String>,
    pub subject: String,
    pub body: String,
    /// Unix ms before which it is not sent.
    pub not_before: i64,
    /// Unix ms after which it is no longer retried.
    pub give_up_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub id: i64,
    /// Stable across retries, so receivers can drop repeats.
    pub delivery_id: String,
    pub dedup_key: String,
    pub recipient: String,
    pub channel: String,
    #[serde(skip)]
    pub destination: String,
    #[serde(skip)]
    pub secret: Option<String>,
    pub subject: String,
    pub body: String,
    /// `queued`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    /// The delivery id of the bundle that carried it (over a throttle's limit).
    pub bundle_id: Option<String>,
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
);

const COLUMNS: &str = "id, delivery_id, dedup_key, recipient, channel, destination, secret, subject, body, status, attempts, next_attempt_at, last_error, created_at, delivered_at, bundle_id";

fn from_row(r: Row) -> Notification {
    Notification {
        id: r.0,
        delivery_id: r.1,
        dedup_key: r.2,
        recipient: r.3,
        channel: r.4,
        destination: r.5,
        secret: r.6,
        subject: r.7,
        body: r.8,
        status: r.9,
        attempts: r.10,
        next_attempt_at: r.11,
        last_error: r.12,
        created_at: r.13,
        delivered_at: r.14,
        bundle_id: r.15,
    }
}

impl Store {
    /// Queues messages durably; returns how many were new (others had their dedup key
    /// queued already).
    pub async fn enqueue(&self, messages: Vec<NewNotification>) -> Result<usize> {
        let now = self.now_ms();
        dispatch!(self, enqueue(now, messages))
    }

    /// Claims up to `limit` due messages for `worker` for `lease_ms`; a crashed worker's
    /// claims expire and the messages are claimed again (delivery is at least once).
    pub async fn claim_due(
        &self,
        worker: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        let now = self.now_ms();
        dispatch!(self, claim(worker, now, now + lease_ms, limit))
    }

    /// Records an attempt's outcome on a message this worker holds. Returns false when
    /// the claim had expired and another worker took the message.
    /// `bundle_id`: the delivery id of the bundle that carried it, if one did.
    pub async fn complete(
        &self,
        worker: &str,
        message: &Notification,
        outcome: &Outcome,
        bundle_id: Option<&str>,
    ) -> Result<bool> {
        let now = self.now_ms();
        let attempt = message.attempts + 1;
        let (status, next, detail) = match outcome {
            Outcome::Delivered => ("delivered", now, None),
            Outcome::Reject(why) => ("failed", now, Some(why.clone())),
            Outcome::Retry(why) => {
                let next = now + backoff(attempt as u32).as_millis() as i64;
                ("retry", next, Some(why.clone()))
            }
        };
        dispatch!(
            self,
            complete(
                worker, message.id, attempt, now, status, next, detail, bundle_id
            )
        )
    }

    /// When messages were delivered to one contact method (recipient, channel,
    /// destination) since `since_ms`, oldest first: what throttles count.
    pub async fn delivered_since(&self, message: &Notification, since_ms: i64) -> Result<Vec<i64>> {
        dispatch!(
            self,
            delivered_since(
                &message.recipient,
                &message.channel,
                &message.destination,
                since_ms
            )
        )
    }

    /// Puts a claimed message back to wait until `until_ms` without counting an
    /// attempt (a throttle is full). False when the claim had expired.
    pub async fn defer(&self, worker: &str, message: &Notification, until_ms: i64) -> Result<bool> {
        dispatch!(self, defer(worker, message.id, until_ms))
    }

    pub async fn notifications(
        &self,
        recipient: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        dispatch!(self, list(recipient, before_id.unwrap_or(i64::MAX), limit))
    }

    /// A random id naming this process when it claims work.
    pub fn worker_id() -> String {
        format!("worker-{}", random_token(12))
    }
}

per_dialect!("notify/sql.rs");
