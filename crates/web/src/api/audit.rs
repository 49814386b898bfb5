//! `GET /api/v1/audit` and `GET /api/v1/audit/head`.

use super::{Params, page};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use axum::Json;
use axum::extract::State;
use muster_domain::audit::AuditEntry;
use muster_domain::auth::Permission;
use muster_store::audit::AuditFilter;
use serde_json::{Value, json};

pub fn entry_json(e: &AuditEntry) -> Value {
    let state = |s: &Option<String>| {
        s.as_deref().map(|t| {
            serde_json::from_str::<Value>(t).unwrap_or_else(|_| Value::String(t.to_string()))
        })
    };
    json!({
        "seq": e.seq,
        "at": jiff::Timestamp::from_millisecond(e.at).map(|t| t.to_string()).unwrap_or_default(),
        "actor": e.actor,
        "on_behalf_of": e.on_behalf_of,
        "action": e.action,
        "entity": e.entity,
        "before": state(&e.before),
        "after": state(&e.after),
        "reason": e.reason,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

/// Parses the audit filters shared by the API and the audit page.
pub fn filter(params: &Params) -> ApiResult<AuditFilter> {
    let before_seq = params.cursor()?;
    Ok(AuditFilter {
        entity: params.text("entity").map(str::to_owned),
        actor: params.text("actor").map(str::to_owned),
        since: params.instant("since")?.map(|t| t.as_millisecond()),
        before_seq,
        limit: params.limit()? as i64 + 1,
    })
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let filter = filter(&params)?;
    let mut entries = state.store.audit_list(&filter).await?;
    let next = if entries.len() as i64 == filter.limit {
        entries.pop();
        entries.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Ok(Json(page(entries.iter().map(entry_json).collect(), next)))
}

pub async fn head(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let (seq, hash) = state.store.audit_head().await?;
    Ok(Json(json!({ "seq": seq, "hash": hash })))
}
