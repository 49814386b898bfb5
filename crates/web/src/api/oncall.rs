//! On-call answers (`GET /api/v1/schedules/{id}/oncall`, `…/shifts`,
//! `GET /api/v1/services/{id}/oncall`) and run-time overrides
//! (`/api/v1/schedules/{id}/overrides`).

use super::Body;
use super::Params;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_domain::auth::{Permission, may_manage_calendar};
use muster_domain::catalog::{Catalog, Kind};
use muster_domain::oncall::escalation::{resolve, team_of_schedule};
use muster_domain::oncall::ical::{self, FeedShift};
use muster_domain::oncall::overrides::requested_override;
use muster_domain::oncall::{Page, Policy, Schedule, Shift};
use muster_store::oncall::Ended;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The longest range one shifts request may ask for.
const MAX_RANGE_DAYS: i64 = 366;

/// The schedule as the catalog defines it (its own overrides included).
pub(crate) fn catalog_schedule(catalog: &Catalog, id: &str) -> ApiResult<Schedule> {
    let stored = catalog
        .entity(Kind::Schedule, id)
        .ok_or_else(|| ApiError::not_found(format!("no schedule with id {id:?}")))?;
    // Stored schedules were validated with the same model; failing here is corruption.
    Schedule::from_json(&stored).map_err(ApiError::internal)
}

/// The schedule as it stands (see [`muster_store::Store::schedule_in_force`]).
pub(crate) async fn schedule(
    state: &AppState,
    catalog: &Catalog,
    id: &str,
    since: jiff::Timestamp,
) -> ApiResult<Schedule> {
    state
        .store
        .schedule_in_force(catalog, id, since)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no schedule with id {id:?}")))
}

/// `GET /api/v1/schedules/{id}/oncall?at=RFC3339` (default now).
pub async fn oncall(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let at = params.instant_or_now("at", &state)?;
    let snapshot = state.store.catalog().await?;
    let schedule = schedule(&state, &snapshot.catalog, &id, at).await?;
    let oncall = schedule.oncall_at(at).map(|on| {
        json!({
            "person": on.person,
            "layer": on.layer,
            "override": on.r#override,
            "until": schedule.oncall_until(at),
        })
    });
    Ok(Json(json!({ "schedule": id, "at": at, "oncall": oncall })))
}

/// `GET /api/v1/schedules/{id}/shifts?from=…&to=…`: final shifts and gaps.
pub async fn shifts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let from = params
        .instant("from")?
        .ok_or_else(|| ApiError::field("from", "is required (an RFC 3339 instant)"))?;
    let to = params
        .instant("to")?
        .ok_or_else(|| ApiError::field("to", "is required (an RFC 3339 instant)"))?;
    if to <= from {
        return Err(ApiError::field("to", "must be after from"));
    }
    if to.duration_since(from).as_secs() > MAX_RANGE_DAYS * 86_400 {
        return Err(ApiError::field(
            "to",
            format!("the range may span at most {MAX_RANGE_DAYS} days"),
        ));
    }
    let snapshot = state.store.catalog().await?;
    let schedule = schedule(&state, &snapshot.catalog, &id, from).await?;
    let result = schedule.shifts(from, to);
    Ok(Json(
        json!({ "schedule": id, "from": from, "to": to, "shifts": result.shifts, "gaps": result.gaps }),
    ))
}

/// `person`'s final shifts on every schedule over `[from, to)`, by start.
pub(crate) async fn person_shifts(
    state: &AppState,
    catalog: &Catalog,
    person: &str,
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> ApiResult<Vec<(String, Shift)>> {
    let mut found = Vec::new();
    for value in &catalog.schedules {
        let Some(id) = value.get("id").and_then(|v| v.as_str()) else {
            continue;
        };
        let loaded = schedule(state, catalog, id, from).await?;
        for shift in loaded.shifts(from, to).shifts {
            if shift.person == person {
                found.push((id.to_string(), shift));
            }
        }
    }
    found.sort_by_key(|(_, shift)| shift.start);
    Ok(found)
}

/// Days a calendar feed covers.
pub const FEED_DAYS: i64 = 90;

/// Refuses callers who may not manage `person`'s calendar feed.
fn require_feed_access(caller: &Caller, person: &str) -> ApiResult<()> {
    let principal = &caller.principal;
    if may_manage_calendar(principal.person.as_deref(), &principal.grant, person) {
        return Ok(());
    }
    // Not the person: say what role would do.
    caller.require(Permission::Edit, None)
}

/// `POST /api/v1/people/{id}/calendar-feed`: a new secret feed link (shown once),
/// replacing any earlier one.
pub async fn create_feed(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_feed_access(&caller, &id)?;
    let url = new_feed_url(&state, &caller.actor(), &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "person": id, "url": url, "days": FEED_DAYS })),
    )
        .into_response())
}

/// Makes a feed for `person` and returns its URL (the API and the person page share it).
pub(crate) async fn new_feed_url(
    state: &AppState,
    actor: &muster_domain::audit::Actor,
    person: &str,
) -> ApiResult<String> {
    let snapshot = state.store.catalog().await?;
    if snapshot.catalog.person(person).is_none() {
        return Err(ApiError::not_found(format!("no person with id {person:?}")));
    }
    let token = state.store.create_calendar_feed(actor, person).await?;
    Ok(format!("{}/calendar/{token}.ics", state.public_url))
}

/// `DELETE /api/v1/people/{id}/calendar-feed`: the link stops working.
pub async fn revoke_feed(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_feed_access(&caller, &id)?;
    if state
        .store
        .revoke_calendar_feed(&caller.actor(), &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{id:?} has no calendar feed")))
    }
}

/// `GET /calendar/{token}.ics`: public (calendar apps send no credentials); the secret
/// token in the path is the credential. Unknown and revoked tokens are 404.
pub async fn feed(State(state): State<AppState>, Path(file): Path<String>) -> ApiResult<Response> {
    let gone = || ApiError::not_found("no such calendar feed (it may have been revoked)");
    let token = file.strip_suffix(".ics").ok_or_else(gone)?;
    let person = state
        .store
        .calendar_feed_person(token)
        .await?
        .ok_or_else(gone)?;
    let snapshot = state.store.catalog().await?;
    let catalog = &snapshot.catalog;
    let name = catalog
        .person(&person)
        .map(|p| p.name.clone())
        .ok_or_else(gone)?;
    let now = state.store.clock().now();
    // From a week back, so the shift under way appears whole (a stable start and UID).
    let from = now - jiff::SignedDuration::from_hours(7 * 24);
    let to = now + jiff::SignedDuration::from_hours(FEED_DAYS * 24);
    let mut shifts = person_shifts(&state, catalog, &person, from, to).await?;
    shifts.retain(|(_, shift)| shift.end > now);
    let events: Vec<FeedShift> = shifts
        .iter()
        .map(|(schedule, shift)| FeedShift {
            schedule,
            start: shift.start,
            end: shift.end,
        })
        .collect();
    let body = ical::feed(&person, &name, &events, now, &state.public_url);
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/calendar; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response())
}

/// The first page of `team`'s escalation policy (or of the whole team, without one) at
/// `at`: a step that reaches nobody, such as a schedule with a gap, is skipped as it
/// would be when paging. `None` when no step reaches anybody.
pub(crate) async fn first_page(
    state: &AppState,
    catalog: &Catalog,
    team: &str,
    at: jiff::Timestamp,
) -> ApiResult<Option<Page>> {
    let policy = Policy::of_team(catalog, team).map_err(ApiError::internal)?;
    let mut schedules = HashMap::new();
    for schedule_id in policy.schedules() {
        if !schedules.contains_key(schedule_id) {
            let loaded = schedule(state, catalog, schedule_id, at).await?;
            schedules.insert(schedule_id.to_string(), loaded);
        }
    }
    let oncall = |schedule_id: &str, t| {
        schedules
            .get(schedule_id)
            .and_then(|s| s.oncall_at(t))
            .map(|on| on.person)
    };
    // Only the first page: later steps wait on acknowledgement.
    Ok(policy
        .pages(at, None, |target, t| resolve(target, t, catalog, oncall))
        .into_iter()
        .next())
}

/// `GET /api/v1/services/{id}/oncall?at=…`: the people the first page of the owner
/// team's escalation policy reaches at that instant (a step that reaches nobody, such as
/// a schedule with a gap, is skipped as it would be when paging).
pub async fn service_oncall(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let at = params.instant_or_now("at", &state)?;
    let snapshot = state.store.catalog().await?;
    let catalog = &snapshot.catalog;
    let service = catalog
        .service(&id)
        .ok_or_else(|| ApiError::not_found(format!("no service with id {id:?}")))?;
    let first = first_page(&state, catalog, &service.owner, at).await?;
    let people: Vec<Value> = first
        .iter()
        .flat_map(|page| &page.people)
        .map(|person| {
            json!({
                "id": person,
                "name": catalog.person(person).map(|p| p.name.as_str()),
            })
        })
        .collect();
    Ok(Json(json!({
        "service": id,
        "at": at,
        "team": service.owner,
        "escalation_policy": catalog.team(&service.owner).and_then(|t| t.escalation_policy.clone()),
        "step": first.as_ref().map(|p| p.step),
        "people": people,
    })))
}

/// `GET /api/v1/schedules/{id}/revisions`: the schedule's definitions over time,
/// oldest first, each with the instant it took (or takes) effect.
pub async fn revisions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let snapshot = state.store.catalog().await?;
    let stored = snapshot
        .catalog
        .entity(Kind::Schedule, &id)
        .ok_or_else(|| ApiError::not_found(format!("no schedule with id {id:?}")))?;
    let mut recorded = state.store.schedule_revisions(&id).await?;
    if recorded.is_empty() {
        recorded.push((None, stored));
    }
    let items: Vec<Value> = recorded
        .into_iter()
        .map(|(effective_from, body)| {
            json!({
                "effective_from": effective_from,
                "timezone": body.get("timezone"),
                "layers": body.get("layers"),
            })
        })
        .collect();
    Ok(Json(json!({ "schedule": id, "items": items })))
}

/// `GET /api/v1/schedules/{id}/overrides?from=` (default now): the overrides in force
/// at or after `from`, the catalog's first, in the order they apply.
pub async fn overrides(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let from = params.instant_or_now("from", &state)?;
    let snapshot = state.store.catalog().await?;
    let from_catalog = catalog_schedule(&snapshot.catalog, &id)?;
    let mut items: Vec<Value> = from_catalog
        .overrides
        .iter()
        .filter(|o| o.to > from)
        .map(|o| {
            json!({"id": o.id, "person": o.person, "replaces": o.replaces,
                   "from": o.from, "to": o.to, "source": "catalog"})
        })
        .collect();
    for o in state.store.overrides(&id, from).await? {
        items.push(
            json!({"id": o.id, "person": o.person, "replaces": o.replaces,
                          "from": o.from, "to": o.to, "source": "api",
                          "created_at": o.created_at, "created_by": o.created_by}),
        );
    }
    Ok(Json(
        json!({ "schedule": id, "from": from, "items": items }),
    ))
}

/// `POST /api/v1/schedules/{id}/overrides` with `{"person", "replaces"?, "from", "to"}`.
pub async fn add_override(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let value = body.value()?;
    let snapshot = state.store.catalog().await?;
    let catalog = &snapshot.catalog;
    let now = state.store.clock().now();
    let schedule = schedule(&state, catalog, &id, now).await?;
    caller.require(
        Permission::Respond,
        team_of_schedule(catalog, &id).as_deref(),
    )?;
    let over = requested_override(&value, &schedule, |p| catalog.person(p).is_some(), now)
        .map_err(|e| ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let stored = state.store.add_override(&caller.actor(), &id, over).await?;
    let location = format!("/api/v1/schedules/{id}/overrides/{}", stored.id);
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        Json(json!(stored)),
    )
        .into_response())
}

/// `DELETE /api/v1/schedules/{id}/overrides/{oid}`: 204 when it had not started, 200
/// with the shortened override when it was under way (it ends now), 409 when it is
/// over or belongs to the catalog.
pub async fn end_override(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, override_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let snapshot = state.store.catalog().await?;
    let catalog = &snapshot.catalog;
    let schedule = catalog_schedule(catalog, &id)?;
    caller.require(
        Permission::Respond,
        team_of_schedule(catalog, &id).as_deref(),
    )?;
    if schedule.overrides.iter().any(|o| o.id == override_id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "override {override_id:?} is defined in the catalog: change schedule {id:?} there"
            ),
        ));
    }
    match state
        .store
        .end_override(&caller.actor(), &id, &override_id)
        .await?
    {
        Ended::Removed => Ok(StatusCode::NO_CONTENT.into_response()),
        Ended::CutShort(stored) => Ok(Json(json!(stored)).into_response()),
    }
}
