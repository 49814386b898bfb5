//! Alert pages: the alerts (filtered by service, label matchers and state), silences
//! (made and expired here), and a service's integration keys.

use super::{CsrfForm, Nav, PageResult, TimeView, Viewer, fail, missing, refused};
use crate::AppState;
use crate::api::Params;
use crate::api::signals::Selection;
use crate::compat::Intake;
use crate::compat::alertmanager::{expire_silence, save_silence};
use crate::error::ApiError;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use jiff::{SignedDuration, Timestamp};
use muster_domain::auth::Permission;
use muster_domain::clock::parse_duration;
use muster_domain::signals::KeyScope;
use muster_domain::signals::matchers::Matcher;
use muster_domain::signals::postable::AmError;
use muster_domain::signals::silences::{Silence, State as SilenceState};
use muster_store::signals::{AlertQuery, IntegrationKey};
use serde::Deserialize;

fn forbidden(viewer: &Viewer, what: &str, permission: Permission) -> Response {
    refused(
        viewer,
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{what} needs a role that may {}.", permission.describe()),
        ),
    )
}

fn as_intake(viewer: &Viewer) -> Intake {
    Intake::User(viewer.caller())
}

pub struct AlertRow {
    id: i64,
    state: &'static str,
    name: String,
    labels: String,
    summary: String,
    service: String,
    started: TimeView,
    ends: Option<TimeView>,
    source: String,
    silenced_by: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "alerts.html")]
struct AlertsPage {
    nav: Nav,
    rows: Vec<AlertRow>,
    service: String,
    filter: String,
    state: String,
    services: Vec<String>,
    firing: usize,
    silenced: usize,
}

/// `GET /alerts?service=&filter=&state=firing|silenced|resolved|all`.
/// Most alerts the page lists.
const MAX_ROWS: usize = 500;

pub async fn list(State(state): State<AppState>, viewer: Viewer, params: Params) -> PageResult {
    let selection = Selection::from_params(&params).map_err(|e| refused(&viewer, e))?;
    let now = state.store.clock().now();
    let rows: Vec<AlertRow> = selection
        .alerts(&state, MAX_ROWS)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|listed| {
            let a = &listed.alert;
            let mut labels = a.alert.labels.clone();
            let name = labels
                .remove("alertname")
                .unwrap_or_else(|| a.dedup_key.clone().unwrap_or_default());
            AlertRow {
                id: a.id,
                state: listed.state,
                name,
                labels: labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                summary: a
                    .alert
                    .annotations
                    .get("summary")
                    .or(a.alert.annotations.get("description"))
                    .cloned()
                    .unwrap_or_default(),
                service: a.service.clone(),
                started: viewer.time(a.alert.starts_at, now),
                ends: a.alert.ends_at.map(|e| viewer.time(e, now)),
                source: a.source.clone(),
                silenced_by: listed.silenced_by,
            }
        })
        .collect();
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let page = AlertsPage {
        nav: viewer.nav("/alerts"),
        firing: rows.iter().filter(|r| r.state == "firing").count(),
        silenced: rows.iter().filter(|r| r.state == "silenced").count(),
        rows,
        service: selection.service.clone().unwrap_or_default(),
        filter: selection.filter.clone(),
        state: selection.state.clone(),
        services: snapshot
            .catalog
            .services
            .iter()
            .map(|s| s.id.clone())
            .collect(),
    };
    Ok(page.into_response())
}

pub struct SilenceRow {
    id: String,
    state: &'static str,
    matchers: String,
    scope: String,
    starts: TimeView,
    ends: TimeView,
    created_by: String,
    comment: String,
    expirable: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "silences.html")]
struct SilencesPage {
    nav: Nav,
    rows: Vec<SilenceRow>,
    matchers: String,
    duration: String,
    comment: String,
    error: Option<String>,
    may_silence: bool,
}

async fn silences_page(
    state: &AppState,
    viewer: &Viewer,
    form: Option<&SilenceForm>,
    error: Option<String>,
) -> PageResult {
    let now = state.store.clock().now();
    let mut list = state.store.silences(None).await.map_err(fail)?;
    list.sort_by_key(|s| {
        (
            s.state(now) == SilenceState::Expired,
            std::cmp::Reverse(s.updated_at),
        )
    });
    let rows = list
        .iter()
        .map(|s| SilenceRow {
            id: s.id.clone(),
            state: s.state(now).as_str(),
            matchers: s
                .matchers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            scope: s.service.clone().unwrap_or_else(|| "every service".into()),
            starts: viewer.time(s.starts_at, now),
            ends: viewer.time(s.ends_at, now),
            created_by: s.created_by.clone(),
            comment: s.comment.clone(),
            expirable: s.state(now) != SilenceState::Expired,
        })
        .collect();
    let page = SilencesPage {
        nav: viewer.nav("/alerts"),
        rows,
        matchers: form.map(|f| f.matchers.clone()).unwrap_or_default(),
        duration: form.map_or("2h".into(), |f| f.duration.clone()),
        comment: form.map(|f| f.comment.clone()).unwrap_or_default(),
        may_silence: viewer.principal.grant.allows(Permission::Respond, None),
        error: error.clone(),
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, page).into_response())
}

pub async fn silences(State(state): State<AppState>, viewer: Viewer, params: Params) -> PageResult {
    let prefill = params.text("matchers").map(|m| SilenceForm {
        csrf: String::new(),
        matchers: m.to_string(),
        duration: "2h".into(),
        comment: String::new(),
    });
    silences_page(&state, &viewer, prefill.as_ref(), None).await
}

#[derive(Deserialize)]
pub struct SilenceForm {
    csrf: String,
    matchers: String,
    duration: String,
    comment: String,
}

/// The longest silence made from the page; longer ones through the API.
const MAX_SILENCE: SignedDuration = SignedDuration::from_hours(24 * 30);

fn silence_from_form(
    form: &SilenceForm,
    viewer: &Viewer,
    now: Timestamp,
) -> Result<Silence, String> {
    let matchers = Matcher::parse_list(&form.matchers).map_err(|e| format!("Matchers: {e}"))?;
    let duration = parse_duration(&form.duration)
        .ok()
        .filter(|d| d.is_positive() && *d <= MAX_SILENCE)
        .ok_or_else(|| {
            format!(
                "Duration: {:?} is not a duration from 1m to 30d (e.g. 2h)",
                form.duration
            )
        })?;
    if form.comment.trim().is_empty() {
        return Err("Comment: say why, so others know whether it may be lifted.".into());
    }
    Ok(Silence {
        id: String::new(),
        service: None,
        matchers,
        starts_at: now,
        ends_at: now + duration,
        created_by: viewer
            .principal
            .label
            .trim_start_matches("user:")
            .to_string(),
        comment: form.comment.trim().to_string(),
        updated_at: now,
    })
}

/// `POST /silences`: a new silence from the form, by the signed-in responder.
pub async fn create_silence(
    State(state): State<AppState>,
    viewer: Viewer,
    axum::Form(form): axum::Form<SilenceForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    if !viewer.principal.grant.allows(Permission::Respond, None) {
        return Err(forbidden(&viewer, "Silencing alerts", Permission::Respond));
    }
    let now = state.store.clock().now();
    let silence = match silence_from_form(&form, &viewer, now) {
        Ok(s) => s,
        Err(e) => return silences_page(&state, &viewer, Some(&form), Some(e)).await,
    };
    match save_silence(&state, &as_intake(&viewer), silence).await {
        Ok(_) => Ok(Redirect::to("/silences").into_response()),
        Err(AmError::Invalid(e)) => silences_page(&state, &viewer, Some(&form), Some(e)).await,
        Err(e) => Err(refused(&viewer, ApiError::internal(e.message()))),
    }
}

/// `POST /silences/{id}/expire`.
pub async fn expire(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    if !viewer.principal.grant.allows(Permission::Respond, None) {
        return Err(forbidden(&viewer, "Expiring silences", Permission::Respond));
    }
    let Some(silence) = state.store.silence(&id).await.map_err(fail)? else {
        return Ok(missing(
            &viewer,
            format!("There is no silence with id “{id}”."),
        ));
    };
    match expire_silence(&state, &as_intake(&viewer), &silence).await {
        Ok(()) => Ok(Redirect::to("/silences").into_response()),
        Err(e) => Err(refused(
            &viewer,
            ApiError::new(StatusCode::CONFLICT, e.message()),
        )),
    }
}

pub struct KeyRow {
    id: String,
    name: String,
    hint: String,
    created: TimeView,
    created_by: String,
    revoked: Option<TimeView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "service_intake.html")]
struct IntakePage {
    nav: Nav,
    service: String,
    service_name: String,
    keys: Vec<KeyRow>,
    new_key: Option<String>,
    public_url: String,
    may_edit: bool,
    firing: usize,
}

async fn intake_page(
    state: &AppState,
    viewer: &Viewer,
    service: &str,
    new_key: Option<String>,
) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let Some(found) = snapshot.catalog.service(service) else {
        return Ok(missing(
            viewer,
            format!("There is no service with id “{service}”."),
        ));
    };
    let now = state.store.clock().now();
    let keys = state
        .store
        .integration_keys(Some(service))
        .await
        .map_err(fail)?;
    let firing = state
        .store
        .alerts(&AlertQuery {
            service: Some(service.to_string()),
            ..AlertQuery::default()
        })
        .await
        .map_err(fail)?
        .len();
    let page = IntakePage {
        nav: viewer.nav("/services"),
        service: service.to_string(),
        service_name: found.name.clone(),
        keys: keys
            .iter()
            .map(|k: &IntegrationKey| KeyRow {
                id: k.id.clone(),
                name: k.name.clone(),
                hint: k.hint.clone(),
                created: viewer.time(k.created_at, now),
                created_by: k.created_by.clone(),
                revoked: k.revoked_at.map(|r| viewer.time(r, now)),
            })
            .collect(),
        new_key,
        public_url: state.public_url.clone(),
        may_edit: viewer
            .principal
            .grant
            .allows(Permission::Edit, Some(&found.owner)),
        firing,
    };
    Ok(page.into_response())
}

/// `GET /services/{id}/intake`: the service's integration keys and how to use them.
pub async fn intake(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    intake_page(&state, &viewer, &id, None).await
}

#[derive(Deserialize)]
pub struct KeyForm {
    csrf: String,
    name: String,
}

/// Refuses unless the viewer may edit the service's keys (an editor of its owner
/// team); a missing service is a "not found" page.
async fn check_key_editor(
    state: &AppState,
    viewer: &Viewer,
    service: &str,
    what: &str,
) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let Some(owner) = snapshot.catalog.service(service).map(|s| s.owner.clone()) else {
        return Err(missing(
            viewer,
            format!("There is no service with id “{service}”."),
        ));
    };
    if !viewer
        .principal
        .grant
        .allows(Permission::Edit, Some(&owner))
    {
        return Err(forbidden(viewer, what, Permission::Edit));
    }
    Ok(StatusCode::OK.into_response())
}

/// `POST /services/{id}/integration-keys`: the new key is shown on this answer only.
pub async fn create_key(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<KeyForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    check_key_editor(&state, &viewer, &id, "Making integration keys").await?;
    let name = crate::api::signals::key_name(&form.name)
        .map_err(|e| refused(&viewer, ApiError::field("name", e)))?;
    let (_, secret) = state
        .store
        .create_integration_key(
            &as_intake(&viewer).actor(),
            &name,
            KeyScope::Service {
                service: id.clone(),
            },
        )
        .await
        .map_err(fail)?;
    intake_page(&state, &viewer, &id, Some(secret)).await
}

/// `POST /services/{id}/integration-keys/{key_id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, key)): Path<(String, String)>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    check_key_editor(&state, &viewer, &id, "Revoking integration keys").await?;
    state
        .store
        .revoke_integration_key(&as_intake(&viewer).actor(), Some(&id), &key)
        .await
        .map_err(|e| refused(&viewer, ApiError::from(e)))?;
    Ok(Redirect::to(&format!(
        "/services/{}/intake",
        percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC)
    ))
    .into_response())
}
