//! The outbox through the API: `GET /api/v1/notifications` and
//! `POST /api/v1/people/{id}/test-notification`.

use super::{Params, page};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::SignedDuration;
use muster_domain::auth::Permission;
use muster_domain::notify::{Channel, DEFAULT_RETRY_HORIZON, contact_targets, paging_plan};
use muster_store::notify::{NewNotification, Notification};
use serde_json::{Value, json};

fn instant(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| json!(t.to_string()))
        .unwrap_or(Value::Null)
}

pub fn notification_json(n: &Notification) -> Value {
    json!({
        "id": n.id,
        "delivery_id": n.delivery_id,
        "recipient": n.recipient,
        "channel": n.channel,
        "subject": n.subject,
        "status": n.status,
        "attempts": n.attempts,
        "next_attempt_at": if n.status == "queued" { instant(n.next_attempt_at) } else { Value::Null },
        "last_error": n.last_error,
        "created_at": instant(n.created_at),
        "delivered_at": n.delivered_at.map(instant),
        "bundle_id": n.bundle_id,
    })
}

/// `GET /api/v1/notifications?recipient=PERSON&limit=&cursor=`, newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let limit = params.limit()? as i64;
    let before = params.cursor()?;
    let mut items = state
        .store
        .notifications(params.text("recipient"), before, limit + 1)
        .await?;
    let next = if items.len() as i64 > limit {
        items.pop();
        items.last().map(|n| n.id.to_string())
    } else {
        None
    };
    Ok(Json(page(
        items.iter().map(notification_json).collect(),
        next,
    )))
}

/// `POST /api/v1/people/{id}/test-notification[?follow_rules=true]`: one test message
/// on each of the person's contact methods at once (their `email` first) or, with
/// `follow_rules`, as a page would reach them: by their notification rules.
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Permission::Respond, None)?;
    let follow_rules = params.bool("follow_rules")?;
    let queued = queue_test(&state, &caller.principal.label, &id, follow_rules).await?;
    let plan: Vec<Value> = queued
        .iter()
        .map(|(channel, not_before)| json!({"channel": channel.as_str(), "not_before": instant(*not_before)}))
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": queued.len(), "plan": plan })),
    ))
}

/// Queues a test message for person `id`, sent by `sender` (the API and the person
/// page share it): on every contact method at once, or by the person's notification
/// rules when `follow_rules`. Returns each message's channel and not-before (ms).
pub(crate) async fn queue_test(
    state: &AppState,
    sender: &str,
    id: &str,
    follow_rules: bool,
) -> ApiResult<Vec<(Channel, i64)>> {
    let snapshot = state.store.catalog().await?;
    let person = snapshot
        .catalog
        .person(id)
        .ok_or_else(|| ApiError::not_found(format!("no person with id {id:?}")))?;
    let now = state.store.now_ms();
    let plan = if follow_rules {
        paging_plan(person)
    } else {
        contact_targets(person)
            .into_iter()
            .map(|target| (SignedDuration::ZERO, target))
            .collect()
    };
    if plan.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{id} has no email and no contact methods to test"),
        ));
    }
    let subject = format!("Muster test notification for {}", person.name);
    let body = format!(
        "This is a test from Muster ({}), sent by {}. Nothing needs doing.",
        state.public_url, sender
    );
    let messages: Vec<NewNotification> = plan
        .into_iter()
        .enumerate()
        .map(|(i, (after, target))| {
            let not_before = now + after.as_millis() as i64;
            NewNotification {
                dedup_key: format!("test:{id}:{now}:{i}"),
                recipient: id.to_string(),
                channel: target.channel,
                destination: target.destination,
                secret: target.secret,
                subject: subject.clone(),
                body: body.clone(),
                not_before,
                give_up_at: not_before + DEFAULT_RETRY_HORIZON.as_millis() as i64,
            }
        })
        .collect();
    let planned = messages.iter().map(|m| (m.channel, m.not_before)).collect();
    state.store.enqueue(messages).await?;
    Ok(planned)
}
