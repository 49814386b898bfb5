//! PagerDuty's Events API v2: `/v2/enqueue` (trigger, acknowledge, resolve by dedup key
//! on the routing key's service) and `/v2/change/enqueue` (kept for the changes
//! domain). Answers in PagerDuty's shapes: 202 with the dedup key, 400 with `errors`.

use super::{Refused, key, origin, service_of};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use muster_domain::signals::pagerduty::{self, Action, Refusal};
use muster_domain::signals::{EventKind, LabelSet, Source};
use muster_store::signals::IntegrationKey;
use serde_json::{Value, json};

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refused(refusal: Refusal) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        json!({"status": refusal.status, "message": refusal.message, "errors": refusal.errors}),
    )
}

fn invalid(error: impl Into<String>) -> Response {
    refused(Refusal::invalid(vec![error.into()]))
}

fn failed(error: muster_store::StoreError) -> Response {
    tracing::error!(%error, "PagerDuty event failed");
    // 5xx: senders retry with backoff.
    answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"status": "error", "message": "internal error; the event was not stored"}),
    )
}

async fn routing(state: &AppState, routing_key: &str) -> Result<IntegrationKey, Response> {
    match key(&state.store, routing_key).await {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(invalid(
            "Invalid routing key: no live integration key has this value",
        )),
        // A failure on Muster's side is a 5xx, so the sender retries.
        Err(Refused { status, .. }) if status.is_server_error() => Err(answer(
            status,
            json!({"status": "error", "message": "internal error; the event was not stored"}),
        )),
        Err(Refused { message, .. }) => Err(invalid(message)),
    }
}

/// String fields of `custom_details`, where a global key may find its routing label.
fn routing_fields(alert_labels: &LabelSet, details: Option<&str>) -> LabelSet {
    let mut fields = alert_labels.clone();
    if let Some(Value::Object(map)) = details.and_then(|d| serde_json::from_str(d).ok()) {
        for (k, v) in map {
            if let Value::String(s) = v {
                fields.entry(k).or_insert(s);
            }
        }
    }
    fields
}

type Outcome = Result<Response, Response>;

pub async fn enqueue(State(state): State<AppState>, body: Bytes) -> Outcome {
    let now = state.store.clock().now();
    let event = pagerduty::event(&body, now).map_err(refused)?;
    let key = routing(&state, &event.routing_key).await?;
    let origin = origin(&key, Source::Pagerduty);
    let dedup_key = match event.action {
        Action::Trigger => {
            let alert = event.alert.expect("a valid trigger carries its alert");
            let dedup_key = event
                .dedup_key
                .unwrap_or_else(|| muster_store::secrets::random_token(32));
            let fields = routing_fields(
                &alert.labels,
                alert.annotations.get("custom_details").map(String::as_str),
            );
            let service = service_of(&state.store, &key, &fields)
                .await
                .map_err(failed)?;
            let fingerprint = pagerduty::dedup_fingerprint(&key.id, &dedup_key);
            state
                .store
                .ingest_alerts(
                    &origin,
                    vec![((service, fingerprint), alert)],
                    Some(&dedup_key),
                )
                .await
                .map_err(failed)?;
            dedup_key
        }
        action => {
            let dedup_key = event
                .dedup_key
                .expect("validated: acknowledge and resolve carry one");
            let kind = if action == Action::Resolve {
                EventKind::Resolved
            } else {
                EventKind::Acknowledged
            };
            let fingerprint = pagerduty::dedup_fingerprint(&key.id, &dedup_key);
            // No open alert: accepted and dropped, as PagerDuty does.
            state
                .store
                .pagerduty_action(&origin, key.scope.service(), &fingerprint, kind)
                .await
                .map_err(failed)?;
            dedup_key
        }
    };
    metrics::counter!("muster_alerts_received_total", "source" => "pagerduty").increment(1);
    Ok(answer(
        StatusCode::ACCEPTED,
        json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key}),
    ))
}

pub async fn change_enqueue(State(state): State<AppState>, body: Bytes) -> Outcome {
    let now = state.store.clock().now();
    let event = pagerduty::change_event(&body, now).map_err(refused)?;
    let key = routing(&state, &event.routing_key).await?;
    let details = event.custom_details.as_ref().map(Value::to_string);
    let fields = routing_fields(&LabelSet::new(), details.as_deref());
    let service = service_of(&state.store, &key, &fields)
        .await
        .map_err(failed)?;
    let event = muster_domain::changes::events::NewChangeEvent {
        service,
        summary: event.summary,
        actor: None,
        source: event.source,
        at: event.timestamp,
        custom_details: event.custom_details,
        links: event.links,
    };
    let key_id = origin(&key, Source::Pagerduty).key_id;
    crate::api::changes::record_change_event(&state, key_id.as_deref(), &event)
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "PagerDuty change event failed");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"status": "error", "message": "internal error; the event was not stored"}),
            )
        })?;
    Ok(answer(
        StatusCode::ACCEPTED,
        json!({"status": "success", "message": "Change event processed"}),
    ))
}
