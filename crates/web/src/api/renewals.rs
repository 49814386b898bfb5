//! The renewals registry over HTTP: what expires when, its targets and verification,
//! and the reminders sent for its current expiry.

use super::Params;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use muster_domain::auth::Permission;
use muster_domain::clock::parse_duration;
use muster_domain::renewals::{Kind, Renewable, days, days_left};
use serde_json::{Value, json};
use std::collections::HashMap;

/// A renewable as the API shows it: its record, days left, and its reminders for the
/// current expiry (`sent_at` null while not sent; `due_at` when it falls due).
fn renewable_json(r: &Renewable, sent: &HashMap<i64, Timestamp>, now: Timestamp) -> Value {
    let reminders: Vec<Value> = r
        .reminders
        .iter()
        .map(|d| json!({"days": d, "due_at": r.expires_at - days(*d), "sent_at": sent.get(d)}))
        .collect();
    let mut body = json!(r);
    body["days_left"] = json!(days_left(r.expires_at, now));
    body["reminders"] = json!(reminders);
    body
}

/// The reminders sent per renewable for its current expiry: offset → when.
async fn sent_for(
    state: &AppState,
    renewables: &[Renewable],
) -> ApiResult<HashMap<String, HashMap<i64, Timestamp>>> {
    let rows = state.store.renewal_reminders_sent().await?;
    let mut sent: HashMap<String, HashMap<i64, Timestamp>> = HashMap::new();
    for r in renewables {
        if let Some(offsets) = rows.get(&(r.id.clone(), r.expires_at.as_millisecond())) {
            sent.insert(r.id.clone(), offsets.clone());
        }
    }
    Ok(sent)
}

/// `GET /api/v1/renewables?expiring_within=90d&kind=&team=`: renewables by expiry,
/// soonest first; `expiring_within` keeps those expiring before now + that (expired
/// ones included), `team` those it owns or buys.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let now = state.store.clock().now();
    let horizon = params
        .text("expiring_within")
        .map(|text| match parse_duration(text) {
            Ok(d) if d.is_positive() => Ok(now + d),
            Ok(_) => Err(ApiError::field("expiring_within", "must be more than 0")),
            Err(why) => Err(ApiError::field("expiring_within", why)),
        })
        .transpose()?;
    let kind = params
        .text("kind")
        .map(|text| {
            Kind::parse(text).ok_or_else(|| {
                ApiError::field(
                    "kind",
                    format!("{text:?} is not a kind: use {}", Kind::names()),
                )
            })
        })
        .transpose()?;
    let snapshot = state.store.catalog().await?;
    let team = params.text("team");
    if let Some(id) = team
        && snapshot.catalog.team(id).is_none()
    {
        return Err(ApiError::field("team", format!("no team with id {id:?}")));
    }
    let limit = params.limit()?;
    let mut renewables: Vec<Renewable> = Renewable::of_catalog(&snapshot.catalog)
        .into_iter()
        .filter(|r| horizon.is_none_or(|h| r.expires_at <= h))
        .filter(|r| kind.is_none_or(|k| r.kind == k))
        .filter(|r| team.is_none_or(|t| r.owner == t || r.buyer.as_deref() == Some(t)))
        .collect();
    renewables.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
    renewables.truncate(limit);
    let sent = sent_for(&state, &renewables).await?;
    let empty = HashMap::new();
    let items: Vec<Value> = renewables
        .iter()
        .map(|r| renewable_json(r, sent.get(&r.id).unwrap_or(&empty), now))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/v1/renewables/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let snapshot = state.store.catalog().await?;
    let Some(renewable) = Renewable::of_catalog(&snapshot.catalog)
        .into_iter()
        .find(|r| r.id == id)
    else {
        return Err(ApiError::not_found(format!("no renewable {id:?}")));
    };
    let now = state.store.clock().now();
    let mut sent = sent_for(&state, std::slice::from_ref(&renewable)).await?;
    let sent = sent.remove(&renewable.id).unwrap_or_default();
    Ok(Json(renewable_json(&renewable, &sent, now)))
}
