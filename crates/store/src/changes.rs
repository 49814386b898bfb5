//! Changes' persistence: change records and their services, approvals, risk
//! acceptances and the log of everything that happened to each. The rules (lifecycle,
//! policy, conflicts) are the domain's; this module runs them inside one transaction
//! per operation, with the other changes that could collide read by index (the same
//! services or their neighbourhood at the same time, the implementer's other work, the
//! team's launches), and queues the notices each step sends in that transaction.

use crate::notify::notices;
use crate::secrets::{credential_hash, random_token};
use crate::{Result, Store, StoreError, dispatch, per_dialect};
use jiff::Timestamp;
use muster_domain::audit::Actor;
use muster_domain::catalog::Catalog;
use muster_domain::catalog::graph::ServiceGraph;
use muster_domain::changes::conflicts::{Conflict, Planned, conflicts};
use muster_domain::changes::events::{Nearby, NewChangeEvent, covering, nearby};
use muster_domain::changes::outcomes::Ended;
use muster_domain::changes::policy::{self, Approval, Facts};
use muster_domain::changes::templates::ChangeTemplate;
use muster_domain::changes::{
    Action, ChangeType, Freeze, MAX_FIXES, Risk, Settings, State, TestEvidence, Window, number,
    transition,
};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// A change's record as people write it (create and edit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeInput {
    pub title: String,
    pub description: String,
    pub services: Vec<String>,
    pub window: Window,
    pub change_type: ChangeType,
    pub risk: Risk,
    /// A person id, or free text naming an outside party; empty when nobody asked.
    pub requested_by: String,
    pub implementer: Option<String>,
    pub test_evidence: Option<TestEvidence>,
    pub rollback_plan: String,
    pub public: bool,
    pub launch: bool,
    /// While in progress, alerts on its services are recorded against it instead of
    /// paging.
    pub suppress_alerts: bool,
    /// The template a standard change follows.
    pub template: Option<String>,
    /// The incidents (ids) the change ships a fix for; `None` keeps those linked
    /// already (an edit that does not mention them).
    pub fixes: Option<Vec<i64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub id: i64,
    pub number: String,
    pub title: String,
    pub description: String,
    pub services: Vec<String>,
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    pub declared_risk: Risk,
    pub state: State,
    pub requested_by: String,
    pub implementer: Option<String>,
    pub test_evidence: Option<TestEvidence>,
    pub rollback_plan: String,
    pub public: bool,
    pub launch: bool,
    pub suppress_alerts: bool,
    pub template: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
}

impl Change {
    pub fn window(&self) -> Window {
        Window {
            start: self.start,
            end: self.end,
        }
    }

    /// As the conflict check sees it.
    pub fn planned(&self) -> Planned {
        Planned {
            id: Some(self.id),
            title: self.title.clone(),
            state: self.state,
            change_type: self.change_type,
            services: self.services.clone(),
            window: self.window(),
            implementer: self.implementer.clone(),
            launch: self.launch,
        }
    }

    /// Whether the record says what `input` says, its links to incidents aside (test
    /// evidence compared as given, whatever its staleness).
    pub fn same_record(&self, input: &ChangeInput) -> bool {
        let sorted = |services: &[String]| services.iter().cloned().collect::<BTreeSet<String>>();
        let evidence = |e: &Option<TestEvidence>| {
            e.as_ref().map(|e| {
                (
                    e.environment.clone(),
                    e.result.clone(),
                    e.link.clone(),
                    e.tested_at,
                )
            })
        };
        self.title == input.title
            && self.description == input.description
            && sorted(&self.services) == sorted(&input.services)
            && self.window() == input.window
            && self.change_type == input.change_type
            && self.declared_risk == input.risk
            && self.requested_by == input.requested_by
            && self.implementer == input.implementer
            && evidence(&self.test_evidence) == evidence(&input.test_evidence)
            && self.rollback_plan == input.rollback_plan
            && self.public == input.public
            && self.launch == input.launch
            && self.suppress_alerts == input.suppress_alerts
            && self.template == input.template
    }

    /// As the policy sees it.
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            change_type: self.change_type,
            declared_risk: self.declared_risk,
            services: &self.services,
            implementer: self.implementer.as_deref(),
            test_evidence: self.test_evidence.as_ref(),
            rollback_plan: &self.rollback_plan,
            template: self.template.as_deref(),
            window: self.window(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskAcceptance {
    pub id: i64,
    pub accepted_by: String,
    pub on_behalf_of: String,
    pub reason: String,
    pub declined_recommendation: String,
    /// The safeguards the change lacked when the risk was accepted.
    pub missing: Vec<String>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    pub at: Timestamp,
    pub kind: String,
    pub actor: String,
    pub text: String,
}

/// An alert that fired on a change's service while the change was in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceAlert {
    pub alert: i64,
    pub service: String,
    /// Its `alertname`, else "alert".
    pub name: String,
    pub at: Timestamp,
    pub firing: bool,
}

/// How an incident names a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentLink {
    /// The change caused it: an outcome of the change, kept apart from its state and
    /// counted by the change failure rate.
    CausedBy,
    /// The change, in any state, ships a fix for it; refused for an incident merged
    /// into another and past the most incidents one change may fix.
    FixedBy,
}

/// A change with its approvals, risk acceptances and log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeDetail {
    #[serde(flatten)]
    pub change: Change,
    pub approvals: Vec<Approval>,
    pub risk_acceptances: Vec<RiskAcceptance>,
    pub log: Vec<LogEntry>,
    /// Incidents marked as caused by this change (`INC-…`).
    pub caused_incidents: Vec<String>,
    /// Incidents this change ships a fix for (`INC-…`).
    pub fixes: Vec<String>,
    /// Alerts recorded "during maintenance" while it was in progress.
    pub maintenance_alerts: Vec<MaintenanceAlert>,
}

/// What the change rules read besides the database.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    pub catalog: &'a Catalog,
    pub graph: &'a ServiceGraph,
    pub freezes: &'a [Freeze],
    pub settings: &'a Settings,
}

/// A transition asked for: `by` is the person acting (approver, implementer…).
#[derive(Debug, Clone)]
pub struct Transition {
    pub action: Action,
    pub by: String,
    pub reason: Option<String>,
    pub acknowledge_conflicts: bool,
}

#[derive(Debug, Clone)]
pub struct NewRiskAcceptance {
    pub accepted_by: String,
    pub on_behalf_of: String,
    pub reason: String,
    pub declined_recommendation: String,
}

/// Which changes to list: those whose window meets `[from, to)`, newest start first.
#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub states: Vec<State>,
    /// Only changes on any of these services (`None`: on any service).
    pub services: Option<Vec<String>>,
    pub limit: usize,
}

/// What recording a change event found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedEvent {
    pub id: i64,
    /// No in-progress change covers the event's service.
    pub unscheduled: bool,
    /// The in-progress change that does.
    pub covered_by: Option<String>,
    /// In-progress work nearby (unscheduled events only).
    pub nearby: Vec<Nearby>,
    /// Who was told at once.
    pub told: Vec<String>,
}

/// An iCalendar feed of the change calendar (its secret link is shown once, at
/// creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeFeed {
    pub id: i64,
    pub name: String,
    /// Only changes on this team's services.
    pub team: Option<String>,
    /// Only changes on this service.
    pub service: Option<String>,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// Prefix of change calendar feed tokens.
pub const CHANGE_FEED_PREFIX: &str = "chcal_";

/// id, service, summary, source, happened at, custom details, links, received at,
/// actor, covered by, unscheduled, nearby.
type EventRow = (
    i64,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<i64>,
    i64,
    String,
);

fn event_json(r: EventRow) -> Result<serde_json::Value> {
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap_or_default();
    Ok(serde_json::json!({
        "id": r.0,
        "service": r.1,
        "summary": r.2,
        "source": r.3,
        "timestamp": from_ms(r.4)?,
        "custom_details": r.5.as_deref().map(json),
        "links": json(&r.6),
        "received_at": from_ms(r.7)?,
        "actor": r.8,
        "covered_by": r.9.map(number),
        "unscheduled": r.10 != 0,
        "nearby": json(&r.11),
    }))
}

/// "Jared Cole (jared, jared@client.test)": a person and how to reach them.
fn contact(catalog: &Catalog, person: &str) -> String {
    match catalog.person(person) {
        Some(p) => match &p.email {
            Some(email) => format!("{} ({}, {email})", p.name, p.id),
            None => format!("{} ({})", p.name, p.id),
        },
        None => person.to_string(),
    }
}

/// id, name, team, service, created at, created by.
type FeedRow = (i64, String, Option<String>, Option<String>, i64, String);

fn feed_from_row(r: FeedRow) -> Result<ChangeFeed> {
    Ok(ChangeFeed {
        id: r.0,
        name: r.1,
        team: r.2,
        service: r.3,
        created_at: from_ms(r.4)?,
        created_by: r.5,
    })
}

#[derive(sqlx::FromRow, Clone)]
pub(crate) struct ChangeRow {
    id: i64,
    title: String,
    description: String,
    change_type: String,
    declared_risk: String,
    state: String,
    start_at: i64,
    end_at: i64,
    requested_by: String,
    implementer: Option<String>,
    test_evidence: Option<String>,
    rollback_plan: String,
    public: i64,
    launch: i64,
    suppress_alerts: i64,
    template: Option<String>,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    started_at: Option<i64>,
    ended_at: Option<i64>,
}

const CHANGE_COLUMNS: &str = "id, title, description, change_type, declared_risk, state, start_at, end_at, requested_by, implementer, test_evidence, rollback_plan, public, launch, suppress_alerts, template, created_by, created_at, updated_at, started_at, ended_at";

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_ms(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("time {ms}: {e}")))
}

fn word<T>(parse: fn(&str) -> Option<T>, what: &str, text: &str) -> Result<T> {
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("{what} {text:?}")))
}

impl ChangeRow {
    fn read(self, services: Vec<String>) -> Result<Change> {
        let evidence = self
            .test_evidence
            .as_deref()
            .map(serde_json::from_str::<TestEvidence>)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("change {} test evidence: {e}", self.id)))?;
        Ok(Change {
            id: self.id,
            number: number(self.id),
            title: self.title,
            description: self.description,
            services,
            start: from_ms(self.start_at)?,
            end: from_ms(self.end_at)?,
            change_type: word(ChangeType::parse, "change type", &self.change_type)?,
            declared_risk: word(Risk::parse, "risk", &self.declared_risk)?,
            state: word(State::parse, "change state", &self.state)?,
            requested_by: self.requested_by,
            implementer: self.implementer,
            test_evidence: evidence,
            rollback_plan: self.rollback_plan,
            public: self.public != 0,
            launch: self.launch != 0,
            suppress_alerts: self.suppress_alerts != 0,
            template: self.template,
            created_by: self.created_by,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
            started_at: self.started_at.map(from_ms).transpose()?,
            ended_at: self.ended_at.map(from_ms).transpose()?,
        })
    }
}

/// The people a change's steps are sent to: its implementer, the requester when a
/// person, and the members of every team whose approval it needs (owner teams, and
/// the owners of direct dependents when high risk).
fn parties(change: &Change, policy: &Policy, conflicts: &[Conflict]) -> Vec<String> {
    let facts = change.facts();
    let risk = policy::assess(&facts, policy.catalog, conflicts).risk;
    let mut people: BTreeSet<String> = BTreeSet::new();
    people.extend(change.implementer.clone());
    if policy.catalog.person(&change.requested_by).is_some() {
        people.insert(change.requested_by.clone());
    }
    for requirement in policy::requirements(&facts, risk, conflicts, policy.catalog, policy.graph) {
        for team in requirement.teams {
            if let Some(team) = policy.catalog.team(&team) {
                people.extend(team.members.iter().cloned());
            }
        }
    }
    people.into_iter().collect()
}

impl Store {
    /// Records a new change as a draft and answers what it collides with; approved work
    /// it now collides with learns of it.
    pub async fn create_change(
        &self,
        actor: &Actor,
        policy: &Policy<'_>,
        input: &ChangeInput,
    ) -> Result<(ChangeDetail, Vec<Conflict>)> {
        let now = ms(self.clock().now());
        let (id, found) = dispatch!(self, create(actor, policy, input, now))?;
        self.change_outcome(id, found).await
    }

    /// Rewrites a change that is not under way; after submission it goes back to
    /// `submitted` with its approvals cleared, and test evidence recorded before an
    /// edit of its services or description goes stale.
    pub async fn update_change(
        &self,
        actor: &Actor,
        policy: &Policy<'_>,
        id: i64,
        input: &ChangeInput,
        seen_fixes: &[i64],
    ) -> Result<(ChangeDetail, Vec<Conflict>)> {
        let now = ms(self.clock().now());
        let found = dispatch!(self, update(actor, policy, id, input, seen_fixes, now))?;
        self.change_outcome(id, found).await
    }

    /// Applies a transition, refused (`Conflict`, naming the rule) when the lifecycle
    /// or the policy does not allow it; then nothing changes.
    pub async fn act_on_change(
        &self,
        actor: &Actor,
        policy: &Policy<'_>,
        id: i64,
        transition: &Transition,
    ) -> Result<(ChangeDetail, Vec<Conflict>)> {
        let now = ms(self.clock().now());
        let found = dispatch!(self, act(actor, policy, id, transition, now))?;
        self.change_outcome(id, found).await
    }

    /// A new feed of the change calendar: answers it and its secret token.
    pub async fn create_change_feed(
        &self,
        actor: &Actor,
        name: &str,
        team: Option<&str>,
        service: Option<&str>,
    ) -> Result<(ChangeFeed, String)> {
        let token = format!("{CHANGE_FEED_PREFIX}{}", random_token(40));
        let now = ms(self.clock().now());
        let id = dispatch!(
            self,
            put_change_feed(actor, &credential_hash(&token), name, team, service, now)
        )?;
        let feed = ChangeFeed {
            id,
            name: name.to_string(),
            team: team.map(str::to_string),
            service: service.map(str::to_string),
            created_at: from_ms(now)?,
            created_by: actor.label.clone(),
        };
        Ok((feed, token))
    }

    pub async fn change_feeds(&self) -> Result<Vec<ChangeFeed>> {
        let rows: Vec<FeedRow> = dispatch!(self, change_feeds())?;
        rows.into_iter().map(feed_from_row).collect()
    }

    /// The feed a token opens, if it is live.
    pub async fn change_feed(&self, token: &str) -> Result<Option<ChangeFeed>> {
        if !token.starts_with(CHANGE_FEED_PREFIX) {
            return Ok(None);
        }
        let row: Option<FeedRow> = dispatch!(self, change_feed(&credential_hash(token)))?;
        row.map(feed_from_row).transpose()
    }

    /// Revokes a feed: its link stops working. False when there was none.
    pub async fn revoke_change_feed(&self, actor: &Actor, id: i64) -> Result<bool> {
        let now = ms(self.clock().now());
        dispatch!(self, delete_change_feed(actor, id, now))
    }

    /// Records a risk acceptance (who accepted, on whose behalf, why, what was
    /// declined) and sends it to the owner teams.
    pub async fn accept_change_risk(
        &self,
        actor: &Actor,
        policy: &Policy<'_>,
        id: i64,
        acceptance: &NewRiskAcceptance,
    ) -> Result<(ChangeDetail, Vec<Conflict>)> {
        let now = ms(self.clock().now());
        let found = dispatch!(self, accept_risk(actor, policy, id, acceptance, now))?;
        self.change_outcome(id, found).await
    }

    /// The change as it stands after a write, with the conflicts the write found
    /// (checked inside its transaction, not again).
    async fn change_outcome(
        &self,
        id: i64,
        found: Vec<Conflict>,
    ) -> Result<(ChangeDetail, Vec<Conflict>)> {
        let detail = self
            .change(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no change {}", number(id))))?;
        Ok((detail, found))
    }

    pub async fn change(&self, id: i64) -> Result<Option<ChangeDetail>> {
        dispatch!(self, detail(id))
    }

    pub async fn changes(&self, query: &ChangeQuery) -> Result<Vec<Change>> {
        dispatch!(self, list(query))
    }

    /// Records a change event (from the API or PagerDuty): covered by an in-progress
    /// change on its service, or unscheduled — and then the implementers of in-progress
    /// work nearby and the on-call of the owner teams on both sides (`oncall`, by team)
    /// are told at once, each with the other's contact.
    pub async fn record_change_event(
        &self,
        key_id: Option<&str>,
        policy: &Policy<'_>,
        event: &NewChangeEvent,
        oncall: &HashMap<String, Vec<String>>,
    ) -> Result<RecordedEvent> {
        let now = ms(self.clock().now());
        dispatch!(self, record_event(key_id, policy, event, oncall, now))
    }

    /// The change events of `service`, newest first.
    pub async fn change_events(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>> {
        let rows: Vec<EventRow> = dispatch!(self, events(service, limit as i64))?;
        rows.into_iter().map(event_json).collect()
    }

    /// Links `incident` to `change` as `link` says, on both their records and the
    /// incident's timeline; refused when linked so already.
    pub async fn link_incident(
        &self,
        actor: &Actor,
        incident: i64,
        change: i64,
        by: &str,
        link: IncidentLink,
    ) -> Result<()> {
        let now = ms(self.clock().now());
        match link {
            IncidentLink::CausedBy => {
                dispatch!(self, mark_caused(actor, incident, change, by, now))
            }
            IncidentLink::FixedBy => dispatch!(self, link_fix(actor, incident, change, by, now)),
        }
    }

    /// The changes that ended (completed, rolled back or failed) within `[from, to)`,
    /// as the change failure rate counts them.
    pub async fn ended_changes(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Ended>> {
        let rows: Vec<(i64, String, i64)> = dispatch!(self, ended_between(ms(from), ms(to)))?;
        let services: HashMap<i64, Vec<String>> = dispatch!(
            self,
            services_by_change(&rows.iter().map(|r| r.0).collect::<Vec<_>>())
        )?;
        rows.into_iter()
            .map(|(id, state, caused)| {
                Ok(Ended {
                    state: word(State::parse, "change state", &state)?,
                    services: services.get(&id).cloned().unwrap_or_default(),
                    caused_incident: caused > 0,
                })
            })
            .collect()
    }

    /// Changes (not cancelled) on any of `services` whose window meets `[from, to)`.
    pub async fn changes_on(
        &self,
        services: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Change>> {
        dispatch!(self, on_services(services, ms(from), ms(to)))
    }

    /// Change events on any of `services` within `[from, to)`, newest first (at most
    /// `limit`).
    pub async fn change_events_on(
        &self,
        services: &[String],
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>> {
        let rows: Vec<EventRow> =
            dispatch!(self, events_on(services, ms(from), ms(to), limit as i64))?;
        rows.into_iter().map(event_json).collect()
    }

    /// What `change` (stored or not) collides with now: a dry run.
    pub async fn change_conflicts(
        &self,
        policy: &Policy<'_>,
        change: &Planned,
    ) -> Result<Vec<Conflict>> {
        let mut found = dispatch!(self, check(policy, std::slice::from_ref(change)))?;
        Ok(found.pop().unwrap_or_default())
    }

    /// What each of `changes` collides with now, read in one snapshot (the calendar).
    pub async fn conflicts_of_changes(
        &self,
        policy: &Policy<'_>,
        changes: &[Planned],
    ) -> Result<Vec<Vec<Conflict>>> {
        dispatch!(self, check(policy, changes))
    }
}

per_dialect!("changes/sql.rs");
