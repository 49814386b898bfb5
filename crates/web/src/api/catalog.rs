//! Catalog endpoints: the whole document (`/api/v1/catalog`), one collection per kind
//! (`/api/v1/{teams,people,services,organisations,schedules,escalation_policies}`) and
//! the dependency graph.

use super::{Body, Params, page};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use muster_domain::auth::Permission;
use muster_domain::catalog::apply::{
    Refusal, entity_etag, merge_patch, plan_delete, plan_import, plan_put,
};
use muster_domain::catalog::parse::catalog_from_value;
use muster_domain::catalog::{Catalog, Kind, entity_id};
use muster_domain::oncall::escalation::teams_of_schedule;
use muster_store::catalog::CatalogSnapshot;
use serde_json::{Value, json};

/// The kinds with CRUD collections under `/api/v1`.
pub const COLLECTIONS: [Kind; 6] = [
    Kind::Team,
    Kind::Person,
    Kind::Service,
    Kind::Organisation,
    Kind::Schedule,
    Kind::EscalationPolicy,
];

/// `GET /api/v1/catalog`: the whole catalog as YAML (JSON when asked for), secrets
/// redacted; it re-imports to the identical state.
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(Permission::Read, None)?;
    let snapshot = state.store.catalog().await?;
    let catalog = snapshot.catalog.redacted();
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json"));
    if wants_json {
        return Ok(Json(catalog).into_response());
    }
    let yaml = export_yaml(&catalog).map_err(ApiError::internal)?;
    Ok((
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        yaml,
    )
        .into_response())
}

pub fn export_yaml(catalog: &Catalog) -> Result<String, String> {
    let body = serde_saphyr::to_string(catalog).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Muster catalog export. Secrets are shown as \"<redacted>\"; importing this file keeps them.\n{body}"
    ))
}

/// `PUT /api/v1/catalog[?prune=true]`: applies a whole document atomically.
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Permission::Edit, None)?;
    let prune = params.bool("prune")?;
    // Syntax errors are 400 (from `value`); a document of the wrong shape is 422.
    let document = catalog_from_value(body.value()?)?;
    let sealer = state.store.sealer().clone();
    let plan = state
        .store
        .change_catalog(&caller.actor(), "import", move |current| {
            Ok(plan_import(current, document, prune, &sealer)?)
        })
        .await?;
    Ok(Json(json!({ "summary": plan.summary, "changed": plan.changes.len() })).into_response())
}

/// The team that owns an entity, for team-scoped grants.
fn owner_team(kind: Kind, body: &Value) -> Option<String> {
    match kind {
        Kind::Team => entity_id(body).map(str::to_owned),
        Kind::Service | Kind::Renewable => {
            body.get("owner").and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    }
}

/// An entity as the API shows it: secrets redacted and, for a service, its direct
/// dependents. Its ETag covers exactly this, so it changes whenever the answer does.
fn representation(catalog: &Catalog, kind: Kind, id: &str) -> Option<Value> {
    let mut body = catalog.entity(kind, id)?;
    if kind == Kind::Service {
        let mut dependents: Vec<&str> = catalog
            .services
            .iter()
            .filter(|s| s.depends_on.iter().any(|d| d == id))
            .map(|s| s.id.as_str())
            .collect();
        dependents.sort_unstable();
        body["dependents"] = json!(dependents);
    }
    Some(body)
}

fn entity_response(snapshot: &CatalogSnapshot, kind: Kind, id: &str) -> ApiResult<Response> {
    let body = representation(&snapshot.catalog, kind, id).ok_or_else(|| not_found(kind, id))?;
    let etag = entity_etag(&body);
    let mut response = Json(body).into_response();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

fn not_found(kind: Kind, id: &str) -> ApiError {
    ApiError::not_found(format!("no {} with id {id:?}", kind.singular()))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    kind: Kind,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let limit = params.limit()?;
    let query = params.text("q").map(str::to_lowercase);
    let team = params.text("team");
    let tier = params
        .text("tier")
        .map(|t| {
            t.parse::<u8>()
                .ok()
                .filter(|t| (1..=5).contains(t))
                .ok_or_else(|| {
                    ApiError::field("tier", format!("must be a number from 1 to 5, got {t:?}"))
                })
        })
        .transpose()?;
    if tier.is_some() && kind != Kind::Service {
        return Err(ApiError::field(
            "tier",
            format!("{} have no tier; only services do", kind.section()),
        ));
    }
    if team.is_some() && kind == Kind::Organisation {
        return Err(ApiError::field(
            "team",
            "organisations do not belong to teams",
        ));
    }
    let snapshot = state.store.catalog().await?;
    let catalog = snapshot.catalog.redacted();
    let values: Vec<Value> = match kind {
        Kind::Team => catalog.teams.iter().map(to_json).collect(),
        Kind::Person => catalog.people.iter().map(to_json).collect(),
        Kind::Service => catalog.services.iter().map(to_json).collect(),
        Kind::Organisation => catalog.organisations.iter().map(to_json).collect(),
        Kind::Schedule => catalog.schedules.clone(),
        Kind::EscalationPolicy => catalog.escalation_policies.clone(),
        _ => Vec::new(),
    };
    let cursor = params.text("cursor");
    let mut matching = values.into_iter().filter(|v| {
        let id = entity_id(v).unwrap_or("");
        let text_matches = query.as_ref().is_none_or(|q| {
            id.contains(q.as_str())
                || v.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.to_lowercase().contains(q.as_str()))
        });
        let team_matches = team.is_none_or(|t| match kind {
            Kind::Service => v.get("owner").and_then(Value::as_str) == Some(t),
            Kind::Person => catalog
                .team(t)
                .is_some_and(|team| team.members.iter().any(|m| m == id)),
            Kind::Team => id == t,
            Kind::Schedule => teams_of_schedule(&catalog, id).any(|team| team == t),
            Kind::EscalationPolicy => catalog
                .team(t)
                .is_some_and(|team| team.escalation_policy.as_deref() == Some(id)),
            _ => true,
        });
        let tier_matches =
            tier.is_none_or(|t| v.get("tier").and_then(Value::as_u64) == Some(t as u64));
        text_matches && team_matches && tier_matches && cursor.is_none_or(|c| id > c)
    });
    let items: Vec<Value> = matching.by_ref().take(limit).collect();
    let next = if matching.next().is_some() {
        items.last().and_then(entity_id).map(str::to_owned)
    } else {
        None
    };
    Ok(Json(page(items, next)))
}

fn to_json<T: serde::Serialize>(item: &T) -> Value {
    serde_json::to_value(item).unwrap_or(Value::Null)
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    kind: Kind,
    id: String,
) -> ApiResult<Response> {
    caller.require(Permission::Read, None)?;
    let snapshot = state.store.catalog().await?;
    entity_response(&snapshot, kind, &id)
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    kind: Kind,
    body: Body,
) -> ApiResult<Response> {
    let value = body.value()?;
    if !value.is_object() {
        return Err(ApiError::field(
            "",
            format!("a {} is a JSON object", kind.singular()),
        ));
    }
    let id = match value.get("id") {
        Some(Value::String(id)) => id.clone(),
        _ => {
            return Err(ApiError::invalid(
                StatusCode::UNPROCESSABLE_ENTITY,
                muster_domain::FieldError::new("id", "is required and must be a string").into(),
            ));
        }
    };
    let owner = owner_team(kind, &value);
    caller.require(Permission::Edit, owner.as_deref())?;
    let sealer = state.store.sealer().clone();
    let id_for_plan = id.clone();
    state
        .store
        .change_catalog(&caller.actor(), "", move |current| {
            if current.stored_entity(kind, &id_for_plan).is_some() {
                return Err(Refusal::Exists(format!(
                    "{} {id_for_plan:?}",
                    kind.singular()
                )));
            }
            Ok(plan_put(current, kind, value, &sealer)?)
        })
        .await?;
    let snapshot = state.store.catalog().await?;
    let mut response = entity_response(&snapshot, kind, &id)?;
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/{}/{id}", kind.section())) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

/// Refuses a write whose `If-Match` does not name the entity's current ETag.
fn check_precondition(
    kind: Kind,
    id: &str,
    shown: &Value,
    expected: &Option<String>,
) -> Result<(), Refusal> {
    let etag = entity_etag(shown);
    // `If-Match: *` or a list of strong tags, one of which must be current.
    let matches = |header: &str| {
        header
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag == etag)
    };
    match expected {
        Some(header) if !matches(header) => Err(Refusal::Stale {
            kind,
            id: id.to_string(),
            etag,
        }),
        _ => Ok(()),
    }
}

/// `PATCH`: an RFC 7396 merge patch, honouring `If-Match`.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    kind: Kind,
    id: String,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let patch = body.value()?;
    if !patch.is_object() {
        return Err(ApiError::field("", "a merge patch is a JSON object"));
    }
    if patch
        .get("id")
        .is_some_and(|v| v.as_str() != Some(id.as_str()))
    {
        return Err(ApiError::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            muster_domain::FieldError::new(
                "id",
                "cannot be changed: create a new entity and delete this one",
            )
            .into(),
        ));
    }
    let snapshot = state.store.catalog().await?;
    let before = snapshot
        .catalog
        .entity(kind, &id)
        .ok_or_else(|| not_found(kind, &id))?;
    caller.require(Permission::Edit, owner_team(kind, &before).as_deref())?;
    let mut after = before;
    merge_patch(&mut after, &patch);
    // Moving a service to another team needs rights over both.
    caller.require(Permission::Edit, owner_team(kind, &after).as_deref())?;
    let expected = if_match(&headers);
    let sealer = state.store.sealer().clone();
    let id_for_plan = id.clone();
    state
        .store
        .change_catalog(&caller.actor(), "", move |current| {
            let shown = representation(current, kind, &id_for_plan).ok_or(Refusal::NotFound {
                kind,
                id: id_for_plan.clone(),
            })?;
            check_precondition(kind, &id_for_plan, &shown, &expected)?;
            // Re-apply the patch to what is stored now, so a concurrent change to
            // other fields is not lost.
            let mut body = current.entity(kind, &id_for_plan).unwrap_or(Value::Null);
            merge_patch(&mut body, &patch);
            Ok(plan_put(current, kind, body, &sealer)?)
        })
        .await?;
    let snapshot = state.store.catalog().await?;
    entity_response(&snapshot, kind, &id)
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    kind: Kind,
    id: String,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let snapshot = state.store.catalog().await?;
    let before = snapshot
        .catalog
        .entity(kind, &id)
        .ok_or_else(|| not_found(kind, &id))?;
    // A team-scoped grant edits its team but cannot delete it.
    let owner = if kind == Kind::Team {
        None
    } else {
        owner_team(kind, &before)
    };
    caller.require(Permission::Edit, owner.as_deref())?;
    let expected = if_match(&headers);
    state
        .store
        .change_catalog(&caller.actor(), "", move |current| {
            if let Some(shown) = representation(current, kind, &id) {
                check_precondition(kind, &id, &shown, &expected)?;
            }
            plan_delete(current, kind, &id)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/services/{id}/impact`: what breaks if this service breaks.
pub async fn impact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let snapshot = state.store.catalog().await?;
    let impact = snapshot
        .graph
        .impact(&id)
        .ok_or_else(|| not_found(Kind::Service, &id))?;
    Ok(Json(to_json(&impact)))
}

/// `GET /api/v1/services/{id}/dependencies`: what this service needs, transitively.
pub async fn dependencies(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let snapshot = state.store.catalog().await?;
    let dependencies = snapshot
        .graph
        .dependencies(&id)
        .ok_or_else(|| not_found(Kind::Service, &id))?;
    Ok(Json(json!({ "service": id, "dependencies": dependencies })))
}
