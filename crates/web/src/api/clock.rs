//! `POST /api/v1/test/clock`: moves the test clock (only with `serve --test-clock`).

use super::Body;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::State;
use muster_domain::auth::Permission;
use muster_domain::clock::parse_duration;
use serde_json::{Value, json};

pub async fn set(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Admin, None)?;
    let value = body.value()?;
    let clock = state.store.clock();
    let moved = match (value.get("now"), value.get("advance")) {
        (Some(now), None) => {
            let text = now
                .as_str()
                .ok_or_else(|| ApiError::field("now", "must be an RFC 3339 instant string"))?;
            let to: jiff::Timestamp = text.parse().map_err(|_| {
                ApiError::field("now", format!("{text:?} is not an RFC 3339 instant"))
            })?;
            clock.set(to)
        }
        (None, Some(advance)) => {
            let text = advance.as_str().ok_or_else(|| {
                ApiError::field("advance", "must be a duration string such as \"15m\"")
            })?;
            let by = parse_duration(text).map_err(|e| ApiError::field("advance", e))?;
            if by.is_negative() {
                return Err(ApiError::field(
                    "advance",
                    "must not be negative: use \"now\" to go back",
                ));
            }
            clock.advance(by)
        }
        _ => {
            return Err(ApiError::field(
                "",
                "give exactly one of \"now\" or \"advance\"",
            ));
        }
    };
    let now = moved.ok_or_else(|| ApiError::bad_request("this server runs on the system clock"))?;
    Ok(Json(json!({ "now": now.to_string() })))
}
