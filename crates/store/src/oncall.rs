//! Run-time overrides of schedules: added, listed and ended, each with its audit entry
//! in the same transaction.

use crate::secrets::{credential_hash, random_token};
use crate::{Result, Store, StoreError, dispatch, per_dialect};
use jiff::Timestamp;
use muster_domain::audit::Actor;
use muster_domain::catalog::{Catalog, Kind};
use muster_domain::oncall::overrides::{Ending, ending};
use muster_domain::oncall::{Override, Schedule};
use serde::Serialize;

/// An override as stored: the override and who made it when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredOverride {
    pub id: String,
    pub schedule: String,
    pub person: String,
    pub replaces: Option<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    pub created_at: Timestamp,
    pub created_by: String,
}

impl StoredOverride {
    pub fn as_override(&self) -> Override {
        Override {
            id: self.id.clone(),
            person: self.person.clone(),
            replaces: self.replaces.clone(),
            from: self.from,
            to: self.to,
        }
    }

    fn audit_body(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
}

/// What ending an override did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Removed,
    CutShort(StoredOverride),
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    String,
);

const COLUMNS: &str =
    "id, schedule_id, person, replaces, starts_at, ends_at, created_at, created_by";

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_ms(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("instant {ms}: {e}")))
}

fn from_row(r: Row) -> Result<StoredOverride> {
    Ok(StoredOverride {
        id: r.0,
        schedule: r.1,
        person: r.2,
        replaces: r.3,
        from: from_ms(r.4)?,
        to: from_ms(r.5)?,
        created_at: from_ms(r.6)?,
        created_by: r.7,
    })
}

impl Store {
    /// Records an override (already checked by the domain) on `schedule`.
    pub async fn add_override(
        &self,
        actor: &Actor,
        schedule: &str,
        over: Override,
    ) -> Result<StoredOverride> {
        let stored = StoredOverride {
            id: format!("ovr-{}", random_token(16)),
            schedule: schedule.to_string(),
            person: over.person,
            replaces: over.replaces,
            from: over.from,
            to: over.to,
            created_at: self.clock().now(),
            created_by: actor.label.clone(),
        };
        let entry = actor.entry(
            "override.create",
            format!("override:{}", stored.id),
            None,
            stored.audit_body(),
        );
        dispatch!(self, insert(&stored, entry))?;
        Ok(stored)
    }

    /// The run-time overrides of `schedule` still in force at or after `since`, in the
    /// order they apply (a later one wins).
    /// Schedule `id` as it stands: the catalog's definition with its recorded
    /// revisions (so the past is answered as it was), and its run-time overrides in
    /// force at or after `since` applied after the catalog's (a later override wins).
    /// `None` when the catalog has no such schedule.
    pub async fn schedule_in_force(
        &self,
        catalog: &Catalog,
        id: &str,
        since: Timestamp,
    ) -> Result<Option<Schedule>> {
        let Some(stored) = catalog.entity(Kind::Schedule, id) else {
            return Ok(None);
        };
        // Stored schedules were validated with the same model; failing here is corruption.
        let corrupt =
            |e: muster_domain::FieldErrors| StoreError::Corrupt(format!("schedule {id:?}: {e}"));
        let revisions = self.schedule_revisions(id).await?;
        let mut schedule = Schedule::from_json(&stored)
            .and_then(|s| s.with_revisions(&revisions))
            .map_err(corrupt)?;
        let run_time = self.overrides(id, since).await?;
        schedule
            .overrides
            .extend(run_time.iter().map(|o| o.as_override()));
        Ok(Some(schedule))
    }

    pub async fn overrides(&self, schedule: &str, since: Timestamp) -> Result<Vec<StoredOverride>> {
        let rows: Vec<Row> = dispatch!(self, list(schedule, ms(since)))?;
        rows.into_iter().map(from_row).collect()
    }

    /// Ends an override: one not yet started goes, one under way ends now, one over
    /// already is refused (history is kept).
    pub async fn end_override(&self, actor: &Actor, schedule: &str, id: &str) -> Result<Ended> {
        let now = self.clock().now();
        dispatch!(self, end(actor, schedule, id, now))
    }
}

/// The prefix of calendar feed tokens, so a leaked one is recognisable.
pub const FEED_TOKEN_PREFIX: &str = "cal_";

impl Store {
    /// Makes a new calendar feed token for `person`, replacing (revoking) any earlier
    /// one. The token is returned once; only its hash is kept.
    pub async fn create_calendar_feed(&self, actor: &Actor, person: &str) -> Result<String> {
        let token = format!("{FEED_TOKEN_PREFIX}{}", random_token(40));
        let now = self.clock().now();
        let entry = actor.entry(
            "calendar_feed.create",
            format!("person:{person}"),
            None,
            None,
        );
        dispatch!(
            self,
            put_feed(
                person,
                &credential_hash(&token),
                ms(now),
                &actor.label,
                entry
            )
        )?;
        Ok(token)
    }

    /// Revokes `person`'s feed; false when there was none.
    pub async fn revoke_calendar_feed(&self, actor: &Actor, person: &str) -> Result<bool> {
        let now = self.clock().now();
        let entry = actor.entry(
            "calendar_feed.revoke",
            format!("person:{person}"),
            None,
            None,
        );
        dispatch!(self, delete_feed(person, ms(now), entry))
    }

    /// The person a feed token belongs to, if it is live.
    pub async fn calendar_feed_person(&self, token: &str) -> Result<Option<String>> {
        if !token.starts_with(FEED_TOKEN_PREFIX) {
            return Ok(None);
        }
        dispatch!(self, feed_person(&credential_hash(token)))
    }
}

per_dialect!("oncall/sql.rs");
