//! Renewals' persistence: which reminders went out for which expiry, and the renewal
//! pipeline of each expiry with its history. The registry itself is the catalog's
//! `renewables` section; the rules are the domain's. When a renewal is done, the
//! renewable's expiry in the catalog moves in the same transaction.

use crate::notify::NewNotification;
use crate::{Result, Store, StoreError, dispatch, per_dialect};
use jiff::Timestamp;
use muster_domain::audit::Actor;
use muster_domain::catalog::Catalog;
use muster_domain::renewals::Renewable;
use muster_domain::renewals::artifacts::Pin;
use muster_domain::renewals::pipeline::{Move, Renewal};
use muster_domain::renewals::probes::Finding;
use serde::Serialize;
use std::collections::HashMap;

/// One move of a renewal, as its history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub stage: String,
    pub target: Option<String>,
    pub actor: String,
    pub text: String,
}

/// The renewal of one expiry, with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenewalRecord {
    pub renewal: Renewal,
    pub done_at: Option<Timestamp>,
    pub history: Vec<HistoryEntry>,
}

/// A renewal's key: the renewable and the expiry (Unix ms) it renews.
type Key<'a> = (&'a str, i64);
/// (renewable, expiry, offset, sent at) of one reminder sent.
type SentRow = (String, i64, i64, i64);
/// (renewable, expiry, state) of one renewal.
type StateRow = (String, i64, String);

fn from_ms(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("time {ms}: {e}")))
}

/// A page Muster raises by itself as an incident on the renewable's first service,
/// paging a team's escalation policy (a team without one is paged as all its members).
#[derive(Debug, Clone)]
pub struct RenewalPage {
    pub team: String,
    /// The targets it names (those still on the old item).
    pub targets: Vec<String>,
    pub title: String,
    pub summary: String,
}

/// A reminder to record and send: the offsets it counts as sent for this expiry, its
/// messages, the renewal it starts (unless one was started), and inside the last
/// offset the page to raise.
#[derive(Debug, Clone)]
pub struct Reminder {
    pub renewable: Renewable,
    pub covers: Vec<i64>,
    pub messages: Vec<NewNotification>,
    pub page: Option<RenewalPage>,
}

/// What the reminders of one renewable's current expiry depend on: the offsets sent
/// (and when), and its renewal while one is under way.
#[derive(Debug, Clone, Default)]
pub struct ReminderState {
    pub sent: HashMap<i64, Timestamp>,
    pub renewal: Option<Renewal>,
}

/// A stall raised, as a renewable's page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm {
    /// A stage, or `expiry` for the page inside the last reminder offset.
    pub stage: String,
    pub level: String,
    pub at: Timestamp,
    pub targets: Vec<String>,
    pub incident: Option<String>,
}

/// The service an incident Muster raises for `renewable` is on: its first service,
/// else the renewable itself.
fn page_service(renewable: &Renewable) -> &str {
    renewable.services.first().unwrap_or(&renewable.id)
}

impl Store {
    /// The reminder state of each renewable's current expiry (`expires_at`).
    pub async fn reminder_states(
        &self,
        renewables: &[&Renewable],
    ) -> Result<HashMap<String, ReminderState>> {
        let ids: Vec<&str> = renewables.iter().map(|r| r.id.as_str()).collect();
        let (sent, renewals): (Vec<SentRow>, Vec<StateRow>) =
            dispatch!(self, reminder_states(&ids))?;
        let current: HashMap<&str, i64> = renewables
            .iter()
            .map(|r| (r.id.as_str(), r.expires_at.as_millisecond()))
            .collect();
        let mut states: HashMap<String, ReminderState> = HashMap::new();
        for (id, expires_at, offset, at) in sent {
            if current.get(id.as_str()) == Some(&expires_at) {
                states
                    .entry(id)
                    .or_default()
                    .sent
                    .insert(offset, from_ms(at)?);
            }
        }
        for (id, expires_at, state) in renewals {
            if current.get(id.as_str()) == Some(&expires_at) {
                let renewal = serde_json::from_str(&state)
                    .map_err(|e| StoreError::Corrupt(format!("renewal of {id}: {e}")))?;
                states.entry(id).or_default().renewal = Some(renewal);
            }
        }
        Ok(states)
    }

    /// The smallest reminder offset sent per (renewable, expiry in Unix ms): what a
    /// reminder engine starting afresh has handled already.
    pub async fn smallest_offsets_sent(&self) -> Result<HashMap<(String, i64), i64>> {
        let rows: Vec<(String, i64, i64)> = dispatch!(self, smallest_offsets_sent())?;
        Ok(rows
            .into_iter()
            .map(|(renewable, expires_at, offset)| ((renewable, expires_at), offset))
            .collect())
    }

    /// Records reminders as sent, starts their renewals and queues their messages (and
    /// raises their pages) in one transaction; a reminder another server recorded
    /// first is not sent again. Answers how many were sent.
    pub async fn send_renewal_reminders(&self, reminders: &[Reminder]) -> Result<usize> {
        let now = self.clock().now();
        dispatch!(self, record(reminders, now))
    }

    /// Every renewal under way (not done), by renewable, for its current expiry.
    pub async fn renewals_under_way(
        &self,
        renewables: &[Renewable],
    ) -> Result<HashMap<String, Renewal>> {
        let rows: Vec<StateRow> = dispatch!(self, under_way())?;
        let current: HashMap<&str, i64> = renewables
            .iter()
            .map(|r| (r.id.as_str(), r.expires_at.as_millisecond()))
            .collect();
        rows.into_iter()
            .filter(|(id, expires_at, _)| current.get(id.as_str()) == Some(expires_at))
            .map(|(id, _, state)| {
                let renewal = serde_json::from_str(&state)
                    .map_err(|e| StoreError::Corrupt(format!("renewal of {id}: {e}")))?;
                Ok((id, renewal))
            })
            .collect()
    }

    /// Looks at up to `limit` renewals whose `check_at` came: raises their stalls
    /// (the holding team told, later paged through an incident), settles the pages of
    /// stalls that cleared, and sets when to look again. `renewables` are the catalog's
    /// by id; answers how many renewals were looked at.
    pub async fn check_renewals(
        &self,
        catalog: &Catalog,
        renewables: &HashMap<&str, &Renewable>,
        limit: usize,
    ) -> Result<usize> {
        let now = self.clock().now();
        dispatch!(self, check(catalog, renewables, now, limit as i64))
    }

    /// The stalls raised for `renewable`'s current expiry.
    pub async fn renewal_alarms(&self, renewable: &Renewable) -> Result<Vec<Alarm>> {
        let rows: Vec<(String, String, i64, String, Option<i64>)> = dispatch!(
            self,
            alarms(&renewable.id, renewable.expires_at.as_millisecond())
        )?;
        rows.into_iter()
            .map(|(stage, level, at, targets, incident)| {
                Ok(Alarm {
                    stage,
                    level,
                    at: from_ms(at)?,
                    targets: serde_json::from_str(&targets).unwrap_or_default(),
                    incident: incident.map(muster_domain::incidents::number),
                })
            })
            .collect()
    }
}

/// What one probe found and what followed from it.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    #[serde(flatten)]
    pub finding: Finding,
    /// The pipeline steps it took (received, applied, verified, done), in words.
    pub steps: Vec<String>,
    /// A served key other than the one received.
    pub mismatch: Option<String>,
    /// The outage incident an expired item opened (or joined).
    pub incident: Option<String>,
}

impl Store {
    /// Records probe findings as history and acts on them, one transaction each: a
    /// later expiry verifies its target (and may finish the renewal), a key other than
    /// the one received tells the owner team once, an expired item opens an incident.
    pub async fn record_probes(
        &self,
        catalog: &Catalog,
        findings: &[(Renewable, Finding)],
    ) -> Result<Vec<ProbeReport>> {
        let now = self.clock().now();
        let mut reports = Vec::with_capacity(findings.len());
        for (renewable, finding) in findings {
            reports.push(dispatch!(
                self,
                record_probe(catalog, renewable, finding, now)
            )?);
        }
        Ok(reports)
    }

    /// The latest probe findings of `renewable`, newest first.
    pub async fn probe_history(&self, renewable: &str, limit: usize) -> Result<Vec<Finding>> {
        let rows: Vec<(String,)> = dispatch!(self, probe_history(renewable, limit as i64))?;
        rows.into_iter()
            .map(|(json,)| {
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("probe result of {renewable}: {e}")))
            })
            .collect()
    }

    /// When each (renewable, target) was last probed.
    pub async fn last_probes(&self) -> Result<HashMap<(String, String), Timestamp>> {
        let rows: Vec<(String, String, i64)> = dispatch!(self, last_probes())?;
        rows.into_iter()
            .map(|(renewable, target, at)| Ok(((renewable, target), from_ms(at)?)))
            .collect()
    }
}

/// An artifact version (a shipped build) and the keys found in it.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    /// `name@version`.
    pub id: String,
    pub name: String,
    pub version: String,
    pub owner: String,
    pub registered_at: Timestamp,
    /// Set once no client runs it: its pins no longer matter.
    pub retired_at: Option<Timestamp>,
    pub pins: Vec<ArtifactPin>,
}

/// A key an artifact pins, with the renewables whose probes saw it served.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactPin {
    #[serde(flatten)]
    pub pin: Pin,
    pub renewables: Vec<String>,
}

impl Store {
    /// Records `pins` as what `name` `version` pins (replacing an earlier scan of it).
    pub async fn register_artifact(
        &self,
        actor: &Actor,
        name: &str,
        version: &str,
        owner: &str,
        pins: &[Pin],
    ) -> Result<()> {
        let at = self.clock().now().as_millisecond();
        dispatch!(
            self,
            register_artifact(actor, name, version, owner, pins, at)
        )
    }

    /// Every artifact version (or the one with `id`), with its pins and the
    /// renewables that served each pinned key.
    pub async fn artifacts(&self, id: Option<&str>) -> Result<Vec<Artifact>> {
        let (rows, pin_rows) = dispatch!(self, artifacts(id))?;
        let keys: Vec<String> = pin_rows.iter().map(|p| p.4.clone()).collect();
        let mut serving: HashMap<String, Vec<String>> = HashMap::new();
        for (key, renewable) in dispatch!(self, serving(&keys))? {
            serving.entry(key).or_default().push(renewable);
        }
        let mut pins: HashMap<String, Vec<ArtifactPin>> = HashMap::new();
        for (artifact, path, offset, kind, spki, subject, not_after) in pin_rows {
            let mut renewables = serving.get(&spki).cloned().unwrap_or_default();
            renewables.sort();
            pins.entry(artifact).or_default().push(ArtifactPin {
                pin: Pin {
                    path,
                    offset,
                    kind,
                    spki_sha256: spki,
                    subject,
                    not_after: not_after.map(from_ms).transpose()?,
                },
                renewables,
            });
        }
        rows.into_iter()
            .map(|(id, name, version, owner, registered_at, retired_at)| {
                Ok(Artifact {
                    pins: pins.remove(&id).unwrap_or_default(),
                    id,
                    name,
                    version,
                    owner,
                    registered_at: from_ms(registered_at)?,
                    retired_at: retired_at.map(from_ms).transpose()?,
                })
            })
            .collect()
    }

    /// Retires an artifact version: no client runs it, so its pins stop mattering.
    pub async fn retire_artifact(&self, actor: &Actor, id: &str) -> Result<Artifact> {
        let at = self.clock().now().as_millisecond();
        dispatch!(self, retire_artifact(actor, id, at))?;
        self.artifacts(Some(id))
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("no artifact {id:?}")))
    }
}

impl Store {
    /// The renewal of `renewable`'s expiry `expires_at`, if any move was recorded.
    pub async fn renewal(
        &self,
        renewable: &str,
        expires_at: Timestamp,
    ) -> Result<Option<RenewalRecord>> {
        dispatch!(self, renewal(renewable, expires_at.as_millisecond()))
    }

    /// Moves the renewal of `renewable`'s current expiry (starting it when this is
    /// its first move): refused naming the field when the pipeline does not allow it,
    /// and then nothing changes. When the move makes it done, the renewable's expiry
    /// in the catalog moves to the new one in the same transaction.
    pub async fn move_renewal(
        &self,
        actor: &Actor,
        catalog: &Catalog,
        renewable: &Renewable,
        request: &Move,
    ) -> Result<RenewalRecord> {
        let now = self.clock().now();
        dispatch!(self, move_renewal(actor, catalog, renewable, request, now))?;
        self.renewal(&renewable.id, renewable.expires_at)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("renewal of {} vanished", renewable.id)))
    }
}

per_dialect!("renewals/sql.rs");
