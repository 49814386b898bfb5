//! The change calendar as iCalendar feeds: any number, each optionally for one team or
//! service, each behind its own revocable secret link.

use super::{Body, bounded};
use crate::AppState;
use crate::api::changes::scope;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use muster_domain::FieldErrors;
use muster_domain::auth::Permission;
use muster_domain::changes::calendar::{FeedChange, feed};
use muster_store::changes::ChangeQuery;
use serde::Deserialize;
use serde_json::{Value, json};

/// Days back and ahead a feed covers.
pub const FEED_DAYS_BACK: i64 = 30;
pub const FEED_DAYS_AHEAD: i64 = 180;
/// Most changes one feed lists.
const MAX_FEED_CHANGES: usize = 5000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewFeed {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    service: Option<String>,
}

/// `POST /api/v1/change-feeds` `{name, team, service}` (all optional): a new feed; its
/// link is shown in this answer only.
pub async fn create_feed(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<Response> {
    let made = make_feed(&state, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

/// Makes a feed from a `{name, team, service}` body, for the API and the calendar
/// page; answers it with its link.
pub(crate) async fn make_feed(state: &AppState, caller: &Caller, body: &Body) -> ApiResult<Value> {
    caller.require(Permission::Read, None)?;
    let request: NewFeed = body.parse_or_default()?;
    let snapshot = state.store.catalog().await?;
    let mut errors = FieldErrors::default();
    scope(
        &snapshot.catalog,
        request.team.as_deref(),
        request.service.as_deref(),
        &mut errors,
    );
    let blank = |v: Option<String>| v.filter(|t| !t.trim().is_empty());
    let (team, service) = (blank(request.team), blank(request.service));
    let name = blank(request.name).unwrap_or_else(|| {
        let of = team
            .iter()
            .chain(service.iter())
            .cloned()
            .collect::<Vec<_>>();
        if of.is_empty() {
            "Changes".to_string()
        } else {
            format!("Changes: {}", of.join(", "))
        }
    });
    bounded(&mut errors, "name", &name, 200, true);
    if !errors.is_empty() {
        return Err(ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors));
    }
    let (feed, token) = state
        .store
        .create_change_feed(
            &caller.actor(),
            name.trim(),
            team.as_deref(),
            service.as_deref(),
        )
        .await?;
    let mut made = json!(feed);
    made["url"] = json!(format!("{}/calendar/changes/{token}.ics", state.public_url));
    Ok(made)
}

/// `GET /api/v1/change-feeds`: the feeds (never their links).
pub async fn list_feeds(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let feeds = state.store.change_feeds().await?;
    Ok(Json(json!({ "items": feeds })))
}

/// `DELETE /api/v1/change-feeds/{id}`: revokes a feed, by the person who made it or
/// an editor.
pub async fn revoke_feed(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::Read, None)?;
    let gone = || ApiError::not_found(format!("no change feed {id:?}"));
    let number: i64 = id.parse().map_err(|_| gone())?;
    let feed = state
        .store
        .change_feeds()
        .await?
        .into_iter()
        .find(|f| f.id == number)
        .ok_or_else(gone)?;
    if feed.created_by != caller.principal.label {
        caller.require(Permission::Edit, None)?;
    }
    if state
        .store
        .revoke_change_feed(&caller.actor(), number)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(gone())
    }
}

/// `GET /calendar/changes/{token}.ics`: public (calendar apps send no credentials); the
/// secret token in the path is the credential. Unknown and revoked tokens are 404.
pub async fn serve_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    let gone = || ApiError::not_found("no such calendar feed (it may have been revoked)");
    let token = file.strip_suffix(".ics").ok_or_else(gone)?;
    let feed_record = state.store.change_feed(token).await?.ok_or_else(gone)?;
    // A feed reads with its maker's rights: it ends when they can no longer read.
    if !state
        .store
        .principal_active(&feed_record.created_by)
        .await?
    {
        return Err(gone());
    }
    let snapshot = state.store.catalog().await?;
    let catalog = &snapshot.catalog;
    let now = state.store.clock().now();
    // A team or service removed from the catalog since leaves an empty feed.
    let mut ignored = FieldErrors::default();
    let services = scope(
        catalog,
        feed_record.team.as_deref(),
        feed_record.service.as_deref(),
        &mut ignored,
    );
    let query = ChangeQuery {
        from: Some(now - SignedDuration::from_hours(FEED_DAYS_BACK * 24)),
        to: Some(now + SignedDuration::from_hours(FEED_DAYS_AHEAD * 24)),
        states: Vec::new(),
        services,
        limit: MAX_FEED_CHANGES,
    };
    let changes = state.store.changes(&query).await?;
    let names: Vec<Option<String>> = changes
        .iter()
        .map(|c| {
            c.implementer.as_deref().map(|id| {
                catalog
                    .person(id)
                    .map_or(id, |p| p.name.as_str())
                    .to_string()
            })
        })
        .collect();
    let events: Vec<FeedChange> = changes
        .iter()
        .zip(&names)
        .map(|(c, implementer)| FeedChange {
            number: &c.number,
            title: &c.title,
            state: c.state,
            change_type: c.change_type,
            services: &c.services,
            start: c.start,
            end: c.end,
            implementer: implementer.as_deref(),
            launch: c.launch,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
        .collect();
    let body = feed(&feed_record.name, &events, now, &state.public_url);
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response())
}
