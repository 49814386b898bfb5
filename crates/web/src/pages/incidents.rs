//! Incident pages: the list (updating by itself), one incident with its signals,
//! organisation counts, timeline and actions, and the triage queue of waiting reports
//! with the helpdesk's report form.

use super::{Nav, PageResult, TimeView, Viewer, fail, missing, refused};
use crate::AppState;
use crate::api::Params;
use crate::api::incidents::{
    ActionBody, Reach, apply_action, check_report, reference, report_team,
};
use crate::error::ApiError;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use muster_domain::incidents::reports::{CHANNELS, NewReport};
use muster_domain::incidents::{Action, State as IncidentState, parse_reference};
use muster_store::changes::IncidentLink;
use muster_store::incidents::{Incident, IncidentQuery, Route};
use serde::Deserialize;

/// Most incidents the list shows.
const MAX_ROWS: usize = 200;

pub struct IncidentRow {
    number: String,
    state: &'static str,
    severity: &'static str,
    title: String,
    service: String,
    opened: TimeView,
    opened_by: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "incident_rows.html")]
struct Rows {
    rows: Vec<IncidentRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "incidents.html")]
struct ListPage {
    nav: Nav,
    rows: Vec<IncidentRow>,
    status: String,
    open: usize,
    waiting: usize,
}

/// `GET /incidents?status=open|resolved|all[&rows=1]`: `rows` answers only the table
/// rows, which the page refetches to stay current.
pub async fn list(State(state): State<AppState>, viewer: Viewer, params: Params) -> PageResult {
    let status = params.text("status").unwrap_or("open").to_string();
    let states = match status.as_str() {
        "open" => IncidentState::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .collect(),
        "all" => Vec::new(),
        other => match IncidentState::parse(other) {
            Some(s) => vec![s],
            None => {
                return Err(refused(
                    &viewer,
                    ApiError::field("status", "use open, resolved or all"),
                ));
            }
        },
    };
    let query = IncidentQuery {
        states,
        service: None,
        before_id: None,
        limit: MAX_ROWS,
    };
    let incidents = state.store.incidents(&query).await.map_err(fail)?;
    let now = state.store.clock().now();
    let rows: Vec<IncidentRow> = incidents
        .iter()
        .map(|i: &Incident| IncidentRow {
            number: i.number.clone(),
            state: i.state.as_str(),
            severity: i.severity.as_str(),
            title: i.title.clone(),
            service: i.service.clone(),
            opened: viewer.time(i.opened_at, now),
            opened_by: i.opened_by.clone(),
        })
        .collect();
    if params.bool("rows").unwrap_or(false) {
        return Ok(Rows { rows }.into_response());
    }
    let open = if status == "open" { rows.len() } else { 0 };
    let waiting = state.store.reports(None, 1000).await.map_err(fail)?.len();
    Ok(ListPage {
        nav: viewer.nav("/incidents"),
        rows,
        status,
        open,
        waiting,
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "incident.html")]
struct DetailPage {
    nav: Nav,
    i: Incident,
    error: Option<String>,
    opened: TimeView,
    reported: usize,
    using: usize,
    services: String,
    /// The services that depend on them, comma-separated (empty when none).
    dependents: String,
    /// Targets still on an expired item, and the items' names.
    on_expired: usize,
    expired_items: String,
    open: bool,
    can_acknowledge: bool,
    can_mitigate: bool,
    next_step: Option<String>,
    alerts: Vec<(i64, String, bool, String)>,
    /// (id, organisation, channel, summary, received, details).
    reports: Vec<(i64, String, String, String, String, String)>,
    timeline: Vec<(TimeView, String, String, String)>,
    /// "Changes near this": (change number, label, who and when, path, unscheduled).
    near: Vec<(Option<String>, String, String, String, bool)>,
    /// Changes linked to it: its causes and its fixes.
    linked: Vec<muster_store::incidents::LinkedChange>,
}

async fn detail_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    error: Option<String>,
) -> PageResult {
    let number = reference(id).map_err(|e| refused(viewer, e))?;
    let Some(detail) = state.store.incident(number).await.map_err(fail)? else {
        return Err(missing(viewer, format!("No incident {id}.")));
    };
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let now = state.store.clock().now();
    let reach = Reach::of(&snapshot.graph, &detail)
        .with_expired(state, &snapshot)
        .await
        .map_err(fail)?;
    let (reported, using, services, dependents) = (
        reach.reported.len(),
        reach.using.len(),
        reach.services.join(", "),
        reach.dependents.join(", "),
    );
    let on_expired = reach.on_expired();
    let expired_items = reach
        .expired
        .iter()
        .map(|item| item.name.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let near = crate::api::changes::near_view(state, number, id)
        .await
        .map_err(fail)?;
    let near = near["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            let text = |key: &str| w[key].as_str().unwrap_or_default().to_string();
            let at = w["at"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .map(|at| viewer.time(at, now).relative)
                .unwrap_or_default();
            let state = w["state"]
                .as_str()
                .map(|s| format!("{}, ", s.replace('_', " ")))
                .unwrap_or_default();
            let path: Vec<&str> = w["path"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str())
                .collect();
            match w["number"].as_str() {
                Some(number) => (
                    Some(number.to_string()),
                    format!("{number} {}", text("title")),
                    format!("{state}{} · started {at}", text("who")),
                    path.join(" → "),
                    false,
                ),
                None => (
                    None,
                    format!("change event: {}", text("title")),
                    format!("{} · {at}", text("who")),
                    path.join(" → "),
                    w["unscheduled"].as_bool().unwrap_or(false),
                ),
            }
        })
        .collect();
    let i = &detail.incident;
    let page = DetailPage {
        near,
        linked: detail.changes.clone(),
        nav: viewer.nav("/incidents"),
        error,
        opened: viewer.time(i.opened_at, now),
        reported,
        using,
        services,
        dependents,
        on_expired,
        expired_items,
        open: i.state.is_open(),
        can_acknowledge: i.state == IncidentState::Triggered,
        can_mitigate: matches!(
            i.state,
            IncidentState::Triggered | IncidentState::Acknowledged
        ),
        next_step: detail.next_step.as_ref().map(|n| {
            let at = viewer.time(n.due_at, now);
            format!(
                "step {} of pass {} at {} ({})",
                n.step + 1,
                n.pass + 1,
                at.local,
                at.relative
            )
        }),
        alerts: detail
            .alerts
            .iter()
            .map(|a| {
                let name = a
                    .labels
                    .get("alertname")
                    .cloned()
                    .unwrap_or_else(|| a.fingerprint.clone());
                (a.id, name, a.firing, viewer.time(a.starts_at, now).relative)
            })
            .collect(),
        reports: detail
            .reports
            .iter()
            .map(|r| {
                (
                    r.id,
                    r.organisation.clone(),
                    r.channel.clone(),
                    r.summary.clone(),
                    viewer.time(r.received_at, now).relative,
                    r.details.clone(),
                )
            })
            .collect(),
        timeline: detail
            .timeline
            .iter()
            .map(|t| {
                (
                    viewer.time(t.at, now),
                    t.kind.clone(),
                    t.actor.clone(),
                    t.text.clone(),
                )
            })
            .collect(),
        i: detail.incident,
    };
    // A refused action shows the page again with the reason, as a refused form does.
    let status = if page.error.is_some() {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, page).into_response())
}

/// `GET /incidents/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    detail_page(&state, &viewer, &id, None).await
}

#[derive(Deserialize)]
pub struct ActForm {
    csrf: String,
    action: String,
    #[serde(default)]
    text: String,
}

/// `POST /incidents/{id}/act`: acknowledge, mitigate, resolve (the text is the
/// reason) or add a note (the text is the note).
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
    let action =
        Action::parse(&form.action).map_err(|e| refused(&viewer, ApiError::bad_request(e)))?;
    let text = Some(form.text.trim().to_string()).filter(|t| !t.is_empty());
    let body = match action {
        Action::Note => ActionBody {
            text,
            ..ActionBody::default()
        },
        _ => ActionBody {
            reason: text,
            ..ActionBody::default()
        },
    };
    match apply_action(&state, &viewer.caller(), number, action, body).await {
        Ok(()) => Ok(Redirect::to(&format!("/incidents/{id}")).into_response()),
        Err(e) => detail_page(&state, &viewer, &id, Some(e.detail)).await,
    }
}

#[derive(Deserialize)]
pub struct CauseForm {
    csrf: String,
    change: String,
    #[serde(default)]
    reason: String,
}

/// `POST /incidents/{id}/caused-by`: marks the incident as caused by a change listed
/// under "changes near this".
pub async fn caused_by(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CauseForm>,
) -> PageResult {
    link_change(&state, &viewer, &id, form, IncidentLink::CausedBy, "#near").await
}

/// `POST /incidents/{id}/fixed-by`: links a change, by its number, as a fix for the
/// incident.
pub async fn fixed_by(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CauseForm>,
) -> PageResult {
    link_change(
        &state,
        &viewer,
        &id,
        form,
        IncidentLink::FixedBy,
        "#changes",
    )
    .await
}

/// Links the incident to the change the form names, then shows the page at `anchor`.
async fn link_change(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    form: CauseForm,
    link: IncidentLink,
    anchor: &str,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(viewer, e))?;
    let number = reference(id).map_err(|e| refused(viewer, e))?;
    let body = super::api_body(serde_json::json!({
        "change": form.change.trim(),
        "reason": Some(form.reason.trim()).filter(|r| !r.is_empty()),
    }));
    match crate::api::changes::link_change(state, &viewer.caller(), number, id, &body, link).await {
        Ok(_) => Ok(Redirect::to(&format!("/incidents/{id}{anchor}")).into_response()),
        Err(e) => detail_page(state, viewer, id, Some(super::problems(&e).join("; "))).await,
    }
}

pub struct WaitingRow {
    id: i64,
    summary: String,
    details: String,
    organisation: String,
    service: String,
    channel: String,
    reporter: String,
    received: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "reports.html")]
struct ReportsPage {
    nav: Nav,
    error: Option<String>,
    rows: Vec<WaitingRow>,
    open: Vec<(String, String)>,
    services: Vec<String>,
    organisations: Vec<(String, String)>,
    channels: [&'static str; 6],
}

async fn reports_page(
    state: &AppState,
    viewer: &Viewer,
    error: Option<String>,
) -> Result<Response, Response> {
    let now = state.store.clock().now();
    let waiting = state.store.reports(None, 500).await.map_err(fail)?;
    let open_states = IncidentState::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .collect();
    let query = IncidentQuery {
        states: open_states,
        service: None,
        before_id: None,
        limit: MAX_ROWS,
    };
    let open = state.store.incidents(&query).await.map_err(fail)?;
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let status = if error.is_some() {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        axum::http::StatusCode::OK
    };
    let page = ReportsPage {
        nav: viewer.nav("/incidents"),
        error,
        rows: waiting
            .into_iter()
            .map(|r| WaitingRow {
                id: r.id,
                summary: r.summary,
                details: r.details,
                organisation: r.organisation,
                service: r.service.unwrap_or_else(|| "not known".into()),
                channel: r.channel,
                reporter: r.reporter,
                received: viewer.time(r.received_at, now).relative,
            })
            .collect(),
        open: open.into_iter().map(|i| (i.number, i.title)).collect(),
        services: snapshot
            .catalog
            .services
            .iter()
            .map(|s| s.id.clone())
            .collect(),
        organisations: snapshot
            .catalog
            .organisations
            .iter()
            .map(|o| (o.id.clone(), o.name.clone()))
            .collect(),
        channels: CHANNELS,
    };
    Ok((status, page).into_response())
}

/// `GET /reports`: the triage queue and the report form.
pub async fn reports(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    reports_page(&state, &viewer, None).await
}

#[derive(Deserialize)]
pub struct ReportForm {
    csrf: String,
    organisation: String,
    #[serde(default)]
    service: String,
    summary: String,
    #[serde(default)]
    details: String,
    #[serde(default)]
    reporter: String,
    channel: String,
}

/// `POST /reports`: records a report from the form; it lands where the API would put it.
pub async fn create_report(
    State(state): State<AppState>,
    viewer: Viewer,
    axum::Form(form): axum::Form<ReportForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    let caller = viewer.caller();
    let report = NewReport {
        organisation: form.organisation,
        service: Some(form.service).filter(|s| !s.is_empty()),
        summary: form.summary,
        details: form.details,
        reporter: form.reporter,
        channel: form.channel,
    };
    let snapshot = state.store.catalog().await.map_err(fail)?;
    caller
        .require(
            muster_domain::auth::Permission::Respond,
            report_team(&snapshot.catalog, &report),
        )
        .map_err(|e| refused(&viewer, e))?;
    if let Err(e) = check_report(&snapshot.catalog, &report) {
        return reports_page(&state, &viewer, Some(e.detail)).await;
    }
    let stored = state
        .store
        .add_report(&caller.actor(), &snapshot.catalog, &report)
        .await
        .map_err(fail)?;
    let to = match stored.incident_id {
        Some(incident) => format!("/incidents/{}", muster_domain::incidents::number(incident)),
        None => "/reports".to_string(),
    };
    Ok(Redirect::to(&to).into_response())
}

#[derive(Deserialize)]
pub struct RouteForm {
    csrf: String,
    /// `incident:INC-n` or `service:ID`.
    target: String,
}

/// `POST /reports/{id}/route`.
pub async fn route(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<RouteForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    let caller = viewer.caller();
    caller
        .require(muster_domain::auth::Permission::Respond, None)
        .map_err(|e| refused(&viewer, e))?;
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let route = match form.target.split_once(':') {
        Some(("incident", number)) => parse_reference(number).map(Route::Incident),
        Some(("service", service)) if snapshot.catalog.service(service).is_some() => {
            Some(Route::Service(service.to_string()))
        }
        _ => None,
    };
    let Some(route) = route else {
        return reports_page(
            &state,
            &viewer,
            Some(format!(
                "{:?} is not an open incident or a service",
                form.target
            )),
        )
        .await;
    };
    match state
        .store
        .route_report(&caller.actor(), &snapshot.catalog, id, &route)
        .await
    {
        Ok(_) => Ok(Redirect::to("/reports").into_response()),
        Err(e) => reports_page(&state, &viewer, Some(ApiError::from(e).detail)).await,
    }
}
