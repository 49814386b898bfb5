//! Incidents and reports through the API: `GET|POST /api/v1/incidents`,
//! `GET /api/v1/incidents/{id}` (`{id}` is the id or the `INC-…` number),
//! `POST /api/v1/incidents/{id}/{action}`, `GET|POST /api/v1/reports` and
//! `POST /api/v1/reports/{id}/route`.

use super::{Body, Params, acting_person, bounded, bounded_line, page};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderName};
use muster_domain::FieldErrors;
use muster_domain::auth::Permission;
use muster_domain::catalog::Catalog;
use muster_domain::catalog::graph::ServiceGraph;
use muster_domain::incidents::grouping::MAX_TITLE;
use muster_domain::incidents::reports::NewReport;
use muster_domain::incidents::{Action, Rules, Severity, State as IncidentState, parse_reference};
use muster_domain::renewals::{ExpiredItem, Renewable, expired_items};
use muster_store::catalog::CatalogSnapshot;
use muster_store::incidents::{Act, IncidentDetail, IncidentQuery, NewIncident, Report, Route};
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_NOTE_CHARS: usize = 10_000;
const MAX_SUMMARY_CHARS: usize = 10_000;

/// Reads `{id}`: a number or `INC-<number>`.
pub(crate) fn reference(text: &str) -> ApiResult<i64> {
    parse_reference(text).ok_or_else(|| {
        ApiError::not_found(format!(
            "no incident {text:?}: use its id or its number, e.g. INC-42"
        ))
    })
}

/// What an incident touches: the impacted services (its own, then those its reports
/// name), the services that depend on them (they break too), and the three
/// organisation counts, kept apart — organisations that reported, those that use an
/// impacted or dependent service (from the catalog), and targets still on an expired
/// item the impacted services rest on (from renewals).
pub(crate) struct Reach<'a> {
    pub services: Vec<&'a str>,
    /// Transitive dependents of the impacted services, nearest first.
    pub dependents: Vec<String>,
    pub reported: Vec<&'a str>,
    pub using: Vec<String>,
    pub expired: Vec<ExpiredItem>,
}

impl<'a> Reach<'a> {
    pub fn of(graph: &ServiceGraph, detail: &'a IncidentDetail) -> Reach<'a> {
        let mut services = vec![detail.incident.service.as_str()];
        for service in detail.reports.iter().filter_map(|r| r.service.as_deref()) {
            if !services.contains(&service) {
                services.push(service);
            }
        }
        let mut reported: Vec<&str> = detail
            .reports
            .iter()
            .map(|r| r.organisation.as_str())
            .collect();
        reported.sort_unstable();
        reported.dedup();
        let using = graph.organisations_affected(&services);
        Reach {
            dependents: graph.dependents_of(&services),
            services,
            reported,
            using,
            expired: Vec::new(),
        }
    }

    /// With the expired items the impacted services, or anything they depend on, rest
    /// on, and the targets not yet verified on a renewal of each.
    pub async fn with_expired(
        mut self,
        state: &AppState,
        snapshot: &CatalogSnapshot,
    ) -> ApiResult<Reach<'a>> {
        let mut services: Vec<String> = Vec::new();
        for service in &self.services {
            services.push(service.to_string());
            let below = snapshot.graph.dependencies(service).unwrap_or_default();
            services.extend(below.into_iter().map(|r| r.service));
        }
        let services: Vec<&str> = services.iter().map(String::as_str).collect();
        let renewables = Renewable::of_catalog(&snapshot.catalog);
        let renewals = state.store.renewals_under_way(&renewables).await?;
        let now = state.store.clock().now();
        self.expired = expired_items(&renewables, &renewals, &services, now);
        Ok(self)
    }

    /// Targets still on an expired item, over every such item.
    pub fn on_expired(&self) -> usize {
        self.expired.iter().map(|item| item.targets.len()).sum()
    }

    fn organisations_json(&self) -> Value {
        json!({
            "reported": self.reported.len(),
            "reported_ids": self.reported,
            "using_impacted_services": self.using.len(),
            "using_ids": self.using,
            "targets_on_expired_item": self.on_expired(),
            "expired_items": self.expired,
        })
    }
}

/// An incident as the API shows it, with what it touches.
pub(crate) async fn detail_json(state: &AppState, detail: &IncidentDetail) -> ApiResult<Value> {
    let snapshot = state.store.catalog().await?;
    let reach = Reach::of(&snapshot.graph, detail)
        .with_expired(state, &snapshot)
        .await?;
    let mut body = serde_json::to_value(detail).expect("incidents serialise");
    body["organisations"] = reach.organisations_json();
    body["impacted_services"] = json!(reach.services);
    body["dependent_services"] = json!(reach.dependents);
    Ok(body)
}

/// `GET /api/v1/incidents?status=open|triggered|acknowledged|mitigated|resolved&service=&limit=&cursor=`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    params.only(&["status", "service", "limit", "cursor"])?;
    let limit = params.limit()?;
    if let Some(service) = params.text("service")
        && state
            .store
            .catalog()
            .await?
            .catalog
            .service(service)
            .is_none()
    {
        return Err(ApiError::field(
            "service",
            format!("no service with id {service:?}"),
        ));
    }
    let states = match params.text("status") {
        None | Some("all") => Vec::new(),
        Some("open") => IncidentState::ALL.into_iter().filter(|s| s.is_open()).collect(),
        Some(text) => text
            .split(',')
            .map(|s| {
                IncidentState::parse(s.trim()).ok_or_else(|| {
                    ApiError::field("status", format!("{s:?} is not a status: use open, all, triggered, acknowledged, mitigated or resolved"))
                })
            })
            .collect::<ApiResult<_>>()?,
    };
    let before_id = params.cursor()?;
    let query = IncidentQuery {
        states,
        service: params.text("service").map(str::to_owned),
        before_id,
        limit: limit + 1,
    };
    let mut items = state.store.incidents(&query).await?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| i.id.to_string())
    } else {
        None
    };
    Ok(Json(page(items, next)))
}

/// `GET /api/v1/incidents/{id}`
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let number = reference(&id)?;
    let detail = state
        .store
        .incident(number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id:?}")))?;
    Ok(Json(detail_json(&state, &detail).await?))
}

fn severity(errors: &mut FieldErrors, text: Option<&str>) -> Severity {
    match text {
        None => Severity::Major,
        Some(s) => Severity::parse(s).unwrap_or_else(|| {
            errors.push(
                "severity",
                format!("{s:?} is not a severity: use critical, major or minor"),
            );
            Severity::Major
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Declared {
    service: String,
    title: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

/// `POST /api/v1/incidents`: declares an incident by hand; its service's owner team is
/// paged at once.
pub async fn declare(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<(StatusCode, [(HeaderName, String); 1], Json<Value>)> {
    let declared: Declared = body.parse()?;
    let snapshot = state.store.catalog().await?;
    let catalog = &snapshot.catalog;
    let mut errors = FieldErrors::default();
    let service = catalog.service(&declared.service);
    if service.is_none() {
        errors.push(
            "service",
            format!("no service with id {:?}", declared.service),
        );
    }
    caller.require(Permission::Respond, service.map(|s| s.owner.as_str()))?;
    bounded_line(&mut errors, "title", &declared.title, MAX_TITLE, true);
    bounded(
        &mut errors,
        "summary",
        &declared.summary,
        MAX_SUMMARY_CHARS,
        false,
    );
    let severity = severity(&mut errors, declared.severity.as_deref());
    let by = acting_person(catalog, &caller, declared.by.as_deref(), &mut errors);
    if !errors.0.is_empty() {
        return Err(ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors));
    }
    let new = NewIncident {
        service: declared.service.clone(),
        title: declared.title.trim().to_string(),
        summary: declared.summary,
        severity,
        by,
        team: service.map(|s| s.owner.clone()),
    };
    let incident = state.store.declare_incident(&caller.actor(), &new).await?;
    let detail = state
        .store
        .incident(incident.id)
        .await?
        .ok_or_else(|| ApiError::internal("declared incident vanished"))?;
    let location = format!("/api/v1/incidents/{}", detail.incident.number);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(detail_json(&state, &detail).await?),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionBody {
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub into: Option<String>,
}

/// Acts on incident `number` as the API and the incident page both do: checks the
/// caller's rights and the body (naming each bad field), then applies it.
pub(crate) async fn apply_action(
    state: &AppState,
    caller: &Caller,
    number: i64,
    action: Action,
    request: ActionBody,
) -> ApiResult<()> {
    let snapshot = state.store.catalog().await?;
    let catalog = &snapshot.catalog;
    let current = state.store.incident(number).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no incident {}",
            muster_domain::incidents::number(number)
        ))
    })?;
    let service = catalog.service(&current.incident.service);
    caller.require(Permission::Respond, service.map(|s| s.owner.as_str()))?;
    let mut errors = FieldErrors::default();
    let by = acting_person(catalog, caller, request.by.as_deref(), &mut errors);
    if let Some(reason) = &request.reason {
        bounded(&mut errors, "reason", reason, MAX_NOTE_CHARS, false);
    }
    let act = match action {
        Action::Acknowledge => Act::Acknowledge,
        Action::Mitigate => Act::Mitigate,
        Action::Resolve => Act::Resolve {
            refire_after: service.map(Rules::of).unwrap_or_default().refire_after,
        },
        Action::Note => {
            let text = request.text.clone().unwrap_or_default();
            bounded(&mut errors, "text", &text, MAX_NOTE_CHARS, true);
            Act::Note(text)
        }
        Action::Severity => {
            if request.severity.is_none() {
                errors.push("severity", "is required: critical, major or minor");
            }
            Act::Severity(severity(&mut errors, request.severity.as_deref()))
        }
        Action::Merge => match request.into.as_deref().map(parse_reference) {
            Some(Some(into)) => {
                // Merging writes to both incidents: the caller must answer for both.
                if let Some(target) = state.store.incident(into).await? {
                    let owner = catalog.service(&target.incident.service);
                    caller.require(Permission::Respond, owner.map(|s| s.owner.as_str()))?;
                }
                Act::Merge { into }
            }
            Some(None) => {
                errors.push("into", "must be an incident id or number, e.g. INC-42");
                Act::Merge { into: 0 }
            }
            None => {
                errors.push("into", "is required: the incident to merge into");
                Act::Merge { into: 0 }
            }
        },
    };
    if !errors.0.is_empty() {
        return Err(ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors));
    }
    let reason = request
        .reason
        .filter(|r| !r.trim().is_empty())
        .or(caller.reason.clone());
    let actor = caller.actor().with_reason(reason);
    state
        .store
        .act_on_incident(&actor, number, &by, &act)
        .await?;
    Ok(())
}

/// `POST /api/v1/incidents/{id}/{action}` with `{by, reason, …}`: `acknowledge`,
/// `mitigate`, `resolve`, `note` (`text`), `severity` (`severity`), `merge` (`into`).
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let action = Action::parse(&action).map_err(ApiError::not_found)?;
    let number = reference(&id)?;
    let request: ActionBody = body.parse_or_default()?;
    apply_action(&state, &caller, number, action, request).await?;
    let detail = state
        .store
        .incident(number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id:?}")))?;
    Ok(Json(detail_json(&state, &detail).await?))
}

/// The team a report is about, for the caller's rights: the owner of the service it
/// names. A report naming no service (or an unknown one) needs a responder not limited
/// to one team, since it may land in any team's incident.
pub(crate) fn report_team<'a>(catalog: &'a Catalog, report: &NewReport) -> Option<&'a str> {
    report
        .service
        .as_deref()
        .and_then(|s| catalog.service(s))
        .map(|s| s.owner.as_str())
}

/// Checks a report against the catalog, naming the field at fault.
pub(crate) fn check_report(catalog: &Catalog, report: &NewReport) -> ApiResult<()> {
    report
        .validate()
        .map_err(|e| ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let mut errors = FieldErrors::default();
    if !catalog
        .organisations
        .iter()
        .any(|o| o.id == report.organisation)
    {
        errors.push(
            "organisation",
            format!("no organisation with id {:?}", report.organisation),
        );
    }
    if let Some(service) = &report.service
        && catalog.service(service).is_none()
    {
        errors.push("service", format!("no service with id {service:?}"));
    }
    errors
        .into_result(())
        .map_err(|e| ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, e))
}

fn report_json(report: &Report) -> Value {
    let mut body = serde_json::to_value(report).expect("reports serialise");
    body["incident"] = json!(report.incident_id.map(muster_domain::incidents::number));
    body
}

/// `POST /api/v1/reports`: records a customer or helpdesk report and places it.
pub async fn create_report(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let report: NewReport = body.parse()?;
    let snapshot = state.store.catalog().await?;
    caller.require(Permission::Respond, report_team(&snapshot.catalog, &report))?;
    check_report(&snapshot.catalog, &report)?;
    let stored = state
        .store
        .add_report(&caller.actor(), &snapshot.catalog, &report)
        .await?;
    Ok((StatusCode::CREATED, Json(report_json(&stored))))
}

/// `GET /api/v1/reports?incident=INC-n&limit=`: the reports in an incident, or without
/// `incident` those waiting in triage; newest first.
pub async fn list_reports(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    params.only(&["incident", "limit"])?;
    let incident = params
        .text("incident")
        .map(|t| {
            parse_reference(t).ok_or_else(|| {
                ApiError::field("incident", format!("{t:?} is not an incident id or number"))
            })
        })
        .transpose()?;
    let reports = state.store.reports(incident, params.limit()?).await?;
    // Only an empty answer needs to know whether the incident exists.
    if let Some(id) = incident
        && reports.is_empty()
        && state.store.incident(id).await?.is_none()
    {
        return Err(ApiError::not_found(format!(
            "no incident {}",
            muster_domain::incidents::number(id)
        )));
    }
    Ok(Json(page(reports.iter().map(report_json).collect(), None)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteBody {
    #[serde(default)]
    incident: Option<String>,
    #[serde(default)]
    service: Option<String>,
}

/// `POST /api/v1/reports/{id}/route` with `{incident}` or `{service}`: a person sends a
/// waiting report on.
pub async fn route_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Respond, None)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no report {id:?}")))?;
    let request: RouteBody = body.parse()?;
    let snapshot = state.store.catalog().await?;
    let route = match (request.incident.as_deref(), request.service) {
        (Some(incident), None) => Route::Incident(parse_reference(incident).ok_or_else(|| {
            ApiError::field(
                "incident",
                format!("{incident:?} is not an incident id or number"),
            )
        })?),
        (None, Some(service)) if snapshot.catalog.service(&service).is_some() => {
            Route::Service(service)
        }
        (None, Some(service)) => {
            return Err(ApiError::invalid(
                StatusCode::UNPROCESSABLE_ENTITY,
                muster_domain::FieldError::new(
                    "service",
                    format!("no service with id {service:?}"),
                )
                .into(),
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `incident` and `service`",
            ));
        }
    };
    let report = state
        .store
        .route_report(&caller.actor(), &snapshot.catalog, id, &route)
        .await?;
    Ok(Json(report_json(&report)))
}
