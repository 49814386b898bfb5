//! Alert intake's own API: integration keys (per service, and global ones made by
//! admins), alerts with their history, and the change events PagerDuty senders post.

use super::{Body, Params, page};
use crate::AppState;
use crate::auth::Caller;
use crate::compat::alertmanager::{active_silences, silenced_by};
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_domain::FieldErrors;
use muster_domain::auth::Permission;
use muster_domain::signals::matchers::Matcher;
use muster_domain::signals::silences::Silence;
use muster_domain::signals::{DEFAULT_SERVICE_LABEL, KeyScope, labels::valid_name};
use muster_store::signals::{AlertQuery, IntegrationKey, StoredAlert};
use serde_json::{Value, json};

const MAX_NAME_CHARS: usize = 100;
/// Most alert instances read to answer one filtered query over history.
const MAX_HISTORY_SCAN: usize = 10_000;

/// The owner team of a service, or 404.
async fn owner(state: &AppState, service: &str) -> ApiResult<String> {
    let snapshot = state.store.catalog().await?;
    snapshot
        .catalog
        .service(service)
        .map(|s| s.owner.clone())
        .ok_or_else(|| ApiError::not_found(format!("no service with id {service:?}")))
}

/// A key's name: what sends with it. Shared by the API and the service's intake page.
pub(crate) fn key_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "must be 1 to {MAX_NAME_CHARS} characters without control characters, naming what sends with this key (e.g. \"prometheus-eu\")"
        ));
    }
    Ok(name.to_string())
}

fn body_key_name(body: &Value, errors: &mut FieldErrors) -> String {
    match key_name(body.get("name").and_then(Value::as_str).unwrap_or("")) {
        Ok(name) => name,
        Err(e) => {
            errors.push("name", e);
            String::new()
        }
    }
}

fn created(key: IntegrationKey, secret: String) -> Response {
    let mut body = serde_json::to_value(&key).expect("keys serialise");
    body["key"] = json!(secret);
    body["note"] = json!("the key is shown only now; Muster keeps only its hash");
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `POST /api/v1/services/{id}/integration-keys` `{name}`: editors of the owner team.
pub async fn create_service_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(service): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let team = owner(&state, &service).await?;
    caller.require(Permission::Edit, Some(&team))?;
    let body = body.value()?;
    let mut errors = FieldErrors::default();
    let name = body_key_name(&body, &mut errors);
    errors.into_result(())?;
    let (key, secret) = state
        .store
        .create_integration_key(&caller.actor(), &name, KeyScope::Service { service })
        .await?;
    Ok(created(key, secret))
}

pub async fn service_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(service): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    owner(&state, &service).await?;
    let keys = state.store.integration_keys(Some(&service)).await?;
    Ok(Json(page(keys, None)))
}

pub async fn revoke_service_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((service, id)): Path<(String, String)>,
) -> ApiResult<Json<IntegrationKey>> {
    let team = owner(&state, &service).await?;
    caller.require(Permission::Edit, Some(&team))?;
    let key = state
        .store
        .revoke_integration_key(&caller.actor(), Some(&service), &id)
        .await?;
    Ok(Json(key))
}

/// `POST /api/v1/integration-keys` `{name, fallback_service, service_label}`: admins.
pub async fn create_global_key(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Permission::Admin, None)?;
    let body = body.value()?;
    let mut errors = FieldErrors::default();
    let name = body_key_name(&body, &mut errors);
    let label = match body.get("service_label") {
        None | Some(Value::Null) => DEFAULT_SERVICE_LABEL.to_string(),
        Some(Value::String(l)) if valid_name(l) => l.clone(),
        Some(_) => {
            errors.push(
                "service_label",
                "must be a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
            );
            String::new()
        }
    };
    let snapshot = state.store.catalog().await?;
    let fallback = match body.get("fallback_service").and_then(Value::as_str) {
        Some(s) if snapshot.catalog.service(s).is_some() => s.to_string(),
        Some(s) => {
            errors.push("fallback_service", format!("unknown service {s:?}"));
            String::new()
        }
        None => {
            errors.push(
                "fallback_service",
                "is required: the service of alerts whose label names no service",
            );
            String::new()
        }
    };
    errors.into_result(())?;
    let (key, secret) = state
        .store
        .create_integration_key(&caller.actor(), &name, KeyScope::Global { label, fallback })
        .await?;
    Ok(created(key, secret))
}

pub async fn global_keys(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    Ok(Json(page(state.store.integration_keys(None).await?, None)))
}

pub async fn revoke_global_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<IntegrationKey>> {
    caller.require(Permission::Admin, None)?;
    Ok(Json(
        state
            .store
            .revoke_integration_key(&caller.actor(), None, &id)
            .await?,
    ))
}

/// An alert as listed: the instance, what state it is in and the silences muting it.
pub(crate) struct Listed {
    pub alert: StoredAlert,
    /// `firing`, `silenced` or `resolved`.
    pub state: &'static str,
    pub silenced_by: Vec<String>,
}

impl Listed {
    fn new(alert: StoredAlert, silences: &[Silence], now: jiff::Timestamp) -> Listed {
        let silenced_by = if alert.firing {
            silenced_by(silences, &alert.service, &alert.alert.labels, now)
        } else {
            Vec::new()
        };
        let state = match (alert.firing, silenced_by.is_empty()) {
            (false, _) => "resolved",
            (true, true) => "firing",
            (true, false) => "silenced",
        };
        Listed {
            alert,
            state,
            silenced_by,
        }
    }

    /// As the JSON API shows it.
    fn json(&self) -> Value {
        let mut value = serde_json::to_value(&self.alert).expect("alerts serialise");
        value["state"] = json!(self.state);
        value["silenced_by"] = json!(self.silenced_by);
        value
    }
}

/// Which alerts a list asks for (`?service=&state=&filter=`), each parameter checked.
pub(crate) struct Selection {
    pub service: Option<String>,
    /// `firing` (silenced ones included), `silenced`, `resolved` or `all`.
    pub state: String,
    pub filter: String,
    matchers: Vec<Matcher>,
}

impl Selection {
    pub fn from_params(params: &Params) -> ApiResult<Selection> {
        let state = params.text("state").unwrap_or("firing").to_string();
        if !["firing", "silenced", "resolved", "all"].contains(&state.as_str()) {
            return Err(ApiError::field(
                "state",
                format!("must be firing, silenced, resolved or all, got {state:?}"),
            ));
        }
        let filter = params.text("filter").unwrap_or("").to_string();
        let matchers = Matcher::parse_list(&filter).map_err(|e| ApiError::field("filter", e))?;
        Ok(Selection {
            service: params.text("service").map(str::to_owned),
            state,
            filter,
            matchers,
        })
    }

    fn wants(&self, listed: &Listed) -> bool {
        self.state == "all"
            || listed.state == self.state
            || (self.state == "firing" && listed.state == "silenced")
    }

    /// Up to `limit` alerts: every firing one is read (the working set); with history,
    /// the newest rows only (just `limit` when nothing is filtered after reading).
    pub async fn alerts(&self, state: &AppState, limit: usize) -> ApiResult<Vec<Listed>> {
        let history = matches!(self.state.as_str(), "resolved" | "all");
        let scan = match self.state.as_str() {
            "all" if self.matchers.is_empty() => Some(limit),
            _ if history => Some(MAX_HISTORY_SCAN),
            _ => None,
        };
        let now = state.store.clock().now();
        let alerts = state
            .store
            .alerts(&AlertQuery {
                service: self.service.clone(),
                include_resolved: history,
                limit: scan,
            })
            .await?;
        let silences = active_silences(state, now).await?;
        Ok(alerts
            .into_iter()
            .filter(|a| self.matchers.iter().all(|m| m.matches(&a.alert.labels)))
            .map(|a| Listed::new(a, &silences, now))
            .filter(|listed| self.wants(listed))
            .take(limit)
            .collect())
    }
}

/// `GET /api/v1/alerts?service=&state=firing|silenced|resolved|all&filter=&limit=`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let selection = Selection::from_params(&params)?;
    let listed = selection.alerts(&state, params.limit()?).await?;
    Ok(Json(page(listed.iter().map(Listed::json).collect(), None)))
}

/// `GET /api/v1/alerts/{id}`: one instance with its history.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let number: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no alert with id {id:?}")))?;
    let (alert, events) = state
        .store
        .alert(number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert with id {id:?}")))?;
    let now = state.store.clock().now();
    let silences = active_silences(&state, now).await?;
    let mut body = Listed::new(alert, &silences, now).json();
    body["events"] = json!(events);
    Ok(Json(body))
}

/// `GET /api/v1/services/{id}/change-events`: what PagerDuty change events reported.
pub async fn change_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(service): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    owner(&state, &service).await?;
    let events = state.store.change_events(&service, params.limit()?).await?;
    Ok(Json(page(events, None)))
}
