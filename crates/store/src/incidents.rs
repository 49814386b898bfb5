//! Incidents' persistence: incidents and the alerts and reports in them, the timeline,
//! escalations with every step fired recorded once, and acknowledgement links. The
//! decisions (where a signal goes, which step fires, what a page says) are the
//! domain's; this module runs them inside one transaction each, under the
//! `incidents` engine lock wherever an incident may open, so two servers never open
//! two incidents for one group (the database's unique index is the backstop).

mod progress;

pub use progress::GroupingListener;
pub(crate) use progress::GroupingProgress;

use crate::notify::NewNotification;
use crate::secrets::{SecretBox, random_token};
use crate::{Result, Store, StoreError, dispatch, per_dialect};
use jiff::{SignedDuration, Timestamp};
use muster_domain::audit::Actor;
use muster_domain::catalog::Catalog;
use muster_domain::incidents::reports::NewReport;
use muster_domain::incidents::{Severity, State, number};
use muster_domain::oncall::{Cursor, Page};
use muster_domain::signals::LabelSet;
use muster_domain::signals::silences::Silence;
use serde::Serialize;
use std::collections::HashMap;

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    pub id: i64,
    /// `INC-<id>`.
    pub number: String,
    pub service: String,
    pub group_key: String,
    pub state: State,
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    /// `alert`, `flood`, or the actor who declared it.
    pub opened_by: String,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
    pub mitigated_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub merged_into: Option<i64>,
    pub updated_at: Timestamp,
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    pub at: Timestamp,
    /// `opened`, `alert_joined`, `report_joined`, `paged`, `step_skipped`,
    /// `delivery_failed`, `acknowledged`, `mitigated`, `resolved`, `note`, `severity`,
    /// `merged`, `alerts_resolved`.
    pub kind: String,
    pub actor: String,
    pub text: String,
}

/// An alert in an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentAlert {
    pub id: i64,
    pub fingerprint: String,
    pub labels: LabelSet,
    pub firing: bool,
    pub starts_at: Timestamp,
    pub joined_at: Timestamp,
}

/// A customer or helpdesk report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub id: i64,
    /// `None` while it waits in triage.
    pub incident_id: Option<i64>,
    pub organisation: String,
    pub service: Option<String>,
    pub summary: String,
    pub details: String,
    pub reporter: String,
    pub channel: String,
    pub received_at: Timestamp,
    pub received_by: String,
    pub routed_by: Option<String>,
    pub routed_at: Option<Timestamp>,
}

/// One escalation step that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FiredStep {
    pub pass: u32,
    pub step: usize,
    pub due_at: Timestamp,
    pub fired_at: Timestamp,
    pub people: Vec<String>,
}

/// An incident with everything in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    pub alerts: Vec<IncidentAlert>,
    pub reports: Vec<Report>,
    pub timeline: Vec<TimelineEntry>,
    pub pages: Vec<FiredStep>,
    /// The next escalation step, while one is due.
    pub next_step: Option<NextStep>,
    /// Changes marked as its cause and changes that ship a fix for it, by change id.
    pub changes: Vec<LinkedChange>,
}

/// Where an incident lives: its service, and the incident it was merged into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentHome {
    pub service: String,
    pub merged_into: Option<i64>,
}

/// A change linked to an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkedChange {
    /// `CHG-…`.
    pub change: String,
    pub title: String,
    pub state: muster_domain::changes::State,
    /// `caused` (marked as the incident's cause) or `fixes` (ships a fix for it).
    pub relation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextStep {
    pub pass: u32,
    pub step: usize,
    pub due_at: Timestamp,
}

/// Which incidents to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    /// Any of these states; empty means every state.
    pub states: Vec<State>,
    pub service: Option<String>,
    /// Only incidents with a smaller id (the cursor of the previous page).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// An incident declared by a person.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub service: String,
    pub title: String,
    pub summary: String,
    pub severity: Severity,
    /// Who declared it (a person id, or the caller).
    pub by: String,
    /// The team whose escalation policy is paged (the service's owner).
    pub team: Option<String>,
}

/// What a person does to an incident.
#[derive(Debug, Clone)]
pub enum Act {
    Acknowledge,
    Mitigate,
    /// `refire_after`: how long its alerts still firing wait before opening a new one.
    Resolve {
        refire_after: SignedDuration,
    },
    Note(String),
    Severity(Severity),
    Merge {
        into: i64,
    },
}

/// Everything grouping needs besides the database: the catalog (owners, rules,
/// names), the silences in force, and the escalator that fires step one of the
/// incidents it opens (teams it does not know are left to the escalation engine).
pub struct Grouping<'a> {
    pub catalog: &'a Catalog,
    pub silences: &'a [Silence],
    pub escalator: &'a dyn Escalator,
}

/// What one grouping pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupingPass {
    /// Alert events and held alerts looked at.
    pub looked_at: usize,
    /// No unhandled alert event was left behind by the pass's limit.
    pub drained: bool,
}

/// Turns escalation steps into people and messages; the engine implements it over the
/// catalog and the on-call schedules.
pub trait Escalator: Sync {
    /// Fires the step at `cursor` of `team`'s policy: the page and the cursor after it.
    /// `None` when this escalator does not know the team (it is tried again later).
    fn fire(&self, team: &str, cursor: Cursor) -> Option<(Option<Page>, Option<Cursor>)>;

    /// The messages of `page` to `person`, carrying the acknowledgement token.
    fn messages(
        &self,
        incident: &Incident,
        reported: usize,
        page: &Page,
        person: &str,
        ack_token: &str,
    ) -> Vec<NewNotification>;
}

/// What an acknowledgement link leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckLink {
    pub incident: Incident,
    pub person: String,
}

/// Acknowledgement links are signed, not stored: `{incident}.{person}.{signature}`,
/// the signature under the secret key over both and the incident's opening time, so a
/// link cannot be forged, moved to another incident or person, or reach another
/// database's incident with the same number; and a page writes no row per person. A
/// link acknowledges only a triggered incident, so it acknowledges once, and stops
/// working when the incident resolves.
const ACK_LINK: &str = "incident acknowledgement link";

fn ack_signed_text(incident: &Incident, person: &str) -> String {
    format!(
        "{}.{person}.{}",
        incident.id,
        incident.opened_at.as_millisecond()
    )
}

pub(crate) fn ack_token(secrets: &SecretBox, incident: &Incident, person: &str) -> String {
    let signature = secrets.sign(ACK_LINK, &ack_signed_text(incident, person));
    format!("{}.{person}.{signature}", incident.id)
}

/// What a token claims: (incident, person, signature); checked by [`ack_signed`] once
/// the incident is read.
pub(crate) struct AckClaim {
    incident: i64,
    person: String,
    signature: String,
}

/// Reads a token as [`ack_token`] writes it, and only so: "042" or "+42" for 42 is not
/// a token Muster wrote.
fn read_ack_token(token: &str) -> Option<AckClaim> {
    let (claim, signature) = token.rsplit_once('.')?;
    let (incident, person) = claim.split_once('.')?;
    Some(AckClaim {
        incident: incident
            .parse()
            .ok()
            .filter(|id: &i64| id.to_string() == incident)?,
        person: person.to_string(),
        signature: signature.to_string(),
    })
}

/// Whether Muster signed `claim` for this very incident.
fn ack_signed(secrets: &SecretBox, incident: &Incident, claim: &AckClaim) -> bool {
    incident.id == claim.incident
        && secrets.verify(
            ACK_LINK,
            &ack_signed_text(incident, &claim.person),
            &claim.signature,
        )
}

/// What following an acknowledgement link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    Acknowledged(Incident),
    /// Nothing changed: the link was used already, or someone acknowledged first, or
    /// the incident is past acknowledging.
    Unchanged(AckLink),
    /// The incident is resolved: its links have expired.
    Expired(AckLink),
    Unknown,
}

/// Where a person sends a report from triage.
#[derive(Debug, Clone)]
pub enum Route {
    Incident(i64),
    Service(String),
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn from_ms(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("instant {ms}: {e}")))
}

fn state_of(text: &str) -> Result<State> {
    State::parse(text).ok_or_else(|| StoreError::Corrupt(format!("incident state {text:?}")))
}

fn severity_of(text: &str) -> Result<Severity> {
    Severity::parse(text).ok_or_else(|| StoreError::Corrupt(format!("severity {text:?}")))
}

#[derive(sqlx::FromRow, Clone)]
pub(crate) struct IncidentRow {
    id: i64,
    service_id: String,
    group_key: String,
    state: String,
    severity: String,
    title: String,
    summary: String,
    opened_by: String,
    opened_at: i64,
    acknowledged_at: Option<i64>,
    acknowledged_by: Option<String>,
    mitigated_at: Option<i64>,
    resolved_at: Option<i64>,
    resolved_by: Option<String>,
    merged_into: Option<i64>,
    updated_at: i64,
}

const INCIDENT_COLUMNS: &str = "id, service_id, group_key, state, severity, title, summary, opened_by, opened_at, acknowledged_at, acknowledged_by, mitigated_at, resolved_at, resolved_by, merged_into, updated_at";

impl IncidentRow {
    fn read(self) -> Result<Incident> {
        let opt = |v: Option<i64>| v.map(from_ms).transpose();
        Ok(Incident {
            id: self.id,
            number: number(self.id),
            service: self.service_id,
            group_key: self.group_key,
            state: state_of(&self.state)?,
            severity: severity_of(&self.severity)?,
            title: self.title,
            summary: self.summary,
            opened_by: self.opened_by,
            opened_at: from_ms(self.opened_at)?,
            acknowledged_at: opt(self.acknowledged_at)?,
            acknowledged_by: self.acknowledged_by,
            mitigated_at: opt(self.mitigated_at)?,
            resolved_at: opt(self.resolved_at)?,
            resolved_by: self.resolved_by,
            merged_into: self.merged_into,
            updated_at: from_ms(self.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReportRow {
    id: i64,
    incident_id: Option<i64>,
    organisation: String,
    service_id: Option<String>,
    summary: String,
    details: String,
    reporter: String,
    channel: String,
    received_at: i64,
    received_by: String,
    routed_by: Option<String>,
    routed_at: Option<i64>,
}

const REPORT_COLUMNS: &str = "id, incident_id, organisation, service_id, summary, details, reporter, channel, received_at, received_by, routed_by, routed_at";

impl ReportRow {
    fn read(self) -> Result<Report> {
        Ok(Report {
            id: self.id,
            incident_id: self.incident_id,
            organisation: self.organisation,
            service: self.service_id,
            summary: self.summary,
            details: self.details,
            reporter: self.reporter,
            channel: self.channel,
            received_at: from_ms(self.received_at)?,
            received_by: self.received_by,
            routed_by: self.routed_by,
            routed_at: self.routed_at.map(from_ms).transpose()?,
        })
    }
}

/// The raw parts of an incident's detail, as read in one snapshot.
pub(crate) struct DetailRows {
    incident: IncidentRow,
    alerts: Vec<(i64, String, String, i64, i64, i64)>,
    reports: Vec<ReportRow>,
    timeline: Vec<(i64, String, String, String)>,
    pages: Vec<(i64, i64, i64, i64, String)>,
    next_step: Option<(i64, i64, i64)>,
    changes: Vec<(i64, String, String, String)>,
}

impl DetailRows {
    fn read(self) -> Result<IncidentDetail> {
        let alerts = self
            .alerts
            .into_iter()
            .map(|(id, fingerprint, labels, firing, starts_at, joined_at)| {
                Ok(IncidentAlert {
                    id,
                    fingerprint,
                    labels: serde_json::from_str(&labels)
                        .map_err(|e| StoreError::Corrupt(format!("alert {id} labels: {e}")))?,
                    firing: firing == 1,
                    starts_at: from_ms(starts_at)?,
                    joined_at: from_ms(joined_at)?,
                })
            })
            .collect::<Result<_>>()?;
        let timeline = self
            .timeline
            .into_iter()
            .map(|(at, kind, actor, text)| {
                Ok(TimelineEntry {
                    at: from_ms(at)?,
                    kind,
                    actor,
                    text,
                })
            })
            .collect::<Result<_>>()?;
        let pages = self
            .pages
            .into_iter()
            .map(|(pass, step, due_at, fired_at, people)| {
                Ok(FiredStep {
                    pass: pass as u32,
                    step: step as usize,
                    due_at: from_ms(due_at)?,
                    fired_at: from_ms(fired_at)?,
                    people: serde_json::from_str(&people)
                        .map_err(|e| StoreError::Corrupt(format!("page people: {e}")))?,
                })
            })
            .collect::<Result<_>>()?;
        let next_step = self
            .next_step
            .map(|(pass, step, due)| {
                Ok::<_, StoreError>(NextStep {
                    pass: pass as u32,
                    step: step as usize,
                    due_at: from_ms(due)?,
                })
            })
            .transpose()?;
        Ok(IncidentDetail {
            incident: self.incident.read()?,
            alerts,
            reports: self
                .reports
                .into_iter()
                .map(ReportRow::read)
                .collect::<Result<_>>()?,
            timeline,
            pages,
            next_step,
            changes: self
                .changes
                .into_iter()
                .map(|(id, title, state, relation)| {
                    Ok(LinkedChange {
                        change: muster_domain::changes::number(id),
                        title,
                        state: muster_domain::changes::State::parse(&state).ok_or_else(|| {
                            StoreError::Corrupt(format!("change {id} state {state:?}"))
                        })?,
                        relation,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }
}

impl Store {
    pub async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<Incident>> {
        let rows: Vec<IncidentRow> = dispatch!(
            self,
            list(
                &query.states,
                query.service.as_deref(),
                query.before_id.unwrap_or(i64::MAX),
                query.limit as i64
            )
        )?;
        rows.into_iter().map(IncidentRow::read).collect()
    }

    /// An incident with its alerts, reports, timeline and pages, read in one snapshot.
    pub async fn incident(&self, id: i64) -> Result<Option<IncidentDetail>> {
        let rows: Option<DetailRows> = dispatch!(self, detail(id))?;
        rows.map(DetailRows::read).transpose()
    }

    /// The service of each of `ids` that exists, and the incident it was merged into.
    pub async fn incident_homes(&self, ids: &[i64]) -> Result<HashMap<i64, IncidentHome>> {
        let rows: Vec<(i64, String, Option<i64>)> = dispatch!(self, homes(ids))?;
        Ok(rows
            .into_iter()
            .map(|(id, service, merged_into)| {
                (
                    id,
                    IncidentHome {
                        service,
                        merged_into,
                    },
                )
            })
            .collect())
    }

    /// Opens an incident by hand; its team's escalation starts at once.
    pub async fn declare_incident(&self, actor: &Actor, new: &NewIncident) -> Result<Incident> {
        let now = ms(self.clock().now());
        let row: IncidentRow = dispatch!(self, declare(actor, new, now))?;
        row.read()
    }

    /// Applies `act` by `by`; refused (`Conflict`, with the reason) when the
    /// lifecycle does not allow it, and then nothing changes.
    pub async fn act_on_incident(
        &self,
        actor: &Actor,
        id: i64,
        by: &str,
        act: &Act,
    ) -> Result<Incident> {
        let now = ms(self.clock().now());
        let row: IncidentRow = dispatch!(self, act(actor, id, by, act, now))?;
        row.read()
    }

    /// The services of the next `limit` alert events waiting for grouping and of held
    /// alerts due for another look (empty: nothing to do): read on a reader, so an idle
    /// engine never takes the writer.
    pub async fn grouping_due(&self, limit: usize) -> Result<Vec<String>> {
        let now = ms(self.clock().now());
        dispatch!(self, grouping_due(now, limit as i64))
    }

    /// The grouping engine's handle on intake waiting for it (see [`GroupingProgress`]).
    pub fn grouping_listener(&self) -> GroupingListener {
        GroupingListener::new(self.clone())
    }

    pub(crate) fn progress(&self) -> &GroupingProgress {
        &self.inner.grouping_progress
    }

    /// Places the alerts of up to `limit` unhandled alert events, and of held alerts
    /// due for another look, into incidents.
    pub async fn group_alerts(
        &self,
        grouping: &Grouping<'_>,
        limit: usize,
    ) -> Result<GroupingPass> {
        let now = self.clock().now();
        dispatch!(
            self,
            group(grouping, &self.inner.secrets, now, limit as i64)
        )
    }

    /// Whether any escalation step is due, and the teams whose steps are (at most
    /// `limit` escalations looked at).
    pub async fn due_escalation_teams(&self, limit: usize) -> Result<Vec<String>> {
        let now = ms(self.clock().now());
        dispatch!(self, due_teams(now, limit as i64))
    }

    /// When the next escalation step falls due, if any.
    pub async fn next_escalation_at(&self) -> Result<Option<Timestamp>> {
        let at: Option<i64> = dispatch!(self, next_due())?;
        at.map(from_ms).transpose()
    }

    /// Fires due escalation steps (at most `limit` escalations): each step once,
    /// recorded with its messages in one transaction. Returns the steps fired.
    pub async fn fire_escalations(&self, escalator: &dyn Escalator, limit: usize) -> Result<usize> {
        let now = ms(self.clock().now());
        dispatch!(
            self,
            escalate(escalator, &self.inner.secrets, now, limit as i64)
        )
    }

    /// Where an acknowledgement link leads; `None` for a token Muster did not sign
    /// or an incident that is gone.
    pub async fn ack_link(&self, token: &str) -> Result<Option<AckLink>> {
        let Some(claim) = read_ack_token(token) else {
            return Ok(None);
        };
        dispatch!(self, ack_link(&self.inner.secrets, &claim))
    }

    /// Acknowledges through a link: only while the incident is triggered, so a link
    /// acknowledges once.
    pub async fn acknowledge_by_link(&self, token: &str) -> Result<LinkOutcome> {
        let Some(claim) = read_ack_token(token) else {
            return Ok(LinkOutcome::Unknown);
        };
        let now = ms(self.clock().now());
        dispatch!(self, acknowledge_by_link(&self.inner.secrets, &claim, now))
    }

    /// Records a report and places it: in its service's open incident; else, when the
    /// service's reports reach the flood rule, in a new incident with the reports that
    /// counted; without a service, in the open incident it resembles; else in triage.
    pub async fn add_report(
        &self,
        actor: &Actor,
        catalog: &Catalog,
        report: &NewReport,
    ) -> Result<Report> {
        let now = ms(self.clock().now());
        let row: ReportRow = dispatch!(self, add_report(actor, catalog, report, now))?;
        row.read()
    }

    /// Sends a waiting report to an incident, or names its service (and places it as
    /// if it had arrived so).
    pub async fn route_report(
        &self,
        actor: &Actor,
        catalog: &Catalog,
        id: i64,
        route: &Route,
    ) -> Result<Report> {
        let now = ms(self.clock().now());
        let row: ReportRow = dispatch!(self, route_report(actor, catalog, id, route, now))?;
        row.read()
    }

    /// Reports waiting in triage (`incident` none) or in one incident, newest first.
    pub async fn reports(&self, incident: Option<i64>, limit: usize) -> Result<Vec<Report>> {
        let rows: Vec<ReportRow> = dispatch!(self, reports(incident, limit as i64))?;
        rows.into_iter().map(ReportRow::read).collect()
    }
}

per_dialect!("incidents/sql.rs");

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(id: i64, opened_at: &str) -> Incident {
        let at: Timestamp = opened_at.parse().unwrap();
        Incident {
            id,
            number: number(id),
            service: "forms-printing".into(),
            group_key: String::new(),
            state: State::Triggered,
            severity: Severity::Critical,
            title: "Printing fails".into(),
            summary: String::new(),
            opened_by: "alert".into(),
            opened_at: at,
            acknowledged_at: None,
            acknowledged_by: None,
            mitigated_at: None,
            resolved_at: None,
            resolved_by: None,
            merged_into: None,
            updated_at: at,
        }
    }

    #[test]
    fn an_ack_link_holds_only_for_its_incident_person_and_opening() {
        let secrets = SecretBox::from_key([3; 32]);
        let inc = incident(42, "2026-11-24T10:00:00Z");
        let token = ack_token(&secrets, &inc, "dana");
        let claim = read_ack_token(&token).unwrap();
        assert_eq!((claim.incident, claim.person.as_str()), (42, "dana"));
        assert!(ack_signed(&secrets, &inc, &claim));

        let moved = read_ack_token(&token.replacen(".dana.", ".eli.", 1)).unwrap();
        assert!(!ack_signed(&secrets, &inc, &moved), "another person");
        let other = read_ack_token(&token.replacen("42.", "43.", 1)).unwrap();
        let inc43 = incident(43, "2026-11-24T10:00:00Z");
        assert!(!ack_signed(&secrets, &inc43, &other), "another incident");
        assert!(
            !ack_signed(&secrets, &inc43, &claim),
            "a claim for 42 read as 43"
        );
        // Incident 42 of a database made again with the same key file.
        let again = incident(42, "2026-11-25T09:00:00Z");
        assert!(!ack_signed(&secrets, &again, &claim), "another opening");
        assert!(
            !ack_signed(&SecretBox::from_key([4; 32]), &inc, &claim),
            "another key"
        );

        for malformed in [
            "",
            "42",
            "42.dana",
            "x.dana.sig",
            ".dana.sig",
            "042.dana.sig",
            "+42.dana.sig",
        ] {
            assert!(read_ack_token(malformed).is_none(), "{malformed:?}");
        }
    }
}
