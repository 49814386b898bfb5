//! Changes through the API: `GET|POST /api/v1/changes`, `POST /api/v1/changes/check`
//! (a dry run), `GET|PUT /api/v1/changes/{id}` (`{id}` is the id or the `CHG-…`
//! number), `POST /api/v1/changes/{id}/risk-acceptance` and
//! `POST /api/v1/changes/{id}/{action}`, and change events:
//! `POST /api/v1/change-events` (PagerDuty's `/v2/change/enqueue` shares its path).

use super::{Body, Params, acting_person, bounded, bounded_line};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use jiff::Timestamp;
use muster_domain::FieldErrors;
use muster_domain::auth::Permission;
use muster_domain::catalog::Catalog;
use muster_domain::changes::conflicts::{Conflict, Planned};
use muster_domain::changes::events::NewChangeEvent;
use muster_domain::changes::policy::{self, Approval};
use muster_domain::changes::templates::ChangeTemplate;
use muster_domain::changes::{
    Action, ChangeType, Freeze, MAX_FIXES, Risk, State as ChangeState, TestEvidence, Window,
    parse_reference,
};
use muster_store::catalog::CatalogSnapshot;
use muster_store::changes::{
    ChangeDetail, ChangeInput, ChangeQuery, IncidentLink, NewRiskAcceptance, Policy, RecordedEvent,
    Transition,
};
use muster_store::incidents::IncidentHome;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};

const MAX_TITLE: usize = 200;
const MAX_TEXT: usize = 10_000;
const MAX_SERVICES: usize = 100;
/// The longest window a change may have: longer work is several changes.
const MAX_WINDOW_DAYS: i64 = 92;

/// Reads `{id}`: a number or `CHG-<number>`.
pub(crate) fn reference(text: &str) -> ApiResult<i64> {
    parse_reference(text).ok_or_else(|| {
        ApiError::not_found(format!(
            "no change {text:?}: use its id or its number, e.g. CHG-42"
        ))
    })
}

/// The catalog, its freezes and the configured settings: what the rules read.
pub(crate) struct Rules {
    pub snapshot: std::sync::Arc<CatalogSnapshot>,
    pub freezes: Vec<Freeze>,
    pub settings: muster_domain::changes::Settings,
}

impl Rules {
    pub(crate) async fn load(state: &AppState) -> ApiResult<Rules> {
        let snapshot = state.store.catalog().await?;
        let freezes = Freeze::of_catalog(&snapshot.catalog);
        Ok(Rules {
            snapshot,
            freezes,
            settings: state.changes.clone(),
        })
    }

    pub(crate) fn policy(&self) -> Policy<'_> {
        Policy {
            catalog: &self.snapshot.catalog,
            graph: &self.snapshot.graph,
            freezes: &self.freezes,
            settings: &self.settings,
        }
    }
}

/// A change as the API answers it: the record, its approvals, risk acceptances and
/// log, and what the policy makes of it now — computed risk with reasons, the
/// approvals required and who gave each, the safeguards missing, and its conflicts.
fn change_json(rules: &Rules, detail: &ChangeDetail, conflicts: &[Conflict]) -> Value {
    let catalog = &rules.snapshot.catalog;
    let facts = detail.change.facts();
    let assessment = policy::assess(&facts, catalog, conflicts);
    let required = policy::requirements(
        &facts,
        assessment.risk,
        conflicts,
        catalog,
        &rules.snapshot.graph,
    );
    let given = |teams: &[String]| -> Option<&Approval> {
        detail
            .approvals
            .iter()
            .find(|a| a.teams.iter().any(|t| teams.contains(t)))
    };
    let required_json: Vec<Value> = required
        .iter()
        .map(|r| {
            json!({"teams": r.teams, "why": r.why,
                   "approved_by": given(&r.teams).map(|a| a.person.clone())})
        })
        .collect();
    let mut body = serde_json::to_value(detail).expect("changes serialise");
    body["risk"] = json!({
        "declared": detail.change.declared_risk,
        "computed": assessment.risk,
        "reasons": assessment.reasons,
    });
    body["approval"] = json!({
        "required": required_json,
        "complete": policy::outstanding(&required, &detail.approvals).is_empty(),
    });
    body["safeguards_missing"] = json!(policy::missing_safeguards(&facts, catalog));
    body["conflicts"] = json!(conflicts);
    body
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceBody {
    environment: String,
    result: String,
    #[serde(default)]
    link: Option<String>,
    tested_at: String,
    /// Accepted as read back from a change, and ignored: Muster decides staleness.
    #[serde(default, rename = "stale")]
    _stale: Option<bool>,
}

/// A change record as written to `POST /api/v1/changes` and `PUT …/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    title: String,
    #[serde(default)]
    description: String,
    services: Vec<String>,
    start: String,
    end: String,
    #[serde(rename = "type", default)]
    change_type: Option<String>,
    #[serde(default)]
    risk: Option<String>,
    #[serde(default)]
    requested_by: Option<String>,
    #[serde(default)]
    implementer: Option<String>,
    #[serde(default)]
    test_evidence: Option<EvidenceBody>,
    #[serde(default)]
    rollback_plan: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    launch: bool,
    /// Absent: on for normal and standard changes, off for emergencies.
    #[serde(default)]
    suppress_alerts: Option<bool>,
    /// The change template a standard change follows.
    #[serde(default)]
    template: Option<String>,
    /// The incidents it ships a fix for (`INC-…`); absent on an edit: unchanged.
    #[serde(default)]
    fixes: Option<Vec<String>>,
}

fn instant(errors: &mut FieldErrors, field: &str, text: &str) -> Option<Timestamp> {
    match text.parse::<Timestamp>() {
        Ok(at) => Some(at),
        Err(_) => {
            errors.push(
                field,
                format!("{text:?} is not an RFC 3339 instant with an offset, e.g. 2026-11-24T03:00:00-07:00"),
            );
            None
        }
    }
}

fn word<T: Copy>(
    errors: &mut FieldErrors,
    field: &str,
    text: Option<&str>,
    default: T,
    parse: fn(&str) -> Option<T>,
    names: &str,
) -> T {
    match text {
        None => default,
        Some(t) => parse(t).unwrap_or_else(|| {
            errors.push(field, format!("{t:?} is not one of {names}"));
            default
        }),
    }
}

/// The incidents a record names as fixed, with those linked already (`linked`), as
/// they stand: by id, those that exist.
type NamedIncidents = HashMap<i64, IncidentHome>;

/// Reads a record and checks it against the catalog and the incidents it names,
/// naming every bad field; answers it with the incidents named and `linked`.
async fn read_record(
    state: &AppState,
    rules: &Rules,
    body: &Body,
    linked: &[i64],
) -> ApiResult<(ChangeInput, NamedIncidents)> {
    let record: Record = body.parse()?;
    let named: Vec<i64> = record
        .fixes
        .iter()
        .filter(|fixes| fixes.len() <= MAX_FIXES)
        .flatten()
        .filter_map(|text| incident_reference(text))
        .chain(linked.iter().copied())
        .collect();
    let incidents = if named.is_empty() {
        HashMap::new()
    } else {
        state.store.incident_homes(&named).await?
    };
    Ok((check_record(rules, record, &incidents)?, incidents))
}

fn check_record(
    rules: &Rules,
    record: Record,
    incidents: &NamedIncidents,
) -> ApiResult<ChangeInput> {
    let catalog = &rules.snapshot.catalog;
    let mut errors = FieldErrors::default();
    bounded_line(&mut errors, "title", &record.title, MAX_TITLE, true);
    bounded(
        &mut errors,
        "description",
        &record.description,
        MAX_TEXT,
        false,
    );
    bounded(
        &mut errors,
        "rollback_plan",
        &record.rollback_plan,
        MAX_TEXT,
        false,
    );
    let mut services: Vec<String> = Vec::new();
    if record.services.is_empty() {
        errors.push("services", "names at least one service");
    } else if record.services.len() > MAX_SERVICES {
        errors.push("services", format!("names at most {MAX_SERVICES} services"));
    }
    for (i, id) in record.services.iter().take(MAX_SERVICES).enumerate() {
        if catalog.service(id).is_none() {
            errors.push(
                format!("services[{i}]"),
                format!("no service with id {id:?}"),
            );
        } else if services.contains(id) {
            errors.push(format!("services[{i}]"), format!("{id:?} is named twice"));
        } else {
            services.push(id.clone());
        }
    }
    let start = instant(&mut errors, "start", &record.start);
    let end = instant(&mut errors, "end", &record.end);
    let window = match (start, end) {
        (Some(start), Some(end)) => match Window::new(start, end) {
            Ok(w) if w.end.duration_since(w.start).as_hours() > MAX_WINDOW_DAYS * 24 => {
                errors.push("end", format!("the window is longer than {MAX_WINDOW_DAYS} days: split the work into several changes"));
                None
            }
            Ok(w) => Some(w),
            Err(why) => {
                errors.push("end", why);
                None
            }
        },
        _ => None,
    };
    let change_type = word(
        &mut errors,
        "type",
        record.change_type.as_deref(),
        ChangeType::Normal,
        ChangeType::parse,
        &ChangeType::names(),
    );
    let risk = word(
        &mut errors,
        "risk",
        record.risk.as_deref(),
        Risk::Low,
        Risk::parse,
        &Risk::names(),
    );
    let requested_by = record.requested_by.unwrap_or_default();
    bounded(&mut errors, "requested_by", &requested_by, MAX_TITLE, false);
    if let Some(id) = &record.implementer
        && catalog.person(id).is_none()
    {
        errors.push("implementer", format!("no person with id {id:?}"));
    }
    let test_evidence = record.test_evidence.and_then(|e| {
        bounded(
            &mut errors,
            "test_evidence.environment",
            &e.environment,
            MAX_TITLE,
            true,
        );
        bounded(
            &mut errors,
            "test_evidence.result",
            &e.result,
            MAX_TEXT,
            true,
        );
        if let Some(link) = &e.link {
            bounded(&mut errors, "test_evidence.link", link, 2000, false);
        }
        let tested_at = instant(&mut errors, "test_evidence.tested_at", &e.tested_at)?;
        Some(TestEvidence {
            environment: e.environment.trim().to_string(),
            result: e.result,
            link: e.link.filter(|l| !l.trim().is_empty()),
            tested_at,
            stale: false,
        })
    });
    let fixes = record
        .fixes
        .map(|fixes| incident_references(&mut errors, &fixes, incidents));
    let template = record.template.filter(|t| !t.trim().is_empty());
    match (&template, change_type) {
        (None, ChangeType::Standard) => errors.push(
            "template",
            "is required for a standard change: name a change template from the catalog (change_templates), or make it a normal change",
        ),
        (Some(_), t) if t != ChangeType::Standard => {
            errors.push("template", "only standard changes follow a template")
        }
        (Some(id), _) => match ChangeTemplate::find(catalog, id) {
            None => errors.push("template", format!("no change template with id {id:?}")),
            Some(found) => {
                if let Some(window) = window {
                    for (field, why) in found.misfits(&services, window) {
                        errors.push(field, why);
                    }
                }
            }
        },
        (None, _) => {}
    }
    let Some(window) = window.filter(|_| errors.is_empty()) else {
        return Err(ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors));
    };
    Ok(ChangeInput {
        title: record.title.trim().to_string(),
        description: record.description,
        services,
        window,
        change_type,
        risk,
        requested_by: requested_by.trim().to_string(),
        implementer: record.implementer,
        test_evidence,
        rollback_plan: record.rollback_plan,
        public: record.public,
        launch: record.launch,
        suppress_alerts: record
            .suppress_alerts
            .unwrap_or(change_type.suppresses_alerts_by_default()),
        template,
        fixes,
    })
}

/// An incident id from a reference as written (`INC-42`, `42`; surrounding spaces
/// ignored).
fn incident_reference(text: &str) -> Option<i64> {
    Some(text.trim())
        .filter(|t| t.len() <= 24)
        .and_then(muster_domain::incidents::pages::parse_reference)
}

/// Text as an error message quotes it: cut to 40 characters, so a huge value is not
/// echoed back.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// The incident ids `fixes` names, each an incident not merged into another (a merge
/// moves its fixes to the incident it joins) and named once; the problems go to
/// `errors` under `fixes[i]`.
fn incident_references(
    errors: &mut FieldErrors,
    fixes: &[String],
    incidents: &NamedIncidents,
) -> Vec<i64> {
    use muster_domain::incidents::number;
    if fixes.len() > MAX_FIXES {
        errors.push("fixes", format!("names at most {MAX_FIXES} incidents"));
        return Vec::new();
    }
    let mut ids = Vec::new();
    for (i, text) in fixes.iter().enumerate() {
        let path = format!("fixes[{i}]");
        let Some(id) = incident_reference(text) else {
            errors.push(
                path,
                format!(
                    "{} is not an incident id or number, e.g. INC-42",
                    quoted(text)
                ),
            );
            continue;
        };
        match incidents.get(&id) {
            _ if ids.contains(&id) => errors.push(path, format!("{} is named twice", quoted(text))),
            None => errors.push(path, format!("no incident {}", number(id))),
            Some(IncidentHome {
                merged_into: Some(into),
                ..
            }) => errors.push(
                path,
                format!(
                    "{} was merged into {}: name that one",
                    number(id),
                    number(*into)
                ),
            ),
            Some(_) => ids.push(id),
        }
    }
    ids
}

/// Linking a fix to an incident makes a claim on that incident: the caller must answer
/// for its owner team, as marking a cause needs. Unlinking is for whoever may edit the
/// change, which knows what it fixes.
fn require_fix_rights(
    caller: &Caller,
    rules: &Rules,
    incidents: &NamedIncidents,
    linked: &[i64],
    fixes: Option<&[i64]>,
) -> ApiResult<()> {
    let Some(fixes) = fixes else {
        return Ok(());
    };
    let linked: BTreeSet<i64> = linked.iter().copied().collect();
    let wanted: BTreeSet<i64> = fixes.iter().copied().collect();
    for id in wanted.difference(&linked) {
        let owner = incidents
            .get(id)
            .and_then(|home| rules.snapshot.catalog.service(&home.service))
            .map(|service| service.owner.as_str());
        caller.require(Permission::Respond, owner)?;
    }
    Ok(())
}

/// Changes are work on services: the caller must be able to respond for every owner
/// team involved.
fn require_owners(caller: &Caller, rules: &Rules, services: &[String]) -> ApiResult<()> {
    for service in services {
        let owner = rules
            .snapshot
            .catalog
            .service(service)
            .map(|s| s.owner.as_str());
        caller.require(Permission::Respond, owner)?;
    }
    Ok(())
}

/// The services a `team` and `service` filter leave (`None`: every service); unknown
/// ones are named in `errors`.
pub(crate) fn scope(
    catalog: &Catalog,
    team: Option<&str>,
    service: Option<&str>,
    errors: &mut FieldErrors,
) -> Option<Vec<String>> {
    let team = team.filter(|t| !t.is_empty());
    let service = service.filter(|s| !s.is_empty());
    if let Some(id) = team
        && catalog.team(id).is_none()
    {
        errors.push("team", format!("no team with id {id:?}"));
    }
    match (service.map(|id| (id, catalog.service(id))), team) {
        (Some((id, None)), _) => errors.push("service", format!("no service with id {id:?}")),
        (Some((id, Some(found))), Some(team)) if found.owner != team => errors.push(
            "service",
            format!(
                "{id:?} is owned by {}, not {team}: name one or the other",
                found.owner
            ),
        ),
        _ => {}
    }
    if team.is_none() && service.is_none() {
        return None;
    }
    Some(
        catalog
            .services
            .iter()
            .filter(|s| team.is_none_or(|t| s.owner == t) && service.is_none_or(|id| s.id == id))
            .map(|s| s.id.clone())
            .collect(),
    )
}

/// `GET /api/v1/changes?from=&to=&state=&team=&service=&limit=`: changes whose window
/// meets `[from, to)`, latest start first; `team` keeps those on its services.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let mut errors = FieldErrors::default();
    let from = params
        .text("from")
        .and_then(|t| instant(&mut errors, "from", t));
    let to = params
        .text("to")
        .and_then(|t| instant(&mut errors, "to", t));
    let states = params
        .text("state")
        .map(|text| {
            text.split(',')
                .filter_map(|s| {
                    let state = ChangeState::parse(s.trim());
                    if state.is_none() {
                        errors.push(
                            "state",
                            format!("{s:?} is not one of {}", ChangeState::names()),
                        );
                    }
                    state
                })
                .collect()
        })
        .unwrap_or_default();
    let limit = params.limit()?;
    let snapshot = state.store.catalog().await?;
    let services = scope(
        &snapshot.catalog,
        params.text("team"),
        params.text("service"),
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::invalid(StatusCode::BAD_REQUEST, errors));
    }
    let query = ChangeQuery {
        from,
        to,
        states,
        services,
        limit,
    };
    let items = state.store.changes(&query).await?;
    Ok(Json(json!({ "items": items })))
}

/// `POST /api/v1/changes`: records a draft and answers it with its conflicts.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<(StatusCode, [(header::HeaderName, String); 1], Json<Value>)> {
    let answer = save(&state, &caller, None, &body).await?;
    let location = format!(
        "/api/v1/changes/{}",
        answer["number"].as_str().unwrap_or("")
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(answer),
    ))
}

/// Creates a change (`id` none) or rewrites one from a record body, for the API and
/// the change form; answers the change as the API shows it.
pub(crate) async fn save(
    state: &AppState,
    caller: &Caller,
    id: Option<i64>,
    body: &Body,
) -> ApiResult<Value> {
    let rules = Rules::load(state).await?;
    let mut linked = Vec::new();
    if let Some(id) = id {
        let current = detail_or_404(state, id).await?;
        require_owners(caller, &rules, &current.change.services)?;
        linked = current
            .fixes
            .iter()
            .filter_map(|n| incident_reference(n))
            .collect();
    }
    let (input, incidents) = read_record(state, &rules, body, &linked).await?;
    require_owners(caller, &rules, &input.services)?;
    require_fix_rights(caller, &rules, &incidents, &linked, input.fixes.as_deref())?;
    let (detail, conflicts) = match id {
        None => {
            state
                .store
                .create_change(&caller.actor(), &rules.policy(), &input)
                .await?
        }
        Some(id) => {
            state
                .store
                .update_change(&caller.actor(), &rules.policy(), id, &input, &linked)
                .await?
        }
    };
    Ok(change_json(&rules, &detail, &conflicts))
}

/// `POST /api/v1/changes/check`: what a record would collide with and how the policy
/// would treat it, without storing anything. With `"id"`, the stored change is left
/// out of its own check (checking an edit).
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    Ok(Json(dry_run(&state, body.value()?).await?))
}

/// What a record (with an optional stored `id` to leave out) would collide with and
/// how the policy would treat it, for the API and the change form's live check.
pub(crate) async fn dry_run(state: &AppState, mut value: Value) -> ApiResult<Value> {
    let rules = Rules::load(state).await?;
    let id = match value.as_object_mut().and_then(|o| o.remove("id")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(parse_reference)
                .or(v.as_i64())
                .ok_or_else(|| {
                    ApiError::field("id", "must be a change id or number, e.g. CHG-42")
                })?,
        ),
    };
    let body = Body {
        bytes: serde_json::to_vec(&value).expect("JSON serialises").into(),
        format: muster_domain::catalog::parse::Format::Json,
    };
    let (input, _) = read_record(state, &rules, &body, &[]).await?;
    let planned = Planned {
        id,
        title: input.title.clone(),
        state: ChangeState::Draft,
        change_type: input.change_type,
        services: input.services.clone(),
        window: input.window,
        implementer: input.implementer.clone(),
        launch: input.launch,
    };
    let conflicts = state
        .store
        .change_conflicts(&rules.policy(), &planned)
        .await?;
    let catalog = &rules.snapshot.catalog;
    let facts = policy::Facts {
        change_type: input.change_type,
        declared_risk: input.risk,
        services: &input.services,
        implementer: input.implementer.as_deref(),
        test_evidence: input.test_evidence.as_ref(),
        rollback_plan: &input.rollback_plan,
        template: input.template.as_deref(),
        window: input.window,
    };
    let assessment = policy::assess(&facts, catalog, &conflicts);
    let required = policy::requirements(
        &facts,
        assessment.risk,
        &conflicts,
        catalog,
        &rules.snapshot.graph,
    );
    Ok(json!({
        "conflicts": conflicts,
        "risk": {"declared": input.risk, "computed": assessment.risk, "reasons": assessment.reasons},
        "approval": {"required": required},
        "safeguards_missing": policy::missing_safeguards(&facts, catalog),
    }))
}

async fn detail_or_404(state: &AppState, id: i64) -> ApiResult<ChangeDetail> {
    state.store.change(id).await?.ok_or_else(|| {
        ApiError::not_found(format!("no change {}", muster_domain::changes::number(id)))
    })
}

/// `GET /api/v1/changes/{id}`
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    Ok(Json(view(&state, reference(&id)?).await?))
}

/// A stored change as the API shows it, with its conflicts as they stand now.
pub(crate) async fn view(state: &AppState, id: i64) -> ApiResult<Value> {
    let detail = detail_or_404(state, id).await?;
    let rules = Rules::load(state).await?;
    let conflicts = state
        .store
        .change_conflicts(&rules.policy(), &detail.change.planned())
        .await?;
    Ok(change_json(&rules, &detail, &conflicts))
}

/// `PUT /api/v1/changes/{id}`: rewrites the record (drafts, submitted and approved
/// changes); after submission the change returns to submitted and its approvals are
/// cleared.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let id = reference(&id)?;
    Ok(Json(save(&state, &caller, Some(id), &body).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionBody {
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub acknowledge_conflicts: bool,
}

/// Who acts on a change: a person, as [`acting_person`] reads it; automation with no
/// person of its own must name `by`.
fn acting(rules: &Rules, caller: &Caller, by: Option<&str>, errors: &mut FieldErrors) -> String {
    if by.is_none() && caller.principal.person.is_none() {
        errors.push("by", "is required: the person acting (a person id)");
        return String::new();
    }
    acting_person(&rules.snapshot.catalog, caller, by, errors)
}

/// Approvals and rejections are decisions a person answers for: only a caller linked
/// to a person gives them (as that person), with responder rights over one of that
/// person's teams — the policy then says whether their approval counts.
fn require_decider(caller: &Caller, rules: &Rules) -> ApiResult<()> {
    let Some(person) = &caller.principal.person else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} is not linked to a person: approvals and rejections are given by people (sign in, or use a token made with `muster token create --person`)",
                caller.principal.label
            ),
        ));
    };
    let teams: Vec<&str> = rules
        .snapshot
        .catalog
        .teams
        .iter()
        .filter(|t| t.members.iter().any(|m| m == person))
        .map(|t| t.id.as_str())
        .collect();
    if teams
        .iter()
        .any(|t| caller.principal.grant.allows(Permission::Respond, Some(t)))
    {
        return Ok(());
    }
    caller.require(Permission::Respond, teams.first().copied())
}

/// `POST /api/v1/changes/{id}/{action}` with `{by, reason, acknowledge_conflicts}`.
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let id = reference(&id)?;
    let Some(action) = Action::parse(&action) else {
        return Err(ApiError::not_found(format!(
            "{action:?} is not an action on a change: use {}",
            Action::names()
        )));
    };
    let request: ActionBody = body.parse_or_default()?;
    Ok(Json(apply(&state, &caller, id, action, request).await?))
}

/// Applies an action for the API and the change page; answers the change as the API
/// shows it.
pub(crate) async fn apply(
    state: &AppState,
    caller: &Caller,
    id: i64,
    action: Action,
    request: ActionBody,
) -> ApiResult<Value> {
    let current = detail_or_404(state, id).await?;
    let rules = Rules::load(state).await?;
    let deciding = matches!(action, Action::Approve | Action::Reject);
    if deciding {
        require_decider(caller, &rules)?;
    } else {
        require_owners(caller, &rules, &current.change.services)?;
    }
    let mut errors = FieldErrors::default();
    let by = acting(&rules, caller, request.by.as_deref(), &mut errors);
    if let Some(reason) = &request.reason {
        bounded(&mut errors, "reason", reason, MAX_TEXT, false);
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors));
    }
    let transition = Transition {
        action,
        by,
        reason: request.reason.or(caller.reason.clone()),
        acknowledge_conflicts: request.acknowledge_conflicts,
    };
    let actor = caller.actor().with_reason(transition.reason.clone());
    let (detail, conflicts) = state
        .store
        .act_on_change(&actor, &rules.policy(), id, &transition)
        .await?;
    Ok(change_json(&rules, &detail, &conflicts))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptanceBody {
    accepted_by: String,
    on_behalf_of: String,
    reason: String,
    declined_recommendation: String,
}

/// `POST /api/v1/changes/{id}/risk-acceptance`: who accepts the risk of going ahead
/// without a recommended safeguard, on whose behalf, why, and which recommendation
/// was declined. Recorded, shown on the change and sent to its parties.
pub async fn accept_risk(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = reference(&id)?;
    let recorded = record_acceptance(&state, &caller, id, &body).await?;
    Ok((StatusCode::CREATED, Json(recorded)))
}

/// Records a risk acceptance from its body, for the API and the change page; answers
/// the change.
pub(crate) async fn record_acceptance(
    state: &AppState,
    caller: &Caller,
    id: i64,
    body: &Body,
) -> ApiResult<Value> {
    let request: AcceptanceBody = body.parse()?;
    let current = detail_or_404(state, id).await?;
    let rules = Rules::load(state).await?;
    require_owners(caller, &rules, &current.change.services)?;
    let mut errors = FieldErrors::default();
    bounded(
        &mut errors,
        "accepted_by",
        &request.accepted_by,
        MAX_TITLE,
        true,
    );
    bounded(
        &mut errors,
        "on_behalf_of",
        &request.on_behalf_of,
        MAX_TITLE,
        true,
    );
    bounded(&mut errors, "reason", &request.reason, MAX_TEXT, true);
    bounded(
        &mut errors,
        "declined_recommendation",
        &request.declined_recommendation,
        MAX_TEXT,
        true,
    );
    if !errors.is_empty() {
        return Err(ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors));
    }
    let acceptance = NewRiskAcceptance {
        accepted_by: request.accepted_by.trim().to_string(),
        on_behalf_of: request.on_behalf_of.trim().to_string(),
        reason: request.reason.trim().to_string(),
        declined_recommendation: request.declined_recommendation.trim().to_string(),
    };
    let (detail, conflicts) = state
        .store
        .accept_change_risk(&caller.actor(), &rules.policy(), id, &acceptance)
        .await?;
    Ok(change_json(&rules, &detail, &conflicts))
}

/// Records a change event, from the API or PagerDuty: the on-call of every owner team
/// in the event's neighbourhood is resolved first (schedules and overrides in force),
/// so that unscheduled work can be told to both sides at once.
pub(crate) async fn record_change_event(
    state: &AppState,
    key_id: Option<&str>,
    event: &NewChangeEvent,
) -> ApiResult<RecordedEvent> {
    let rules = Rules::load(state).await?;
    let catalog = &rules.snapshot.catalog;
    let graph = &rules.snapshot.graph;
    let now = state.store.clock().now();
    let mut teams: Vec<String> = graph
        .owner(&event.service)
        .map(str::to_string)
        .into_iter()
        .collect();
    for reach in graph.neighbourhood(&event.service, rules.settings.hops) {
        if !teams.contains(&reach.owner) {
            teams.push(reach.owner);
        }
    }
    let mut oncall: HashMap<String, Vec<String>> = HashMap::new();
    for team in teams {
        let people = super::oncall::first_page(state, catalog, &team, now)
            .await?
            .map(|page| page.people)
            .unwrap_or_default();
        oncall.insert(team, people);
    }
    Ok(state
        .store
        .record_change_event(key_id, &rules.policy(), event, &oncall)
        .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    service: String,
    summary: String,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    custom_details: Option<Value>,
    #[serde(default)]
    links: Vec<Value>,
}

/// `POST /api/v1/change-events` with `{service, summary, actor, source, at}`: work as
/// it happens, e.g. a deploy from CI. Answers whether it was unscheduled, the
/// in-progress work nearby and who was told.
pub async fn create_event(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let request: EventBody = body.parse()?;
    let snapshot = state.store.catalog().await?;
    let mut errors = FieldErrors::default();
    let service = snapshot.catalog.service(&request.service);
    if service.is_none() {
        errors.push(
            "service",
            format!("no service with id {:?}", request.service),
        );
    }
    caller.require(Permission::Respond, service.map(|s| s.owner.as_str()))?;
    bounded(&mut errors, "summary", &request.summary, 1024, true);
    for (field, text) in [("actor", &request.actor), ("source", &request.source)] {
        if let Some(text) = text {
            bounded(&mut errors, field, text, MAX_TITLE, false);
        }
    }
    let at = match &request.at {
        Some(text) => instant(&mut errors, "at", text),
        None => Some(state.store.clock().now()),
    };
    if request.links.len() > 20 {
        errors.push("links", "at most 20 links");
    }
    if let Some(details) = &request.custom_details
        && details.to_string().len() > 16 * 1024
    {
        errors.push("custom_details", "at most 16 KiB of JSON");
    }
    let Some(at) = at.filter(|_| errors.is_empty()) else {
        return Err(ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors));
    };
    let event = NewChangeEvent {
        service: request.service,
        summary: request.summary.trim().to_string(),
        actor: request.actor.filter(|a| !a.trim().is_empty()),
        source: request.source.filter(|s| !s.trim().is_empty()),
        at,
        custom_details: request.custom_details,
        links: request.links,
    };
    let recorded = record_change_event(&state, None, &event).await?;
    Ok((StatusCode::CREATED, Json(json!(recorded))))
}

/// The most neighbours the sandbox view looks at (nearest first).
const SANDBOX_SERVICES: usize = 200;

/// `GET /api/v1/sandbox?service=…&at=…&hours=4`: who else is playing in the sandbox —
/// everything in progress or scheduled within `hours` (default 4, at most 72) of `at`
/// (default now) on the service and its neighbourhood (the conflict paths): changes
/// with their implementer and contact, change events (unscheduled ones marked), the
/// freezes in force and open incidents, each with its distance and path.
pub async fn sandbox(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let at = params.instant_or_now("at", &state)?;
    let hours = match params.text("hours") {
        None => 4,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|h| (1..=72).contains(h))
            .ok_or_else(|| {
                ApiError::field(
                    "hours",
                    format!("must be a whole number from 1 to 72, got {text:?}"),
                )
            })?,
    };
    let Some(service) = params.text("service") else {
        return Err(ApiError::field("service", "is required: a service id"));
    };
    Ok(Json(sandbox_view(&state, service, at, hours).await?))
}

/// Who else is playing in the sandbox of `service` within `hours` of `at`, for the
/// API, the service page and the change form.
pub(crate) async fn sandbox_view(
    state: &AppState,
    service: &str,
    at: Timestamp,
    hours: i64,
) -> ApiResult<Value> {
    let rules = Rules::load(state).await?;
    let catalog = &rules.snapshot.catalog;
    if catalog.service(service).is_none() {
        return Err(ApiError::field(
            "service",
            format!("no service with id {service:?}"),
        ));
    }
    let span = jiff::SignedDuration::from_hours(hours);
    let (from, to) = (at - span, at + span);
    // Distance and path from the service to each neighbour (itself at 0).
    let mut near: Vec<(String, u32, Vec<String>)> =
        vec![(service.to_string(), 0, vec![service.to_string()])];
    near.extend(
        rules
            .snapshot
            .graph
            .neighbourhood(service, rules.settings.hops)
            .into_iter()
            .map(|r| (r.service, r.distance, r.path)),
    );
    near.truncate(SANDBOX_SERVICES);
    let ids: Vec<String> = near.iter().map(|n| n.0.clone()).collect();
    let place = |services: &[String]| -> Value {
        let nearest = near.iter().find(|n| services.contains(&n.0));
        match nearest {
            Some((id, distance, path)) => {
                json!({"service": id, "distance": distance, "path": path})
            }
            None => Value::Null,
        }
    };
    let contact = |person: &Option<String>| {
        person
            .as_deref()
            .and_then(|id| catalog.person(id))
            .map(|p| json!({"id": p.id, "name": p.name, "email": p.email}))
    };
    let changes: Vec<Value> = state
        .store
        .changes_on(&ids, from, to)
        .await?
        .into_iter()
        .map(|c| {
            json!({"number": c.number, "title": c.title, "state": c.state, "type": c.change_type,
                   "start": c.start, "end": c.end, "services": c.services,
                   "implementer": contact(&c.implementer), "near": place(&c.services)})
        })
        .collect();
    let events: Vec<Value> = state
        .store
        .change_events_on(&ids, from, to, 200)
        .await?
        .into_iter()
        .map(|mut e| {
            let service = e["service"].as_str().unwrap_or_default().to_string();
            e["near"] = place(&[service]);
            e
        })
        .collect();
    let freezes: Vec<&Freeze> = rules
        .freezes
        .iter()
        .filter(|f| {
            f.window.overlaps(&Window {
                start: from,
                end: to,
            }) && f.covers(service)
        })
        .collect();
    let mut incidents: Vec<Value> = Vec::new();
    for (id, _, _) in &near {
        let query = muster_store::incidents::IncidentQuery {
            states: muster_domain::incidents::State::ALL
                .into_iter()
                .filter(|s| s.is_open())
                .collect(),
            service: Some(id.clone()),
            before_id: None,
            limit: 20,
        };
        for incident in state.store.incidents(&query).await? {
            incidents.push(json!({"number": incident.number, "title": incident.title, "state": incident.state,
                                  "severity": incident.severity, "service": incident.service,
                                  "opened_at": incident.opened_at, "near": place(std::slice::from_ref(id))}));
        }
    }
    Ok(json!({
        "service": service, "at": at, "from": from, "to": to,
        "changes": changes, "change_events": events, "freezes": freezes, "incidents": incidents,
    }))
}

/// `GET /api/v1/incidents/{id}/changes`: "changes near this" — changes and change
/// events on the incident's services and their neighbourhood in the day before it
/// began, and changes in progress, nearest first (unscheduled work before planned work
/// at equal distance, then closest in time to the incident's start).
pub async fn near_incident(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let number = super::incidents::reference(&id)?;
    Ok(Json(near_view(&state, number, &id).await?))
}

/// "Changes near this" for incident `number` (`id` as the caller wrote it), for the
/// API and the incident page.
pub(crate) async fn near_view(state: &AppState, number: i64, id: &str) -> ApiResult<Value> {
    use muster_domain::changes::correlation::{LOOKBACK, NearWork, rank};
    let detail = state
        .store
        .incident(number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id:?}")))?;
    let rules = Rules::load(state).await?;
    let graph = &rules.snapshot.graph;
    let reach = super::incidents::Reach::of(graph, &detail);
    // Each nearby service once, at its shortest distance from any impacted service.
    let mut near: HashMap<String, (u32, Vec<String>)> = HashMap::new();
    for service in &reach.services {
        near.insert(service.to_string(), (0, vec![service.to_string()]));
        for r in graph.neighbourhood(service, rules.settings.hops) {
            if near.get(&r.service).is_none_or(|(d, _)| r.distance < *d) {
                near.insert(r.service, (r.distance, r.path));
            }
        }
    }
    let ids: Vec<String> = near.keys().cloned().collect();
    let place = |services: &[String]| {
        services
            .iter()
            .filter_map(|s| near.get(s).map(|(d, p)| (s.clone(), *d, p.clone())))
            .min_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)))
    };
    let began = detail.incident.opened_at;
    let since = began - LOOKBACK;
    let now = state.store.clock().now();
    let mut work: Vec<NearWork> = Vec::new();
    for change in state
        .store
        .changes_on(
            &ids,
            since,
            now.max(began) + jiff::SignedDuration::from_secs(1),
        )
        .await?
    {
        let under_way = change.state == ChangeState::InProgress;
        if !(under_way || change.start <= began) {
            continue;
        }
        let Some((service, distance, path)) = place(&change.services) else {
            continue;
        };
        work.push(NearWork {
            kind: "change",
            id: change.id,
            number: Some(change.number.clone()),
            title: change.title.clone(),
            state: Some(change.state.as_str().to_string()),
            who: change.implementer.clone(),
            at: change.started_at.unwrap_or(change.start),
            unscheduled: false,
            service,
            distance,
            path,
        });
    }
    for event in state
        .store
        .change_events_on(&ids, since, began + jiff::SignedDuration::from_secs(1), 500)
        .await?
    {
        let service = event["service"].as_str().unwrap_or_default().to_string();
        let Some((service, distance, path)) = place(&[service]) else {
            continue;
        };
        let Some(at) = event["timestamp"].as_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        work.push(NearWork {
            kind: "change_event",
            id: event["id"].as_i64().unwrap_or_default(),
            number: None,
            title: event["summary"].as_str().unwrap_or_default().to_string(),
            state: None,
            who: event["actor"]
                .as_str()
                .or(event["source"].as_str())
                .map(str::to_string),
            at,
            unscheduled: event["unscheduled"].as_bool().unwrap_or(false),
            service,
            distance,
            path,
        });
    }
    rank(&mut work, began);
    Ok(json!({"incident": detail.incident.number, "began": began, "since": since, "items": work}))
}

/// What links an incident to a change: `{change, by, reason}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    change: String,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/v1/incidents/{id}/caused-by` with `{change, by, reason}`: marks the
/// incident as caused by a change — an outcome of the change, kept apart from its
/// state, counted by the change failure rate. Answers the change.
pub async fn mark_caused_by(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let number = super::incidents::reference(&id)?;
    Ok(Json(
        link_change(&state, &caller, number, &id, &body, IncidentLink::CausedBy).await?,
    ))
}

/// `POST /api/v1/incidents/{id}/fixed-by` with `{change, by, reason}`: links a change,
/// in any state, as a fix for the incident (as the change's `fixes` does). Answers the
/// change.
pub async fn link_fixed_by(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let number = super::incidents::reference(&id)?;
    Ok(Json(
        link_change(&state, &caller, number, &id, &body, IncidentLink::FixedBy).await?,
    ))
}

/// Links incident `number` (`id` as written) to the change a `{change, by, reason}`
/// body names, as `link` says, for the API and the incident page; answers the change.
pub(crate) async fn link_change(
    state: &AppState,
    caller: &Caller,
    number: i64,
    id: &str,
    body: &Body,
    link: IncidentLink,
) -> ApiResult<Value> {
    let request: LinkBody = body.parse()?;
    let incident = state
        .store
        .incident(number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id:?}")))?;
    let rules = Rules::load(state).await?;
    let catalog = &rules.snapshot.catalog;
    let owner = catalog
        .service(&incident.incident.service)
        .map(|s| s.owner.as_str());
    caller.require(Permission::Respond, owner)?;
    let mut errors = FieldErrors::default();
    let change = parse_reference(request.change.trim());
    match change {
        None => errors.push("change", "must be a change id or number, e.g. CHG-42"),
        Some(id) if state.store.change(id).await?.is_none() => errors.push(
            "change",
            format!("no change {}", muster_domain::changes::number(id)),
        ),
        Some(_) => {}
    }
    let by = acting_person(catalog, caller, request.by.as_deref(), &mut errors);
    if let Some(reason) = &request.reason {
        bounded(&mut errors, "reason", reason, MAX_TEXT, false);
    }
    let Some(change) = change.filter(|_| errors.is_empty()) else {
        return Err(ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors));
    };
    let actor = caller
        .actor()
        .with_reason(request.reason.or(caller.reason.clone()));
    state
        .store
        .link_incident(&actor, number, change, &by, link)
        .await?;
    view(state, change).await
}

/// `GET /api/v1/reports/change-failure-rate?from=&to=&team=`: of the changes that ended
/// in `[from, to)` (default: the last 30 days), those that failed, were rolled back or
/// caused an incident — overall, per owner team and per service (with `team`, only that
/// team and its services).
pub async fn failure_rate(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let to = params.instant_or_now("to", &state)?;
    let from = params
        .instant("from")?
        .unwrap_or(to - jiff::SignedDuration::from_hours(30 * 24));
    if from >= to {
        return Err(ApiError::field("from", format!("must be before to ({to})")));
    }
    let snapshot = state.store.catalog().await?;
    let catalog = &snapshot.catalog;
    let team = params.text("team");
    if let Some(team) = team
        && catalog.team(team).is_none()
    {
        return Err(ApiError::field("team", format!("no team with id {team:?}")));
    }
    let ended = state.store.ended_changes(from, to).await?;
    let owner = |service: &str| catalog.service(service).map(|s| s.owner.as_str());
    let rate = muster_domain::changes::outcomes::failure_rate(&ended, owner);
    Ok(Json(match team {
        None => {
            json!({"from": from, "to": to, "overall": rate.overall, "teams": rate.teams, "services": rate.services})
        }
        Some(team) => {
            let services: serde_json::Map<String, Value> = rate
                .services
                .iter()
                .filter(|(s, _)| owner(s) == Some(team))
                .map(|(s, r)| (s.clone(), json!(r)))
                .collect();
            json!({"from": from, "to": to, "team": team,
                   "overall": rate.teams.get(team).cloned().unwrap_or_default(), "services": services})
        }
    }))
}
