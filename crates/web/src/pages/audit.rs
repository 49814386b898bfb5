//! The audit log page.

use super::{Nav, TimeView, Viewer, refused};
use crate::AppState;
use crate::api::Params;
use crate::error::ApiError;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use muster_domain::audit::AuditEntry;
use muster_domain::catalog::Kind;

/// One audit entry as shown, linking its entity where it has a page.
pub struct EntryRow {
    pub(super) seq: i64,
    pub(super) at: TimeView,
    pub(super) actor: String,
    pub(super) on_behalf_of: Option<String>,
    pub(super) action: String,
    pub(super) entity: String,
    pub(super) href: Option<String>,
    pub(super) reason: String,
    /// The entity before and after, pretty-printed; empty when not recorded.
    pub(super) before: String,
    pub(super) after: String,
}

/// Stored JSON state, indented for reading.
fn pretty(state: &Option<String>) -> String {
    let Some(text) = state else {
        return String::new();
    };
    serde_json::from_str::<serde_json::Value>(text)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| text.clone())
}

pub fn rows(viewer: &Viewer, entries: &[AuditEntry], now: jiff::Timestamp) -> Vec<EntryRow> {
    entries
        .iter()
        .map(|e| {
            let href = e.entity.split_once(':').and_then(|(kind, id)| {
                let kind = Kind::from_singular(kind)?;
                matches!(
                    kind,
                    Kind::Team | Kind::Person | Kind::Service | Kind::Organisation
                )
                .then(|| format!("/{}/{id}", kind.section()))
            });
            EntryRow {
                seq: e.seq,
                at: viewer.time(jiff::Timestamp::from_millisecond(e.at).unwrap_or(now), now),
                actor: e.actor.clone(),
                on_behalf_of: e.on_behalf_of.clone(),
                action: e.action.clone(),
                entity: e.entity.clone(),
                href,
                reason: e.reason.clone().unwrap_or_default(),
                before: pretty(&e.before),
                after: pretty(&e.after),
            }
        })
        .collect()
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    entity: String,
    actor: String,
    head_seq: i64,
    head_hash: String,
    entries: Vec<EntryRow>,
    next: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Params,
) -> Result<Response, Response> {
    let filter = crate::api::audit::filter(&params).map_err(|e| refused(&viewer, e))?;
    let mut entries = state
        .store
        .audit_list(&filter)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let (head_seq, head_hash) = state
        .store
        .audit_head()
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let entity = params.text("entity").unwrap_or("").to_string();
    let actor = params.text("actor").unwrap_or("").to_string();
    let next = if entries.len() as i64 == filter.limit {
        entries.pop();
        entries.last().map(|e| {
            let enc = |s: &str| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            };
            format!(
                "/audit?entity={}&actor={}&since={}&cursor={}",
                enc(&entity),
                enc(&actor),
                enc(params.text("since").unwrap_or("")),
                e.seq
            )
        })
    } else {
        None
    };
    let now = state.store.clock().now();
    let entries = rows(&viewer, &entries, now);
    Ok(AuditPage {
        nav: viewer.nav("/audit"),
        entity,
        actor,
        head_seq,
        head_hash,
        entries,
        next,
    }
    .into_response())
}
