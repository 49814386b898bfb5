//! Change pages: the calendar (month and week, coloured by state, conflicts flagged,
//! freezes shaded, filtered by team and service), one change with its policy, conflicts,
//! approvals and log and the actions its state allows, the change form (new and edit)
//! with a live conflict check and the sandbox around it, and the sandbox panel the
//! service page shows. Every write goes through the same functions as the API.

use super::{Nav, PageResult, Viewer, api_body, fail, missing, refused};
use crate::AppState;
use crate::api::Params;
use crate::api::changes::{ActionBody, Rules, apply, reference, sandbox_view, save, scope, view};
use crate::error::ApiError;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use muster_domain::FieldErrors;
use muster_domain::changes::templates::ChangeTemplate;
use muster_domain::changes::{Action, ChangeType, Risk, State as ChangeState, Window, transition};
use muster_domain::clock::format_duration;
use muster_domain::incidents::pages::parse_reference as parse_incident;
use muster_store::changes::{Change, ChangeQuery};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Hours either side of now (or of a planned start) the sandbox panel covers.
const SANDBOX_HOURS: i64 = 4;

/// Most changes one calendar view shows.
const MAX_SHOWN: usize = 500;

/// A change as a calendar entry.
pub struct Entry {
    number: String,
    title: String,
    state: &'static str,
    /// Its time on that day, in the viewer's zone ("03:00–06:00", "from 22:00", "all day").
    time: String,
    conflicts: usize,
    launch: bool,
}

pub struct Day {
    date: String,
    label: String,
    in_range: bool,
    today: bool,
    /// Why the day is shaded: the freezes covering it.
    frozen: Option<String>,
    entries: Vec<Entry>,
}

#[derive(Template, WebTemplate)]
#[template(path = "changes.html")]
struct CalendarPage {
    nav: Nav,
    title: String,
    view: &'static str,
    at: String,
    previous: String,
    next: String,
    today: String,
    team: String,
    service: String,
    teams: Vec<(String, String)>,
    services: Vec<String>,
    weeks: Vec<Vec<Day>>,
    shown: usize,
    with_conflicts: usize,
    states: &'static [ChangeState],
    feed_url: Option<String>,
}

/// The viewer's civil time of an instant.
fn civil(viewer: &Viewer, at: Timestamp) -> DateTime {
    at.to_zoned(viewer.zone.clone()).datetime()
}

/// Midnight starting `date` in `zone`, as an instant.
fn midnight(date: Date, zone: &TimeZone) -> Timestamp {
    date.to_zoned(zone.clone())
        .map(|z| z.timestamp())
        .unwrap_or_else(|_| Timestamp::UNIX_EPOCH)
}

/// The query string of a calendar view.
fn calendar_link(view: &str, at: Date, team: &str, service: &str) -> String {
    let mut link = format!("/changes?view={view}&at={at}");
    for (name, value) in [("team", team), ("service", service)] {
        if !value.is_empty() {
            link.push_str(&format!(
                "&{name}={}",
                percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
            ));
        }
    }
    link
}

/// `GET /changes?view=month|week&at=YYYY-MM-DD&team=&service=`.
pub async fn calendar(State(state): State<AppState>, viewer: Viewer, params: Params) -> PageResult {
    calendar_page(&state, &viewer, &params, None).await
}

async fn calendar_page(
    state: &AppState,
    viewer: &Viewer,
    params: &Params,
    feed_url: Option<String>,
) -> PageResult {
    let now = state.store.clock().now();
    let today = civil(viewer, now).date();
    let view = match params.text("view").unwrap_or("month") {
        "month" => "month",
        "week" => "week",
        other => {
            return Err(refused(
                viewer,
                ApiError::field("view", format!("{other:?}: use month or week")),
            ));
        }
    };
    let at = match params.text("at").filter(|t| !t.is_empty()) {
        None => today,
        Some(text) => text.parse::<Date>().map_err(|_| {
            refused(
                viewer,
                ApiError::field("at", format!("{text:?} is not a date like 2026-11-23")),
            )
        })?,
    };
    let rules = Rules::load(state).await.map_err(fail)?;
    let catalog = &rules.snapshot.catalog;
    let team = params.text("team").unwrap_or("").to_string();
    let service = params.text("service").unwrap_or("").to_string();
    let mut errors = FieldErrors::default();
    let services = scope(catalog, Some(&team), Some(&service), &mut errors);
    let shown: Option<std::collections::HashSet<String>> =
        services.clone().map(|s| s.into_iter().collect());
    if !errors.is_empty() {
        return Err(refused(
            viewer,
            ApiError::invalid(StatusCode::BAD_REQUEST, errors),
        ));
    }
    let monday = |d: Date| d - (d.weekday().to_monday_zero_offset() as i64).days();
    let (first, last, previous, next, title) = if view == "month" {
        let first = at.first_of_month();
        let last = at.last_of_month();
        (
            monday(first),
            monday(last) + 6.days(),
            first - 1.month(),
            first + 1.month(),
            first.strftime("%B %Y").to_string(),
        )
    } else {
        let first = monday(at);
        (
            first,
            first + 6.days(),
            first - 7.days(),
            first + 7.days(),
            format!("Week of {}", first.strftime("%-d %B %Y")),
        )
    };
    let from = midnight(first, &viewer.zone);
    let to = midnight(last + 1.day(), &viewer.zone);
    let query = ChangeQuery {
        from: Some(from),
        to: Some(to),
        states: ChangeState::ALL
            .iter()
            .copied()
            .filter(|s| *s != ChangeState::Cancelled)
            .collect(),
        services,
        limit: MAX_SHOWN,
    };
    let changes = state.store.changes(&query).await.map_err(fail)?;
    let planned: Vec<_> = changes.iter().map(Change::planned).collect();
    let conflicts = state
        .store
        .conflicts_of_changes(&rules.policy(), &planned)
        .await
        .map_err(fail)?;
    let mut weeks: Vec<Vec<Day>> = Vec::new();
    let mut day = first;
    while day <= last {
        let start = midnight(day, &viewer.zone);
        let end = midnight(day + 1.day(), &viewer.zone);
        let window = Window { start, end };
        let frozen: Vec<String> = rules
            .freezes
            .iter()
            .filter(|f| {
                f.window.overlaps(&window)
                    && (f.services.iter().any(|s| s == "*")
                        || shown
                            .as_ref()
                            .is_none_or(|shown| f.services.iter().any(|s| shown.contains(s))))
            })
            .map(|f| format!("{}: {}", f.id, f.reason))
            .collect();
        // Earliest first within a day (the list comes latest first).
        let entries = changes
            .iter()
            .zip(&conflicts)
            .rev()
            .filter(|(c, _)| c.window().overlaps(&window))
            .map(|(c, found)| {
                let (s, e) = (civil(viewer, c.start), civil(viewer, c.end));
                let time = match (c.start >= start, c.end <= end) {
                    (true, true) => format!("{}–{}", s.strftime("%H:%M"), e.strftime("%H:%M")),
                    (true, false) => format!("from {}", s.strftime("%H:%M")),
                    (false, true) => format!("until {}", e.strftime("%H:%M")),
                    (false, false) => "all day".to_string(),
                };
                Entry {
                    number: c.number.clone(),
                    title: c.title.clone(),
                    state: c.state.as_str(),
                    time,
                    conflicts: found.len(),
                    launch: c.launch,
                }
            })
            .collect();
        let in_range = view == "week" || day.month() == at.month();
        let week_index = (day - first).get_days() as usize / 7;
        if weeks.len() <= week_index {
            weeks.push(Vec::new());
        }
        weeks[week_index].push(Day {
            date: day.to_string(),
            label: if view == "week" {
                day.strftime("%a %-d %b").to_string()
            } else {
                day.day().to_string()
            },
            in_range,
            today: day == today,
            frozen: (!frozen.is_empty()).then(|| frozen.join("; ")),
            entries,
        });
        day += 1.day();
    }
    let page = CalendarPage {
        nav: viewer.nav("/changes"),
        title,
        view,
        at: at.to_string(),
        previous: calendar_link(view, previous, &team, &service),
        next: calendar_link(view, next, &team, &service),
        today: calendar_link(view, today, &team, &service),
        teams: catalog
            .teams
            .iter()
            .map(|t| (t.id.clone(), t.name.clone()))
            .collect(),
        services: catalog.services.iter().map(|s| s.id.clone()).collect(),
        shown: changes.len(),
        with_conflicts: conflicts.iter().filter(|c| !c.is_empty()).count(),
        team,
        service,
        weeks,
        states: ChangeState::ALL,
        feed_url,
    };
    Ok(page.into_response())
}

#[derive(serde::Deserialize)]
pub struct FeedForm {
    csrf: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    service: String,
}

/// `POST /changes/feeds`: a new iCalendar feed for the calendar's filter; its link is
/// shown once, on the calendar.
pub async fn create_feed(
    State(state): State<AppState>,
    viewer: Viewer,
    axum::Form(form): axum::Form<FeedForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    let body = api_body(json!({
        "team": Some(&form.team).filter(|t| !t.is_empty()),
        "service": Some(&form.service).filter(|s| !s.is_empty()),
    }));
    let made = crate::api::change_calendar::make_feed(&state, &viewer.caller(), &body)
        .await
        .map_err(|e| refused(&viewer, e))?;
    let params = Params(
        [("team", form.team), ("service", form.service)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    calendar_page(
        &state,
        &viewer,
        &params,
        made["url"].as_str().map(str::to_string),
    )
    .await
}

/// Text at a JSON pointer, or "".
fn text(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A JSON list of strings, joined.
fn list(v: &Value, pointer: &str, separator: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(separator)
        })
        .unwrap_or_default()
}

/// An instant from JSON, as the viewer reads it.
fn when(viewer: &Viewer, v: &Value, pointer: &str, now: Timestamp) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(|at| {
            let t = viewer.time(at, now);
            format!("{} ({})", t.local, t.relative)
        })
        .unwrap_or_default()
}

pub struct ConflictRow {
    kind: String,
    message: String,
    blocking: bool,
    other: String,
}

fn conflict_rows(change: &Value) -> Vec<ConflictRow> {
    change["conflicts"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|c| ConflictRow {
                    kind: text(c, "/kind").replace('_', " "),
                    message: text(c, "/message"),
                    blocking: c["blocking"].as_bool().unwrap_or(false),
                    other: text(c, "/change/number"),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Template, WebTemplate)]
#[template(path = "change.html")]
struct ChangePage {
    nav: Nav,
    error: Option<String>,
    number: String,
    title: String,
    state: String,
    change_type: String,
    services: Vec<String>,
    window: String,
    implementer: String,
    requested_by: String,
    description: String,
    rollback_plan: String,
    evidence: Option<String>,
    evidence_stale: bool,
    template: Option<String>,
    flags: Vec<&'static str>,
    risk: String,
    declared: String,
    reasons: Vec<String>,
    missing: Vec<String>,
    required: Vec<(String, String, String)>,
    complete: bool,
    acceptances: Vec<(String, String, String, String, String)>,
    conflicts: Vec<ConflictRow>,
    maintenance: Vec<(String, String, String, bool)>,
    caused: Vec<String>,
    fixes: Vec<String>,
    log: Vec<(String, String, String, String)>,
    actions: Vec<(&'static str, &'static str)>,
    editable: bool,
    needs_acceptance: bool,
    /// For a viewer who is no catalog person (an admin account): who acts, defaulting
    /// to the implementer.
    acting_for: Option<(Vec<(String, String)>, String)>,
}

/// The button label of each action.
fn action_label(action: Action) -> &'static str {
    match action {
        Action::Submit => "Submit for approval",
        Action::Approve => "Approve",
        Action::Reject => "Reject",
        Action::Start => "Start",
        Action::Complete => "Complete",
        Action::Rollback => "Rolled back",
        Action::Fail => "Failed",
        Action::Cancel => "Cancel the change",
    }
}

async fn change_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    error: Option<String>,
) -> PageResult {
    let number = reference(id).map_err(|e| refused(viewer, e))?;
    let c = match view(state, number).await {
        Ok(c) => c,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            return Err(missing(viewer, format!("No change {id}.")));
        }
        Err(e) => return Err(fail(e)),
    };
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let now = state.store.clock().now();
    let person = |id: &str| {
        snapshot
            .catalog
            .person(id)
            .map(|p| format!("{} ({})", p.name, p.id))
            .unwrap_or_else(|| id.to_string())
    };
    let change_state = ChangeState::parse(&text(&c, "/state")).unwrap_or(ChangeState::Draft);
    let change_type = ChangeType::parse(&text(&c, "/type")).unwrap_or(ChangeType::Normal);
    let actions = Action::ALL
        .iter()
        .filter(|a| transition(change_type, change_state, **a).is_ok())
        .map(|a| (a.as_str(), action_label(*a)))
        .collect();
    let mut flags = Vec::new();
    for (field, flag) in [
        ("/launch", "launch"),
        ("/public", "public"),
        ("/suppress_alerts", "alerts suppressed while in progress"),
    ] {
        if c.pointer(field).and_then(Value::as_bool) == Some(true) {
            flags.push(flag);
        }
    }
    let evidence = c.get("test_evidence").filter(|e| !e.is_null()).map(|e| {
        format!(
            "{} on {}{}, tested {}",
            text(e, "/result"),
            text(e, "/environment"),
            Some(text(e, "/link"))
                .filter(|l| !l.is_empty())
                .map(|l| format!(" ({l})"))
                .unwrap_or_default(),
            when(viewer, e, "/tested_at", now)
        )
    });
    let rows = |pointer: &str| {
        c.pointer(pointer)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let missing_safeguards: Vec<String> = rows("/safeguards_missing")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let page = ChangePage {
        nav: viewer.nav("/changes"),
        error,
        number: text(&c, "/number"),
        title: text(&c, "/title"),
        state: change_state.as_str().to_string(),
        change_type: change_type.as_str().to_string(),
        services: rows("/services")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        window: format!(
            "{} → {}",
            when(viewer, &c, "/start", now),
            when(viewer, &c, "/end", now)
        ),
        implementer: Some(text(&c, "/implementer"))
            .filter(|i| !i.is_empty())
            .map(|i| person(&i))
            .unwrap_or_else(|| "nobody named".to_string()),
        requested_by: Some(text(&c, "/requested_by"))
            .filter(|r| !r.is_empty())
            .map(|r| person(&r))
            .unwrap_or_else(|| "not recorded".to_string()),
        description: text(&c, "/description"),
        rollback_plan: text(&c, "/rollback_plan"),
        evidence_stale: c.pointer("/test_evidence/stale").and_then(Value::as_bool) == Some(true),
        template: Some(text(&c, "/template")).filter(|t| !t.is_empty()),
        evidence,
        flags,
        risk: text(&c, "/risk/computed"),
        declared: text(&c, "/risk/declared"),
        reasons: rows("/risk/reasons")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        needs_acceptance: !missing_safeguards.is_empty() && rows("/risk_acceptances").is_empty(),
        missing: missing_safeguards,
        required: rows("/approval/required")
            .iter()
            .map(|r| {
                (
                    list(r, "/teams", " or "),
                    text(r, "/why"),
                    Some(text(r, "/approved_by"))
                        .filter(|a| !a.is_empty())
                        .map(|a| person(&a))
                        .unwrap_or_default(),
                )
            })
            .collect(),
        complete: c.pointer("/approval/complete").and_then(Value::as_bool) == Some(true),
        acceptances: rows("/risk_acceptances")
            .iter()
            .map(|a| {
                (
                    text(a, "/accepted_by"),
                    text(a, "/on_behalf_of"),
                    text(a, "/reason"),
                    text(a, "/declined_recommendation"),
                    when(viewer, a, "/at", now),
                )
            })
            .collect(),
        conflicts: conflict_rows(&c),
        maintenance: rows("/maintenance_alerts")
            .iter()
            .map(|a| {
                (
                    format!("#{} {}", text(a, "/alert"), text(a, "/name")),
                    text(a, "/service"),
                    when(viewer, a, "/at", now),
                    a["firing"].as_bool().unwrap_or(false),
                )
            })
            .collect(),
        caused: rows("/caused_incidents")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        fixes: rows("/fixes")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        log: rows("/log")
            .iter()
            .map(|l| {
                (
                    when(viewer, l, "/at", now),
                    text(l, "/kind"),
                    text(l, "/actor"),
                    text(l, "/text"),
                )
            })
            .collect(),
        actions,
        editable: change_state.editable(),
        acting_for: viewer.principal.person.is_none().then(|| {
            let people = snapshot
                .catalog
                .people
                .iter()
                .map(|p| (p.id.clone(), p.name.clone()))
                .collect();
            (people, text(&c, "/implementer"))
        }),
    };
    let status = if page.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, page).into_response())
}

/// `GET /changes/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    change_page(&state, &viewer, &id, None).await
}

#[derive(serde::Deserialize)]
pub struct ActForm {
    csrf: String,
    action: String,
    /// The person acting, for viewers who are no catalog person.
    #[serde(default)]
    by: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    acknowledge_conflicts: Option<String>,
}

/// `POST /changes/{id}/act`: any action its state allows, as the signed-in person.
pub async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ActForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    let number = reference(&id).map_err(|e| refused(&viewer, e))?;
    let Some(action) = Action::parse(&form.action) else {
        return Err(refused(
            &viewer,
            ApiError::field("action", format!("use one of {}", Action::names())),
        ));
    };
    let request = ActionBody {
        by: Some(form.by).filter(|b| !b.is_empty()),
        reason: Some(form.reason.trim().to_string()).filter(|r| !r.is_empty()),
        acknowledge_conflicts: form.acknowledge_conflicts.is_some(),
    };
    match apply(&state, &viewer.caller(), number, action, request).await {
        Ok(_) => Ok(Redirect::to(&format!("/changes/{id}")).into_response()),
        Err(e) => change_page(&state, &viewer, &id, Some(e.detail)).await,
    }
}

#[derive(serde::Deserialize)]
pub struct AcceptanceForm {
    csrf: String,
    #[serde(default)]
    accepted_by: String,
    #[serde(default)]
    on_behalf_of: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    declined_recommendation: String,
}

/// `POST /changes/{id}/risk-acceptance`.
pub async fn accept_risk(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<AcceptanceForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    let number = reference(&id).map_err(|e| refused(&viewer, e))?;
    let body = api_body(json!({
        "accepted_by": form.accepted_by, "on_behalf_of": form.on_behalf_of,
        "reason": form.reason, "declined_recommendation": form.declined_recommendation,
    }));
    match crate::api::changes::record_acceptance(&state, &viewer.caller(), number, &body).await {
        Ok(_) => Ok(Redirect::to(&format!("/changes/{id}")).into_response()),
        Err(e) => change_page(&state, &viewer, &id, Some(e.detail)).await,
    }
}

/// The change form's fields, as typed (times in the viewer's zone).
#[derive(Default, Clone)]
pub struct Fields {
    title: String,
    description: String,
    services: Vec<String>,
    start: String,
    end: String,
    change_type: String,
    risk: String,
    requested_by: String,
    implementer: String,
    rollback_plan: String,
    evidence_environment: String,
    evidence_result: String,
    evidence_link: String,
    evidence_tested_at: String,
    public: bool,
    launch: bool,
    /// "" (the type's default), "on" or "off".
    suppress_alerts: String,
    template: String,
    /// The incidents it ships a fix for, as typed: `INC-…`, separated by commas or
    /// spaces.
    fixes: String,
    /// On an edit, the links the form showed: what the viewer changed is applied to
    /// the links as they are when saved.
    fixes_shown: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "change_form.html")]
struct FormPage {
    nav: Nav,
    /// `None`: a new change.
    number: Option<String>,
    f: Fields,
    errors: Vec<String>,
    services: Vec<String>,
    people: Vec<(String, String)>,
    types: &'static [ChangeType],
    risks: &'static [Risk],
    /// The catalog's change templates: (id, title, services, maximum duration).
    templates: Vec<(String, String, String, String)>,
    zone: String,
}

async fn form_page(
    state: &AppState,
    viewer: &Viewer,
    number: Option<String>,
    f: Fields,
    errors: Vec<String>,
) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = FormPage {
        nav: viewer.nav("/changes"),
        number,
        f,
        errors,
        services: snapshot
            .catalog
            .services
            .iter()
            .map(|s| s.id.clone())
            .collect(),
        people: snapshot
            .catalog
            .people
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect(),
        types: ChangeType::ALL,
        risks: Risk::ALL,
        templates: ChangeTemplate::of_catalog(&snapshot.catalog)
            .into_iter()
            .map(|t| {
                (
                    t.id,
                    t.title,
                    t.services.join(", "),
                    format_duration(t.max_duration),
                )
            })
            .collect(),
        zone: viewer.zone_name.clone(),
    };
    Ok((status, page).into_response())
}

/// `datetime-local` text in the viewer's zone.
fn local_input(viewer: &Viewer, at: Timestamp) -> String {
    civil(viewer, at).strftime("%Y-%m-%dT%H:%M").to_string()
}

/// `GET /changes/new?service=&start=`: the form, defaulting to an hour from the next
/// full hour.
pub async fn new_form(State(state): State<AppState>, viewer: Viewer, params: Params) -> PageResult {
    let now = state.store.clock().now();
    let start = now + SignedDuration::from_secs(3600 - now.as_second().rem_euclid(3600));
    let f = Fields {
        services: params
            .text("service")
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
        start: local_input(&viewer, start),
        end: local_input(&viewer, start + SignedDuration::from_hours(1)),
        change_type: "normal".into(),
        risk: "low".into(),
        implementer: viewer.principal.person.clone().unwrap_or_default(),
        requested_by: viewer.principal.person.clone().unwrap_or_default(),
        ..Fields::default()
    };
    // A fix for an incident: named after it, and paging as usual while under way, since
    // the alerts on its service are how the fix is seen to work.
    let fixes = params.text("fixes").unwrap_or_default();
    let fixed = match words(fixes).first().and_then(|t| parse_incident(t)) {
        Some(id) => state.store.incident(id).await.map_err(fail)?,
        None => None,
    };
    let f = match fixed {
        Some(detail) => Fields {
            title: format!("Fix {}: {}", detail.incident.number, detail.incident.title)
                .chars()
                .take(200)
                .collect(),
            suppress_alerts: "off".into(),
            fixes: fixes.to_string(),
            ..f
        },
        None => Fields {
            fixes: fixes.to_string(),
            ..f
        },
    };
    form_page(&state, &viewer, None, f, Vec::new()).await
}

/// `GET /changes/{id}/edit`.
pub async fn edit_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let number = reference(&id).map_err(|e| refused(&viewer, e))?;
    let Some(detail) = state.store.change(number).await.map_err(fail)? else {
        return Err(missing(&viewer, format!("No change {id}.")));
    };
    let c = detail.change;
    let evidence = c.test_evidence.clone();
    let f = Fields {
        title: c.title,
        description: c.description,
        services: c.services,
        start: local_input(&viewer, c.start),
        end: local_input(&viewer, c.end),
        change_type: c.change_type.as_str().into(),
        risk: c.declared_risk.as_str().into(),
        requested_by: c.requested_by,
        implementer: c.implementer.unwrap_or_default(),
        rollback_plan: c.rollback_plan,
        evidence_environment: evidence
            .as_ref()
            .map(|e| e.environment.clone())
            .unwrap_or_default(),
        evidence_result: evidence
            .as_ref()
            .map(|e| e.result.clone())
            .unwrap_or_default(),
        evidence_link: evidence
            .as_ref()
            .and_then(|e| e.link.clone())
            .unwrap_or_default(),
        evidence_tested_at: evidence
            .as_ref()
            .map(|e| local_input(&viewer, e.tested_at))
            .unwrap_or_default(),
        public: c.public,
        launch: c.launch,
        suppress_alerts: if c.suppress_alerts == c.change_type.suppresses_alerts_by_default() {
            String::new()
        } else if c.suppress_alerts {
            "on".into()
        } else {
            "off".into()
        },
        template: c.template.unwrap_or_default(),
        fixes: detail.fixes.join(", "),
        fixes_shown: detail.fixes.join(", "),
    };
    form_page(&state, &viewer, Some(c.number), f, Vec::new()).await
}

/// The form's fields from its urlencoded body (services repeat).
fn read_fields(body: &str) -> (Fields, String) {
    let mut f = Fields::default();
    let mut csrf = String::new();
    for (name, value) in Params::pairs(Some(body)) {
        match name.as_str() {
            "csrf" => csrf = value,
            "title" => f.title = value,
            "description" => f.description = value,
            "services" => f.services.push(value),
            "start" => f.start = value,
            "end" => f.end = value,
            "type" => f.change_type = value,
            "risk" => f.risk = value,
            "requested_by" => f.requested_by = value,
            "implementer" => f.implementer = value,
            "rollback_plan" => f.rollback_plan = value,
            "evidence_environment" => f.evidence_environment = value,
            "evidence_result" => f.evidence_result = value,
            "evidence_link" => f.evidence_link = value,
            "evidence_tested_at" => f.evidence_tested_at = value,
            "public" => f.public = true,
            "launch" => f.launch = true,
            "suppress_alerts" => f.suppress_alerts = value,
            "template" => f.template = value,
            "fixes" => f.fixes = value,
            "fixes_shown" => f.fixes_shown = value,
            _ => {}
        }
    }
    (f, csrf)
}

/// A `datetime-local` value in `zone` as RFC 3339, or the text itself (the API then
/// names the field).
fn instant_text(zone: &TimeZone, text: &str) -> String {
    text.parse::<DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(zone.clone()).ok())
        .map(|z| z.timestamp().to_string())
        .unwrap_or_else(|| text.to_string())
}

/// Incident references as typed, separated by commas or spaces.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|r| !r.is_empty())
        .collect()
}

/// The links a saved edit asks for: what the viewer added to or removed from the links
/// the form `shown`, applied to the links as they are `now` (someone may have linked
/// another fix meanwhile). References the API cannot read are kept, for it to name.
fn merged_fixes(typed: &[&str], shown: &[&str], now: &[String]) -> Vec<String> {
    let key = |text: &str| {
        parse_incident(text)
            .map(muster_domain::incidents::number)
            .unwrap_or_else(|| text.to_string())
    };
    let shown: BTreeSet<String> = shown.iter().map(|t| key(t)).collect();
    let kept: BTreeSet<String> = typed.iter().map(|t| key(t)).collect();
    let mut fixes: Vec<String> = now
        .iter()
        .filter(|n| !shown.contains(*n) || kept.contains(*n))
        .cloned()
        .collect();
    for text in typed {
        let key = key(text);
        if !shown.contains(&key) && !fixes.contains(&key) {
            fixes.push(text.to_string());
        }
    }
    fixes
}

/// The API record the form's fields describe.
fn record(viewer: &Viewer, f: &Fields) -> Value {
    // Any evidence field filled sends the evidence, so the API names what is missing.
    let evidence = [
        &f.evidence_environment,
        &f.evidence_result,
        &f.evidence_link,
        &f.evidence_tested_at,
    ]
    .iter()
    .any(|v| !v.trim().is_empty())
    .then(|| {
        json!({"environment": f.evidence_environment, "result": f.evidence_result,
               "link": Some(&f.evidence_link).filter(|l| !l.trim().is_empty()),
               "tested_at": instant_text(&viewer.zone, &f.evidence_tested_at)})
    });
    let optional = |v: &String| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    json!({
        "title": f.title, "description": f.description, "services": f.services,
        "start": instant_text(&viewer.zone, &f.start), "end": instant_text(&viewer.zone, &f.end),
        "type": f.change_type, "risk": f.risk, "requested_by": optional(&f.requested_by),
        "implementer": optional(&f.implementer), "test_evidence": evidence,
        "rollback_plan": f.rollback_plan, "public": f.public, "launch": f.launch,
        "suppress_alerts": match f.suppress_alerts.as_str() {
            "on" => json!(true),
            "off" => json!(false),
            _ => Value::Null,
        },
        "template": optional(&f.template),
        "fixes": words(&f.fixes),
    })
}

/// `POST /changes/new`: records a draft and shows it.
pub async fn create(State(state): State<AppState>, viewer: Viewer, body: String) -> PageResult {
    submit_form(&state, &viewer, None, &body).await
}

/// `POST /changes/{id}/edit`.
pub async fn update(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: String,
) -> PageResult {
    let number = reference(&id).map_err(|e| refused(&viewer, e))?;
    submit_form(&state, &viewer, Some((number, id)), &body).await
}

async fn submit_form(
    state: &AppState,
    viewer: &Viewer,
    existing: Option<(i64, String)>,
    body: &str,
) -> PageResult {
    let (f, csrf) = read_fields(body);
    viewer.check_csrf(&csrf).map_err(|e| refused(viewer, e))?;
    let mut record = record(viewer, &f);
    if let Some((id, _)) = &existing {
        let now = state
            .store
            .change(*id)
            .await
            .map_err(fail)?
            .map(|d| d.fixes)
            .unwrap_or_default();
        record["fixes"] = json!(merged_fixes(&words(&f.fixes), &words(&f.fixes_shown), &now));
    }
    let record = api_body(record);
    match save(
        state,
        &viewer.caller(),
        existing.as_ref().map(|e| e.0),
        &record,
    )
    .await
    {
        Ok(saved) => {
            Ok(Redirect::to(&format!("/changes/{}", text(&saved, "/number"))).into_response())
        }
        Err(e) if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND => {
            Err(refused(viewer, e))
        }
        Err(e) => form_page(state, viewer, existing.map(|e| e.1), f, super::problems(&e)).await,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "sandbox.html")]
pub struct SandboxPanel {
    pub service: String,
    pub span: String,
    pub rows: Vec<SandboxRow>,
}

pub struct SandboxRow {
    kind: &'static str,
    link: Option<String>,
    label: String,
    detail: String,
    near: String,
    unscheduled: bool,
}

/// Who else is playing in `service`'s sandbox within 4 hours of `at`: for the service
/// page and, as a fragment, the change form.
pub async fn sandbox_panel(
    state: &AppState,
    viewer: &Viewer,
    service: &str,
    at: Timestamp,
) -> Result<SandboxPanel, ApiError> {
    let found = sandbox_view(state, service, at, SANDBOX_HOURS).await?;
    let now = state.store.clock().now();
    let near = |item: &Value| {
        let path = list(item, "/near/path", " → ");
        if item.pointer("/near/distance").and_then(Value::as_u64) == Some(0) {
            "this service".to_string()
        } else {
            path
        }
    };
    let mut rows = Vec::new();
    for c in found["changes"].as_array().into_iter().flatten() {
        rows.push(SandboxRow {
            kind: "change",
            link: Some(format!("/changes/{}", text(c, "/number"))),
            label: format!("{} {}", text(c, "/number"), text(c, "/title")),
            detail: format!(
                "{} · {} → {} · {}{}",
                text(c, "/state").replace('_', " "),
                when(viewer, c, "/start", now),
                when(viewer, c, "/end", now),
                Some(text(c, "/implementer/name"))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "no implementer".into()),
                Some(text(c, "/implementer/email"))
                    .filter(|e| !e.is_empty())
                    .map(|e| format!(" <{e}>"))
                    .unwrap_or_default(),
            ),
            near: near(c),
            unscheduled: false,
        });
    }
    for e in found["change_events"].as_array().into_iter().flatten() {
        rows.push(SandboxRow {
            kind: "change event",
            link: None,
            label: text(e, "/summary"),
            detail: format!(
                "{} · {}",
                when(viewer, e, "/timestamp", now),
                Some(text(e, "/actor"))
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| text(e, "/source"))
            ),
            near: near(e),
            unscheduled: e["unscheduled"].as_bool().unwrap_or(false),
        });
    }
    for f in found["freezes"].as_array().into_iter().flatten() {
        rows.push(SandboxRow {
            kind: "freeze",
            link: None,
            label: format!("{}: {}", text(f, "/id"), text(f, "/reason")),
            detail: format!(
                "{} → {}",
                when(viewer, f, "/window/start", now),
                when(viewer, f, "/window/end", now)
            ),
            near: "this service".into(),
            unscheduled: false,
        });
    }
    for i in found["incidents"].as_array().into_iter().flatten() {
        rows.push(SandboxRow {
            kind: "incident",
            link: Some(format!("/incidents/{}", text(i, "/number"))),
            label: format!("{} {}", text(i, "/number"), text(i, "/title")),
            detail: format!("{} · {}", text(i, "/state"), text(i, "/severity")),
            near: near(i),
            unscheduled: false,
        });
    }
    Ok(SandboxPanel {
        service: service.to_string(),
        span: format!(
            "{} to {}",
            when(viewer, &found, "/from", now),
            when(viewer, &found, "/to", now)
        ),
        rows,
    })
}

/// `GET /sandbox?service=&at=` (`at` a `datetime-local` in the viewer's zone, or
/// RFC 3339): the sandbox panel alone, which the change form loads as it is filled in.
pub async fn sandbox_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Params,
) -> Response {
    let Some(service) = params.text("service").filter(|s| !s.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "service: is required\n").into_response();
    };
    let at = match params.text("at").filter(|t| !t.is_empty()) {
        None => state.store.clock().now(),
        Some(text) => match instant_text(&viewer.zone, text).parse::<Timestamp>() {
            Ok(at) => at,
            Err(_) => {
                return (StatusCode::BAD_REQUEST, "at: is not a time\n").into_response();
            }
        },
    };
    match sandbox_panel(&state, &viewer, service, at).await {
        Ok(panel) => panel.into_response(),
        Err(e) => (e.status, format!("{}\n", e.detail)).into_response(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "change_check.html")]
struct CheckFragment {
    problems: Vec<String>,
    conflicts: Vec<ConflictRow>,
    risk: String,
    reasons: Vec<String>,
    missing: Vec<String>,
    approvers: Vec<String>,
}

/// `POST /changes/check` (the form's fields, with `id` when editing): the live check's
/// fragment — conflicts, computed risk and approvals, or what the record lacks.
pub async fn check_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    body: String,
) -> Response {
    let (f, csrf) = read_fields(&body);
    if let Err(e) = viewer.check_csrf(&csrf) {
        return (e.status, e.detail).into_response();
    }
    let mut value = record(&viewer, &f);
    if let Some((_, id)) = Params::pairs(Some(&body))
        .into_iter()
        .find(|(n, _)| n == "id")
    {
        value["id"] = json!(id);
    }
    let strings = |v: &Value, pointer: &str| -> Vec<String> {
        v.pointer(pointer)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let fragment = match crate::api::changes::dry_run(&state, value).await {
        Ok(found) => CheckFragment {
            problems: Vec::new(),
            conflicts: conflict_rows(&found),
            risk: text(&found, "/risk/computed"),
            reasons: strings(&found, "/risk/reasons"),
            missing: strings(&found, "/safeguards_missing"),
            approvers: found["approval"]["required"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| format!("{} ({})", list(r, "/teams", " or "), text(r, "/why")))
                .collect(),
        },
        Err(e) => CheckFragment {
            problems: super::problems(&e),
            conflicts: Vec::new(),
            risk: String::new(),
            reasons: Vec::new(),
            missing: Vec::new(),
            approvers: Vec::new(),
        },
    };
    fragment.into_response()
}

#[cfg(test)]
mod tests {
    use super::merged_fixes;

    #[test]
    fn a_saved_edit_applies_only_what_the_viewer_changed_to_the_links() {
        let now = ["INC-1".to_string(), "INC-3".to_string()];
        // INC-3 was linked by someone else after the form showed INC-1 and INC-2 (since
        // unlinked); the viewer removed INC-2, kept INC-1 as "inc-1" and added INC-4.
        assert_eq!(
            merged_fixes(&["inc-1", "INC-4"], &["INC-1", "INC-2"], &now),
            ["INC-1", "INC-3", "INC-4"]
        );
        // Removing a link the form showed removes it; unreadable text is passed on.
        assert_eq!(merged_fixes(&["soon"], &["INC-1"], &now), ["INC-3", "soon"]);
        // Added by the viewer and by someone else meanwhile: named once.
        assert_eq!(
            merged_fixes(&["INC-1", "INC-3"], &["INC-1"], &now),
            ["INC-1", "INC-3"]
        );
    }
}
