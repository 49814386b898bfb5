//! The outbox through the API: `GET /api/v1/notifications` and
//! `POST /api/v1/people/{id}/test-notification`.

use super::{Params, page};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use muster_domain::auth::Permission;
use muster_domain::catalog::Contact;
use muster_domain::catalog::secret::Secret;
use muster_domain::notify::{Channel, DEFAULT_RETRY_HORIZON};
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
    let before = params
        .text("cursor")
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                ApiError::field(
                    "cursor",
                    format!("{c:?} is not a cursor from a previous page"),
                )
            })
        })
        .transpose()?;
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

/// `POST /api/v1/people/{id}/test-notification`: one test message on each of the
/// person's contact methods (their `email` first).
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Permission::Respond, None)?;
    let queued = queue_test(&state, &caller.principal.label, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": queued }))))
}

/// Queues a test message on each of person `id`'s contact methods, sent by `sender`
/// (the API and the person page share it). Returns how many were queued.
pub(crate) async fn queue_test(state: &AppState, sender: &str, id: &str) -> ApiResult<usize> {
    let snapshot = state.store.catalog().await?;
    let person = snapshot
        .catalog
        .person(id)
        .ok_or_else(|| ApiError::not_found(format!("no person with id {id:?}")))?;
    let now = state.store.now_ms();
    let give_up_at = now + DEFAULT_RETRY_HORIZON.as_millis() as i64;
    let sealed = |s: &Secret| match s {
        Secret::Sealed(v) => Some(v.clone()),
        _ => None,
    };
    let mut targets: Vec<(Channel, String, Option<String>)> = Vec::new();
    if let Some(email) = &person.email {
        targets.push((Channel::Email, email.clone(), None));
    }
    for contact in &person.contacts {
        let target = match contact {
            Contact::Email { to } => Some((Channel::Email, to.clone(), None)),
            Contact::Webhook { url, secret } => Some((
                Channel::Webhook,
                url.clone(),
                secret.as_ref().and_then(sealed),
            )),
            Contact::Slack { url } => sealed(url).map(|u| (Channel::Slack, u, None)),
            Contact::Teams { url } => sealed(url).map(|u| (Channel::Teams, u, None)),
        };
        targets.extend(target.filter(|t| !targets.contains(t)));
    }
    if targets.is_empty() {
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
    let messages: Vec<NewNotification> = targets
        .into_iter()
        .enumerate()
        .map(|(i, (channel, destination, secret))| NewNotification {
            dedup_key: format!("test:{id}:{now}:{i}"),
            recipient: id.to_string(),
            channel,
            destination,
            secret,
            subject: subject.clone(),
            body: body.clone(),
            not_before: now,
            give_up_at,
        })
        .collect();
    Ok(state.store.enqueue(messages).await?)
}
