//! Alert intake's persistence: integration keys (hashed), alerts with one row per
//! instance and an event stream for the incidents engine, silences, and PagerDuty
//! change events. Each ingest is one transaction: a 2xx after it means committed.

use crate::secrets::{credential_hash, random_token};
use crate::{Result, Store, StoreError, dispatch, per_dialect};
use jiff::Timestamp;
use muster_domain::audit::Actor;
use muster_domain::signals::ingest::{self, AlertKey, Known, Prior, Write};
use muster_domain::signals::matchers::{Matcher, MatcherBody};
use muster_domain::signals::merge::Activity;
use muster_domain::signals::silences::Silence;
use muster_domain::signals::{Alert, EventKind, KeyScope, LabelSet, Source};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An integration key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntegrationKey {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub scope: KeyScope,
    /// The key's last four characters, to tell keys apart.
    pub hint: String,
    pub created_at: Timestamp,
    pub created_by: String,
    pub revoked_at: Option<Timestamp>,
}

/// Where received alerts came from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub source: Source,
    pub key_id: Option<String>,
}

/// An alert as stored: one instance of a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredAlert {
    pub id: i64,
    pub service: String,
    pub fingerprint: String,
    #[serde(flatten)]
    pub alert: Alert,
    pub firing: bool,
    pub source: String,
    pub key_id: Option<String>,
    pub dedup_key: Option<String>,
    pub acknowledged_at: Option<Timestamp>,
    /// When the request that last wrote it reached intake.
    pub received_at: Timestamp,
}

/// One entry of an alert's history, and of the stream the incidents engine reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertEvent {
    pub seq: i64,
    pub alert_id: i64,
    pub kind: EventKind,
    pub at: Timestamp,
    pub source: String,
}

/// Which alerts a query wants.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    /// Only this service's.
    pub service: Option<String>,
    /// Also instances that stopped firing (and earlier instances), newest first.
    pub include_resolved: bool,
    pub limit: Option<usize>,
}

/// How long a verified key is trusted without asking the database again; revoking on
/// this instance forgets it at once.
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct KeyCache(Mutex<HashMap<String, (IntegrationKey, Instant)>>);

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_ms(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("instant {ms}: {e}")))
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("labels and matchers serialise")
}

pub(crate) fn labels(text: &str) -> Result<LabelSet> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("labels {text:?}: {e}")))
}

type KeyRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    String,
    Option<i64>,
);
const KEY_COLUMNS: &str = "id, name, service_id, service_label, fallback_service, hint, created_at, created_by, revoked_at";

fn key_from_row(r: KeyRow) -> Result<IntegrationKey> {
    let scope = match (r.2, r.3, r.4) {
        (Some(service), _, _) => KeyScope::Service { service },
        (None, Some(label), Some(fallback)) => KeyScope::Global { label, fallback },
        _ => {
            return Err(StoreError::Corrupt(format!(
                "integration key {} has no scope",
                r.0
            )));
        }
    };
    Ok(IntegrationKey {
        id: r.0,
        name: r.1,
        scope,
        hint: r.5,
        created_at: from_ms(r.6)?,
        created_by: r.7,
        revoked_at: r.8.map(from_ms).transpose()?,
    })
}

type AlertRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    i64,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
);
const ALERT_COLUMNS: &str = "id, service_id, fingerprint, labels, annotations, generator_url, starts_at, ends_at, timeout, updated_at, firing, source, key_id, dedup_key, acknowledged_at, received_at";

/// The alert in a row's columns: labels, annotations, generator URL, starts, ends,
/// timeout, updated.
type AlertColumns = (String, String, String, i64, Option<i64>, i64, i64);

fn alert_of(c: AlertColumns) -> Result<Alert> {
    Ok(Alert {
        labels: labels(&c.0)?,
        annotations: labels(&c.1)?,
        generator_url: c.2,
        starts_at: from_ms(c.3)?,
        ends_at: c.4.map(from_ms).transpose()?,
        timeout: c.5 != 0,
        updated_at: from_ms(c.6)?,
    })
}

fn alert_from_row(r: AlertRow) -> Result<StoredAlert> {
    Ok(StoredAlert {
        id: r.0,
        service: r.1,
        fingerprint: r.2,
        alert: alert_of((r.3, r.4, r.5, r.6, r.7, r.8, r.9))?,
        firing: r.10 != 0,
        source: r.11,
        key_id: r.12,
        dedup_key: r.13,
        acknowledged_at: r.14.map(from_ms).transpose()?,
        received_at: from_ms(r.15)?,
    })
}

/// seq, alert id, kind, at, source.
type EventRow = (i64, i64, String, i64, String);
type SilenceRow = (
    String,
    Option<String>,
    String,
    i64,
    i64,
    String,
    String,
    i64,
);
const SILENCE_COLUMNS: &str =
    "id, service_id, matchers, starts_at, ends_at, created_by, comment, updated_at";

fn silence_from_row(r: SilenceRow) -> Result<Silence> {
    let bodies: Vec<MatcherBody> = serde_json::from_str(&r.2)
        .map_err(|e| StoreError::Corrupt(format!("silence {} matchers: {e}", r.0)))?;
    let matchers = bodies
        .iter()
        .map(Matcher::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("silence {} matchers: {e}", r.0)))?;
    Ok(Silence {
        id: r.0,
        service: r.1,
        matchers,
        starts_at: from_ms(r.3)?,
        ends_at: from_ms(r.4)?,
        created_by: r.5,
        comment: r.6,
        updated_at: from_ms(r.7)?,
    })
}

fn matchers_json(s: &Silence) -> String {
    json(&s.matchers.iter().map(MatcherBody::from).collect::<Vec<_>>())
}

/// A random version 4 UUID, the form of Alertmanager's silence ids.
pub fn uuid_v4() -> String {
    let mut b = crate::secrets::random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether a database error is a lost race another transaction won (a unique key it
/// inserted first, a serialisation failure or a deadlock): the work is retried.
fn lost_race(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(sqlx::Error::Database(e))
        if matches!(e.code().as_deref(), Some("23505" | "40001" | "40P01" | "2067" | "1555")))
}

/// What travels with each alert of a group: where it came from, and its content
/// digest.
pub(crate) struct Meta<'a> {
    source: &'static str,
    key_id: Option<&'a str>,
    dedup_key: Option<&'a str>,
    digest: u128,
    /// When its request reached intake (unix ms), before any wait for the writer.
    received_at: i64,
}

/// One caller's batch, waiting for the alert writer. `digests` are the alerts'
/// content digests, computed by the caller so the writer does less.
struct Job {
    origin: Origin,
    incoming: Vec<(AlertKey, Alert)>,
    digests: Vec<u128>,
    dedup_key: Option<String>,
    received_at: i64,
    reply: tokio::sync::oneshot::Sender<Result<Stored>>,
}

/// What writing a job did.
struct Stored {
    alerts: usize,
    /// Whether its transaction recorded alert events (grouping has work).
    events: bool,
}

/// Most alerts the latest-instance index remembers (about 500 bytes each); past that
/// it starts again empty.
const INDEX_ENTRIES: usize = 250_000;

/// The latest instance of each alert this process wrote or read, with the row's
/// revision, so a re-post with the same content (most of them) is planned without
/// reading its row. The database stays the truth: every write names the revision it
/// was planned against, and a group that finds a row changed (by another instance,
/// the expiry sweep, a PagerDuty action) forgets its alerts and reads them afresh.
#[derive(Default)]
pub(crate) struct LatestIndex(Mutex<HashMap<AlertKey, (Known, i64)>>);

impl LatestIndex {
    /// What is remembered of each key (`None`: read it).
    fn recall<'k>(&self, keys: impl Iterator<Item = &'k AlertKey>) -> Vec<Option<(Known, i64)>> {
        let index = self.0.lock().unwrap();
        keys.map(|key| index.get(key).copied()).collect()
    }

    /// Remembers what a committed transaction wrote.
    fn learn(&self, written: Vec<(AlertKey, (Known, i64))>) {
        let mut index = self.0.lock().unwrap();
        if index.len() + written.len() > INDEX_ENTRIES {
            *index = HashMap::new(); // `clear` would keep the memory
        }
        index.extend(written);
    }

    /// Forgets alerts, e.g. those changed outside the alert writer.
    fn forget<'k>(&self, keys: impl Iterator<Item = &'k AlertKey>) {
        let mut index = self.0.lock().unwrap();
        for key in keys {
            index.remove(key);
        }
    }
}

/// Batches queued for the writer before callers wait for room.
const QUEUE_JOBS: usize = 1024;
/// Most alerts one transaction writes.
const GROUP_ALERTS: usize = 8192;

#[derive(Default)]
pub(crate) struct IngestQueue(Mutex<Option<tokio::sync::mpsc::Sender<Job>>>);

/// The alert writer: group commit. Batches that arrive while a transaction commits are
/// written together in the next one, so one fsync acknowledges many requests; each
/// caller is answered only after the commit that holds its alerts.
async fn writer(store: std::sync::Weak<crate::Inner>, mut queue: tokio::sync::mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut count = first.incoming.len();
        let mut jobs = vec![first];
        while count < GROUP_ALERTS {
            match queue.try_recv() {
                Ok(job) => {
                    count += job.incoming.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let Some(inner) = store.upgrade() else { return };
        let store = Store { inner };
        let all: Vec<&Job> = jobs.iter().collect();
        let together = match jobs.len() {
            1 => None,
            _ => store.write_jobs(&all).await.ok(),
        };
        match together {
            Some(events) => {
                for job in jobs {
                    let alerts = job.incoming.len();
                    let _ = job.reply.send(Ok(Stored { alerts, events }));
                }
            }
            // Alone, or after a failed group: each job in its own transaction, so one
            // job's trouble never fails another's alerts.
            None => {
                for job in jobs {
                    let stored = store.write_jobs(&[&job]).await.map(|events| Stored {
                        alerts: job.incoming.len(),
                        events,
                    });
                    let _ = job.reply.send(stored);
                }
            }
        }
    }
}

impl Store {
    /// Makes an integration key; the key is returned once, only its hash is kept.
    pub async fn create_integration_key(
        &self,
        actor: &Actor,
        name: &str,
        scope: KeyScope,
    ) -> Result<(IntegrationKey, String)> {
        let secret = random_token(muster_domain::signals::pagerduty::KEY_LENGTH);
        let key = IntegrationKey {
            id: format!("ik-{}", random_token(12)),
            name: name.to_string(),
            scope,
            hint: secret[secret.len() - 4..].to_string(),
            created_at: self.clock().now(),
            created_by: actor.label.clone(),
            revoked_at: None,
        };
        let entry = actor.entry(
            "integration_key.create",
            format!("integration_key:{}", key.id),
            None,
            Some(json(&key)),
        );
        dispatch!(self, insert_key(&key, &credential_hash(&secret), entry))?;
        Ok((key, secret))
    }

    /// A service's keys (`Some`), or the global keys (`None`), revoked ones included.
    pub async fn integration_keys(&self, service: Option<&str>) -> Result<Vec<IntegrationKey>> {
        let rows: Vec<KeyRow> = dispatch!(self, list_keys(service))?;
        rows.into_iter().map(key_from_row).collect()
    }

    /// Revokes a key of `service` (or a global key); revoking twice is refused.
    pub async fn revoke_integration_key(
        &self,
        actor: &Actor,
        service: Option<&str>,
        id: &str,
    ) -> Result<IntegrationKey> {
        let now = self.clock().now();
        let row: KeyRow = dispatch!(self, revoke_key(actor, service, id, ms(now)))?;
        self.inner
            .integration_keys
            .0
            .lock()
            .unwrap()
            .retain(|_, (k, _)| k.id != id);
        key_from_row(row)
    }

    /// The live key a secret names, if any.
    pub async fn authenticate_integration_key(
        &self,
        secret: &str,
    ) -> Result<Option<IntegrationKey>> {
        let hash = credential_hash(secret);
        if let Some((key, at)) = self.inner.integration_keys.0.lock().unwrap().get(&hash)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(key.clone()));
        }
        let row: Option<KeyRow> = dispatch!(self, key_by_hash(&hash))?;
        let key = row.map(key_from_row).transpose()?;
        let mut cache = self.inner.integration_keys.0.lock().unwrap();
        match &key {
            Some(k) => _ = cache.insert(hash, (k.clone(), Instant::now())),
            None => _ = cache.remove(&hash),
        }
        Ok(key)
    }

    /// Stores a batch of received alerts in one transaction, by Alertmanager's merge
    /// rules, recording fired/updated/resolved events. When it recorded events, it
    /// returns only once a grouping engine running here has placed them in incidents
    /// (see [`crate::incidents::GroupingProgress`]). Returns how many were written.
    pub async fn ingest_alerts(
        &self,
        origin: &Origin,
        incoming: Vec<(AlertKey, Alert)>,
        dedup_key: Option<&str>,
    ) -> Result<usize> {
        if incoming.is_empty() {
            return Ok(0);
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            received_at: ms(self.clock().now()),
            origin: origin.clone(),
            digests: incoming.iter().map(|(_, a)| a.content_digest()).collect(),
            incoming,
            dedup_key: dedup_key.map(str::to_owned),
            reply,
        };
        let queue = {
            let mut slot = self.inner.ingest_queue.0.lock().unwrap();
            match slot.as_ref().filter(|q| !q.is_closed()) {
                Some(queue) => queue.clone(),
                // First use, or the writer ended (a bug that panicked it): a new one.
                None => {
                    let (sender, receiver) = tokio::sync::mpsc::channel(QUEUE_JOBS);
                    tokio::spawn(writer(Arc::downgrade(&self.inner), receiver));
                    *slot = Some(sender.clone());
                    sender
                }
            }
        };
        queue
            .send(job)
            .await
            .map_err(|_| StoreError::Config("the alert writer has stopped".into()))?;
        let stored = answer
            .await
            .map_err(|_| StoreError::Config("the alert writer has stopped".into()))??;
        if stored.events {
            self.grouped_after_commit().await;
        }
        Ok(stored.alerts)
    }

    /// Waits for grouping of the alert events just committed.
    async fn grouped_after_commit(&self) {
        let progress = self.progress();
        progress.grouped(progress.committed()).await;
    }

    /// Writes the jobs in one transaction, retrying lost races and groups planned
    /// from rows that changed meanwhile. Returns whether it recorded alert events.
    async fn write_jobs(&self, jobs: &[&Job]) -> Result<bool> {
        let index = &self.inner.latest_alerts;
        let mut attempt = 0;
        loop {
            let now = self.clock().now();
            let items: Vec<(&AlertKey, (&Alert, Meta))> = jobs
                .iter()
                .flat_map(|job| {
                    job.incoming
                        .iter()
                        .zip(&job.digests)
                        .map(|((key, alert), digest)| {
                            let meta = Meta {
                                source: job.origin.source.as_str(),
                                key_id: job.origin.key_id.as_deref(),
                                dedup_key: job.dedup_key.as_deref(),
                                digest: *digest,
                                received_at: job.received_at,
                            };
                            (key, (alert, meta))
                        })
                })
                .collect();
            let changed = match dispatch!(self, ingest(ingest::rounds(items), index, now)) {
                Ok(Some((written, events))) => {
                    index.learn(written);
                    return Ok(events);
                }
                Ok(None) => StoreError::Busy("alerts kept changing while being written".into()),
                Err(e) if lost_race(&e) => e,
                Err(e) => return Err(e),
            };
            index.forget(
                jobs.iter()
                    .flat_map(|job| job.incoming.iter().map(|(key, _)| key)),
            );
            attempt += 1;
            if attempt > 5 {
                return Err(changed);
            }
        }
    }

    /// Acknowledges or resolves the firing alert with a PagerDuty dedup key. `false`
    /// when there is none: PagerDuty accepts and drops such events. `service` is the key's service; a global key acts on the alerts it raised.
    pub async fn pagerduty_action(
        &self,
        origin: &Origin,
        service: Option<&str>,
        fingerprint: &str,
        kind: EventKind,
    ) -> Result<bool> {
        let now = self.clock().now();
        let acted: Option<AlertKey> = dispatch!(
            self,
            pagerduty_action(origin, service, fingerprint, kind, ms(now))
        )?;
        self.inner.latest_alerts.forget(acted.iter());
        if acted.is_some() {
            self.grouped_after_commit().await;
        }
        Ok(acted.is_some())
    }

    /// Alerts, newest first when resolved ones are included, else every firing alert
    /// (latest instances whose end has not passed).
    pub async fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>> {
        let now = ms(self.clock().now());
        let rows: Vec<AlertRow> = dispatch!(self, alerts(query, now))?;
        rows.into_iter().map(alert_from_row).collect()
    }

    pub async fn alert(&self, id: i64) -> Result<Option<(StoredAlert, Vec<AlertEvent>)>> {
        let found: Option<(AlertRow, Vec<EventRow>)> = dispatch!(self, alert(id))?;
        let Some((row, events)) = found else {
            return Ok(None);
        };
        let events = events
            .into_iter()
            .map(event_from_row)
            .collect::<Result<_>>()?;
        Ok(Some((alert_from_row(row)?, events)))
    }

    /// Events not yet handled by the consumer, oldest first.
    pub async fn unhandled_alert_events(&self, limit: usize) -> Result<Vec<AlertEvent>> {
        let rows: Vec<EventRow> = dispatch!(self, unhandled_events(limit as i64))?;
        rows.into_iter().map(event_from_row).collect()
    }

    /// Marks events as handled by the consumer.
    pub async fn mark_alert_events_handled(&self, seqs: &[i64]) -> Result<()> {
        let now = ms(self.clock().now());
        dispatch!(self, mark_handled(seqs, now))
    }

    /// Records alerts whose end has passed as resolved (one `resolved` event each).
    pub async fn resolve_expired_alerts(&self, limit: usize) -> Result<usize> {
        let now = ms(self.clock().now());
        let resolved: Vec<AlertKey> = dispatch!(self, resolve_expired(now, limit as i64))?;
        self.inner.latest_alerts.forget(resolved.iter());
        if !resolved.is_empty() {
            // Wakes grouping; the expiry engine has no reason to wait for it.
            self.progress().committed();
        }
        Ok(resolved.len())
    }

    /// Deletes alerts resolved before `before` (and their events), and silences that
    /// expired before `silences_before`.
    pub async fn purge_signals(
        &self,
        before: Timestamp,
        silences_before: Timestamp,
    ) -> Result<u64> {
        // Ids are never reused: a remembered row purged meanwhile fails its revision
        // check and is read afresh.
        dispatch!(self, purge(ms(before), ms(silences_before)))
    }

    /// Silences visible to a service's key (`Some`: that service's and those of every
    /// service), or all.
    pub async fn silences(&self, service: Option<&str>) -> Result<Vec<Silence>> {
        let rows: Vec<SilenceRow> = dispatch!(self, silences(service))?;
        rows.into_iter().map(silence_from_row).collect()
    }

    pub async fn silence(&self, id: &str) -> Result<Option<Silence>> {
        let row: Option<SilenceRow> = dispatch!(self, silence(id))?;
        row.map(silence_from_row).transpose()
    }

    /// Writes a silence (new or updated in place), after writing `expired` (the silence
    /// it replaces, now expired), with their audit entries, in one transaction.
    pub async fn save_silence(
        &self,
        actor: &Actor,
        silence: &Silence,
        expired: Option<&Silence>,
    ) -> Result<()> {
        let mut entries = Vec::new();
        if let Some(old) = expired {
            entries.push(actor.entry(
                "silence.expire",
                format!("silence:{}", old.id),
                None,
                Some(silence_audit(old)),
            ));
        }
        entries.push(actor.entry(
            "silence.save",
            format!("silence:{}", silence.id),
            None,
            Some(silence_audit(silence)),
        ));
        let now = ms(self.clock().now());
        dispatch!(self, save_silences(&[expired, Some(silence)], entries, now))
    }
}

fn silence_audit(s: &Silence) -> String {
    serde_json::json!({
        "id": s.id, "service": s.service, "matchers": s.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "starts_at": s.starts_at, "ends_at": s.ends_at, "created_by": s.created_by, "comment": s.comment,
    })
    .to_string()
}

fn event_from_row(r: EventRow) -> Result<AlertEvent> {
    Ok(AlertEvent {
        seq: r.0,
        alert_id: r.1,
        kind: EventKind::parse(&r.2)
            .ok_or_else(|| StoreError::Corrupt(format!("alert event kind {:?}", r.2)))?,
        at: from_ms(r.3)?,
        source: r.4,
    })
}

per_dialect!("signals/sql.rs");
