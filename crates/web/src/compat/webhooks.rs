//! Webhook receivers for an Alertmanager (payload version 4) or Grafana (version 1)
//! kept in front of Muster: each alert of a notification updates the alert store like
//! a direct post. Keyed like the Alertmanager API (`Bearer` or `/i/{key}`).

use super::{Intake, Refused, ingest};
use crate::AppState;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_domain::signals::Source;
use muster_domain::signals::webhook::{self, Flavour};
use serde_json::json;

async fn receive(
    state: AppState,
    intake: Result<Intake, Refused>,
    body: Bytes,
    flavour: Flavour,
) -> Response {
    let outcome = async {
        let intake = intake.map_err(|r| ApiError::new(r.status, r.message))?;
        let key = intake
            .key()
            .map_err(|r| ApiError::new(r.status, r.message))?;
        let now = state.store.clock().now();
        let parsed = webhook::parse(&body, flavour, now)
            .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e))?;
        let source = match flavour {
            Flavour::Alertmanager => Source::AlertmanagerWebhook,
            Flavour::Grafana => Source::GrafanaWebhook,
        };
        let stored = ingest(&state.store, key, source, parsed.alerts).await?;
        metrics::counter!("muster_alerts_received_total", "source" => source.as_str())
            .increment(stored as u64);
        if !parsed.errors.is_empty() {
            // The valid alerts are kept; a 4xx tells the sender not to retry the rest.
            let mut error = ApiError::invalid(StatusCode::BAD_REQUEST, parsed.errors);
            error.detail = format!("{stored} alerts stored; refused: {}", error.detail);
            return Err(error);
        }
        Ok::<_, ApiError>(axum::Json(json!({"status": "success", "alerts": stored})))
    };
    match outcome.await {
        Ok(body) => body.into_response(),
        Err(error) => error.into_response(),
    }
}

pub async fn alertmanager(
    State(state): State<AppState>,
    intake: Result<Intake, Refused>,
    body: Bytes,
) -> Response {
    receive(state, intake, body, Flavour::Alertmanager).await
}

pub async fn grafana(
    State(state): State<AppState>,
    intake: Result<Intake, Refused>,
    body: Bytes,
) -> Response {
    receive(state, intake, body, Flavour::Grafana).await
}
