//! On-call answers: `GET /api/v1/schedules/{id}/oncall` and `…/shifts`.

use super::Params;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use muster_domain::auth::Permission;
use muster_domain::catalog::Kind;
use muster_domain::oncall::Schedule;
use serde_json::{Value, json};

/// The longest range one shifts request may ask for.
const MAX_RANGE_DAYS: i64 = 366;

async fn schedule(state: &AppState, id: &str) -> ApiResult<Schedule> {
    let snapshot = state.store.catalog().await?;
    let stored = snapshot
        .catalog
        .entity(Kind::Schedule, id)
        .ok_or_else(|| ApiError::not_found(format!("no schedule with id {id:?}")))?;
    // Stored schedules were validated with the same model; failing here is corruption.
    Schedule::from_json(&stored).map_err(ApiError::internal)
}

/// `GET /api/v1/schedules/{id}/oncall?at=RFC3339` (default now).
pub async fn oncall(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let at = params
        .instant("at")?
        .unwrap_or_else(|| state.store.clock().now());
    let schedule = schedule(&state, &id).await?;
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
    let schedule = schedule(&state, &id).await?;
    let result = schedule.shifts(from, to);
    Ok(Json(
        json!({ "schedule": id, "from": from, "to": to, "shifts": result.shifts, "gaps": result.gaps }),
    ))
}
