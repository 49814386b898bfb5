//! The overview: what is wrong, who is on it, what is changing, what is about to
//! expire — answered as far as the domains built so far allow.

use super::audit::{EntryRow, rows};
use super::{Nav, TimeView, Viewer};
use crate::AppState;
use crate::error::ApiError;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use muster_store::StoreError;
use muster_store::audit::AuditFilter;

pub struct RenewableRow {
    name: String,
    at: TimeView,
}

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    services: usize,
    teams: usize,
    people: usize,
    organisations: usize,
    schedules: usize,
    freezes: usize,
    renewables: Vec<RenewableRow>,
    entries: Vec<EntryRow>,
    on_call: Vec<super::oncall::TeamOnCall>,
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Response> {
    let fail = |e: StoreError| ApiError::from(e).into_response();
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let now = state.store.clock().now();
    let c = &snapshot.catalog;
    let mut renewables: Vec<(jiff::Timestamp, String)> = c
        .renewables
        .iter()
        .filter_map(|r| {
            let at = r.get("expires_at")?.as_str()?.parse().ok()?;
            Some((at, r.get("name")?.as_str()?.to_string()))
        })
        .collect();
    renewables.sort();
    let renewables = renewables
        .into_iter()
        .map(|(at, name)| RenewableRow {
            name,
            at: viewer.time(at, now),
        })
        .collect();
    let recent = state
        .store
        .audit_list(&AuditFilter {
            limit: 8,
            ..Default::default()
        })
        .await
        .map_err(fail)?;
    let page = HomePage {
        nav: viewer.nav("/"),
        services: c.services.len(),
        teams: c.teams.len(),
        people: c.people.len(),
        organisations: c.organisations.len(),
        schedules: c.schedules.len(),
        freezes: c.freezes.len(),
        renewables,
        entries: rows(&viewer, &recent, now),
        on_call: super::oncall::teams_on_call(&state, c, now).await?,
    };
    Ok(page.into_response())
}
