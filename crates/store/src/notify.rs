//! The notification outbox: messages are queued in the database before any attempt,
//! claimed with a lease by one deliverer at a time (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL; SQLite has one writer), and completed with a logged attempt.

use crate::secrets::random_token;
use crate::{Result, Store, dispatch, per_dialect};
use muster_domain::catalog::Catalog;
use muster_domain::notify::{Channel, DEFAULT_RETRY_HORIZON, Outcome, backoff, contact_targets};
use serde::Serialize;
use std::collections::HashMap;

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

/// One message's attempt, as [`Store::complete`] records it.
pub(crate) struct Attempt {
    id: i64,
    attempt: i64,
    /// `delivered`, `failed` or `retry`.
    status: &'static str,
    /// When a retry is due.
    next: i64,
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

    /// Records one attempt's outcome on messages this worker holds (one message, or a
    /// bundle's), in one transaction. Returns how many were recorded: a message whose
    /// claim expired and went to another worker is left alone.
    /// `bundle_id`: the delivery id of the bundle that carried them, if one did.
    pub async fn complete(
        &self,
        worker: &str,
        messages: &[Notification],
        outcome: &Outcome,
        bundle_id: Option<&str>,
    ) -> Result<usize> {
        let now = self.now_ms();
        let detail = match outcome {
            Outcome::Delivered => None,
            Outcome::Reject(why) | Outcome::Retry(why) => Some(why.as_str()),
        };
        let attempts: Vec<Attempt> = messages
            .iter()
            .map(|message| {
                let attempt = message.attempts + 1;
                let (status, next) = match outcome {
                    Outcome::Delivered => ("delivered", now),
                    Outcome::Reject(_) => ("failed", now),
                    Outcome::Retry(_) => {
                        ("retry", now + backoff(attempt as u32).as_millis() as i64)
                    }
                };
                Attempt {
                    id: message.id,
                    attempt,
                    status,
                    next,
                }
            })
            .collect();
        dispatch!(self, complete(worker, &attempts, now, detail, bundle_id))
    }

    /// When messages were delivered to the contact methods (recipient, channel,
    /// destination) of `messages` since `since_ms`, oldest first, by contact method:
    /// what throttles count, read in one query for a whole round.
    pub async fn delivered_since(
        &self,
        messages: &[&Notification],
        since_ms: i64,
    ) -> Result<HashMap<(String, String, String), Vec<i64>>> {
        let mut contacts: Vec<(&str, &str, &str)> = messages
            .iter()
            .map(|m| {
                (
                    m.recipient.as_str(),
                    m.channel.as_str(),
                    m.destination.as_str(),
                )
            })
            .collect();
        contacts.sort_unstable();
        contacts.dedup();
        let rows: Vec<(String, String, String, i64)> =
            dispatch!(self, delivered_since(&contacts, since_ms))?;
        let mut sent: HashMap<(String, String, String), Vec<i64>> = HashMap::new();
        for (recipient, channel, destination, at) in rows {
            sent.entry((recipient, channel, destination))
                .or_default()
                .push(at);
        }
        Ok(sent)
    }

    /// Puts claimed messages back without counting an attempt, each until its time (a
    /// throttle is full), in one statement. Returns how many this worker still held.
    pub async fn defer(&self, worker: &str, waits: &[(&Notification, i64)]) -> Result<u64> {
        let waits: Vec<(i64, i64)> = waits.iter().map(|(m, until)| (m.id, *until)).collect();
        dispatch!(self, defer(worker, &waits))
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

/// The messages telling `people` something, on every contact method each has, at
/// once; `key` makes them unique (the outbox never queues one key twice).
pub fn notices(
    catalog: &Catalog,
    people: &[String],
    key: &str,
    subject: &str,
    body: &str,
    now: i64,
) -> Vec<NewNotification> {
    people
        .iter()
        .filter_map(|id| catalog.person(id))
        .flat_map(|person| {
            contact_targets(person)
                .into_iter()
                .enumerate()
                .map(move |(n, target)| NewNotification {
                    dedup_key: format!("{key}:{}:{n}", person.id),
                    recipient: person.id.clone(),
                    channel: target.channel,
                    destination: target.destination,
                    secret: target.secret,
                    subject: subject.to_string(),
                    body: body.to_string(),
                    not_before: now,
                    give_up_at: now + DEFAULT_RETRY_HORIZON.as_millis() as i64,
                })
        })
        .collect()
}
