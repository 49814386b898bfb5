//! Acknowledgement links from pages: `GET /ack/{token}` shows the incident and a
//! confirmation button and changes nothing (mail scanners follow links);
//! `POST /ack/{token}` acknowledges, once, without signing in. The token is the
//! credential; it stops working when the incident resolves.

use crate::AppState;
use crate::error::ApiError;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_domain::incidents::State as IncidentState;
use muster_store::incidents::{AckLink, Incident, LinkOutcome};

#[derive(Template, WebTemplate)]
#[template(path = "ack.html")]
struct AckPage {
    heading: String,
    incident: Option<Incident>,
    message: String,
    confirm: bool,
    person: String,
}

fn page(
    status: StatusCode,
    heading: &str,
    link: Option<AckLink>,
    message: String,
    confirm: bool,
) -> Response {
    let person = link.as_ref().map(|l| l.person.clone()).unwrap_or_default();
    let page = AckPage {
        heading: heading.into(),
        incident: link.map(|l| l.incident),
        message,
        confirm,
        person,
    };
    (
        status,
        [
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
        ],
        page,
    )
        .into_response()
}

fn unknown() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not recognised",
        None,
        "This acknowledgement link is not valid. Open the incident in Muster instead.".into(),
        false,
    )
}

/// Why a link no longer acknowledges.
fn unchanged(link: AckLink) -> Response {
    let message = match &link.incident.acknowledged_by {
        Some(by) if *by == link.person => {
            "You acknowledged it already; the incident stays as it is.".to_string()
        }
        Some(by) => format!("Already acknowledged by {by}; nothing changed."),
        None => format!(
            "The incident is {}; nothing changed.",
            link.incident.state.as_str()
        ),
    };
    page(
        StatusCode::CONFLICT,
        "Nothing to acknowledge",
        Some(link),
        message,
        false,
    )
}

fn expired(link: AckLink) -> Response {
    page(
        StatusCode::GONE,
        "Link expired",
        Some(link),
        "The incident is resolved, so its acknowledgement links have expired.".into(),
        false,
    )
}

pub async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.store.ack_link(&token).await {
        Ok(None) => unknown(),
        Ok(Some(link)) if link.incident.state == IncidentState::Resolved => expired(link),
        Ok(Some(link)) if link.incident.state == IncidentState::Triggered => {
            let message = format!(
                "You were paged about this incident. Confirm to acknowledge it as {}.",
                link.person
            );
            page(
                StatusCode::OK,
                "Acknowledge this incident?",
                Some(link),
                message,
                true,
            )
        }
        Ok(Some(link)) => unchanged(link),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.store.acknowledge_by_link(&token).await {
        Ok(LinkOutcome::Acknowledged(incident)) => {
            let message = format!(
                "{} is acknowledged; further escalation steps are stopped.",
                incident.number
            );
            let person = incident.acknowledged_by.clone().unwrap_or_default();
            page(
                StatusCode::OK,
                "Acknowledged",
                Some(AckLink { incident, person }),
                message,
                false,
            )
        }
        Ok(LinkOutcome::Unchanged(link)) => unchanged(link),
        Ok(LinkOutcome::Expired(link)) => expired(link),
        Ok(LinkOutcome::Unknown) => unknown(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
