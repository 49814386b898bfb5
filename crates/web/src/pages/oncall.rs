//! On-call pages: who is on call now for each team, a schedule's next 14 days as a
//! timeline (each layer, the overrides, the final result with gaps), and the
//! notification log.

use super::{Nav, PageResult, TimeView, Viewer, fail, missing};
use crate::AppState;
use crate::api::oncall::{catalog_schedule, first_page, schedule};
use crate::error::ApiError;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use jiff::{Timestamp, ToSpan};
use muster_domain::auth::may_manage_calendar;
use muster_domain::catalog::Catalog;
use muster_domain::oncall::Schedule;
use muster_domain::oncall::escalation::teams_of_schedule;
use muster_store::StoreError;
use serde::Deserialize;

/// Days the schedule page shows.
pub const TIMELINE_DAYS: i64 = 14;
/// Width of one day in the timeline's SVG units.
const DAY_WIDTH: f64 = 100.0;

/// A person's display name, or the id when the catalog no longer has them.
fn name_of(catalog: &Catalog, id: &str) -> String {
    catalog
        .person(id)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| id.to_string())
}

/// One of eight colours, stable per person.
fn colour(person: &str) -> usize {
    person
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % 8
}

pub struct Bar {
    pub x: f64,
    pub width: f64,
    pub label: String,
    pub title: String,
    /// `c0` … `c7` for people, `gap` for nobody on call.
    pub class: String,
}

pub struct Row {
    pub name: String,
    pub y: f64,
    pub bars: Vec<Bar>,
}

pub struct Tick {
    pub x: f64,
    pub label: String,
}

pub struct Timeline {
    pub ticks: Vec<Tick>,
    pub rows: Vec<Row>,
    pub now_x: f64,
    pub width: f64,
    pub height: f64,
}

/// Lays out `[from, from + days)` of a schedule: a row per layer (its own rotation), a
/// row of overrides, and the final result with its gaps.
pub fn timeline(
    schedule: &Schedule,
    catalog: &Catalog,
    from: Timestamp,
    days: i64,
    now: Timestamp,
) -> Timeline {
    let to = from + (days * 24).hours();
    let span = (to.as_second() - from.as_second()) as f64;
    let width = DAY_WIDTH * days as f64;
    let x_of =
        |t: Timestamp| ((t.as_second() - from.as_second()) as f64 / span * width).clamp(0.0, width);
    let zone = &schedule.definition_at(now).timezone;
    let bar = |start: Timestamp, end: Timestamp, person: Option<&str>| {
        let (x, end_x) = (x_of(start), x_of(end));
        let when = format!(
            "{} – {}",
            start.to_zoned(zone.clone()).strftime("%a %d %b %H:%M"),
            end.to_zoned(zone.clone()).strftime("%a %d %b %H:%M %Z")
        );
        match person {
            Some(person) => {
                let name = name_of(catalog, person);
                Bar {
                    x,
                    width: end_x - x,
                    // Only where the bar is wide enough to hold it.
                    label: if end_x - x >= 40.0 {
                        name.clone()
                    } else {
                        String::new()
                    },
                    title: format!("{name}: {when}"),
                    class: format!("c{}", colour(person)),
                }
            }
            None => Bar {
                x,
                width: end_x - x,
                label: if end_x - x >= 40.0 {
                    "nobody".into()
                } else {
                    String::new()
                },
                title: format!("Nobody on call: {when}"),
                class: "gap".into(),
            },
        }
    };
    let mut rows: Vec<(String, Vec<Bar>)> = schedule
        .layer_shifts(from, to)
        .into_iter()
        .map(|(name, shifts)| {
            let bars = shifts
                .iter()
                .map(|s| bar(s.start, s.end, Some(&s.person)))
                .collect();
            (format!("Layer: {name}"), bars)
        })
        .collect();
    let override_bars = schedule
        .overrides
        .iter()
        .filter(|o| o.to > from && o.from < to)
        .map(|o| {
            let mut b = bar(o.from.max(from), o.to.min(to), Some(&o.person));
            if let Some(replaced) = &o.replaces {
                b.title = format!("{} (replacing {})", b.title, name_of(catalog, replaced));
            }
            b
        })
        .collect();
    rows.push(("Overrides".into(), override_bars));
    let result = schedule.shifts(from, to);
    let mut final_bars: Vec<Bar> = result
        .shifts
        .iter()
        .map(|s| bar(s.start, s.end, Some(&s.person)))
        .collect();
    final_bars.extend(result.gaps.iter().map(|g| bar(g.start, g.end, None)));
    rows.push(("Final".into(), final_bars));

    let ticks = (0..days)
        .map(|d| {
            let day = from + (d * 24).hours();
            Tick {
                x: x_of(day),
                label: day.to_zoned(zone.clone()).strftime("%a %d").to_string(),
            }
        })
        .collect();
    let rows: Vec<Row> = rows
        .into_iter()
        .enumerate()
        .map(|(i, (name, bars))| Row {
            name,
            y: 24.0 + i as f64 * 34.0,
            bars,
        })
        .collect();
    let height = 24.0 + rows.len() as f64 * 34.0;
    Timeline {
        ticks,
        rows,
        now_x: x_of(now),
        width,
        height,
    }
}

pub struct TeamOnCall {
    pub id: String,
    pub name: String,
    pub policy: Option<String>,
    pub people: Vec<(String, String)>,
}

/// Who a page for each team reaches now: the home page and the on-call page show it.
pub async fn teams_on_call(
    state: &AppState,
    catalog: &Catalog,
    now: Timestamp,
) -> Result<Vec<TeamOnCall>, Response> {
    let mut teams = Vec::new();
    for team in &catalog.teams {
        teams.push(TeamOnCall {
            id: team.id.clone(),
            name: team.name.clone(),
            policy: team.escalation_policy.clone(),
            people: paged_now(state, catalog, &team.id, now).await?,
        });
    }
    Ok(teams)
}

/// Who a page for `team` reaches at `now`, as (id, name).
pub async fn paged_now(
    state: &AppState,
    catalog: &Catalog,
    team: &str,
    now: Timestamp,
) -> Result<Vec<(String, String)>, Response> {
    let page = first_page(state, catalog, team, now).await.map_err(fail)?;
    Ok(page
        .map(|p| {
            p.people
                .iter()
                .map(|id| (id.clone(), name_of(catalog, id)))
                .collect()
        })
        .unwrap_or_default())
}

pub struct ScheduleRow {
    pub id: String,
    pub timezone: String,
    pub person: Option<(String, String)>,
    pub until: Option<TimeView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "oncall.html")]
struct OnCallPage {
    nav: Nav,
    teams: Vec<TeamOnCall>,
    schedules: Vec<ScheduleRow>,
}

pub async fn overview(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let catalog = &snapshot.catalog;
    let now = state.store.clock().now();
    let teams = teams_on_call(&state, catalog, now).await?;
    let mut schedules = Vec::new();
    for value in &catalog.schedules {
        let Some(id) = value.get("id").and_then(|v| v.as_str()) else {
            continue;
        };
        let loaded = schedule(&state, catalog, id, now).await.map_err(fail)?;
        let on = loaded.oncall_at(now);
        schedules.push(ScheduleRow {
            id: id.to_string(),
            timezone: loaded
                .definition_at(now)
                .timezone
                .iana_name()
                .unwrap_or("")
                .to_string(),
            person: on.map(|o| (o.person.clone(), name_of(catalog, &o.person))),
            until: loaded.oncall_until(now).map(|t| viewer.time(t, now)),
        });
    }
    Ok(OnCallPage {
        nav: viewer.nav("/oncall"),
        teams,
        schedules,
    }
    .into_response())
}

pub struct ShiftRow {
    pub person: Option<(String, String)>,
    pub start: TimeView,
    pub end: TimeView,
}

pub struct OverrideRow {
    pub id: String,
    pub person: (String, String),
    pub replaces: Option<String>,
    pub from: TimeView,
    pub to: TimeView,
    pub source: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "schedule.html")]
struct SchedulePage {
    nav: Nav,
    id: String,
    timezone: String,
    days: i64,
    timeline: Timeline,
    shifts: Vec<ShiftRow>,
    overrides: Vec<OverrideRow>,
    used_by: Vec<String>,
    definitions: Vec<DefinitionRow>,
}

/// One of a schedule's definitions over time, for its page.
pub struct DefinitionRow {
    /// `None` for the first (in force from the beginning).
    pub from: Option<TimeView>,
    pub timezone: String,
    pub layers: String,
    /// "in force", "earlier" or "pending".
    pub state: &'static str,
}

/// The schedule's definitions, newest first; empty when it was never changed.
fn definition_rows(schedule: &Schedule, viewer: &Viewer, now: Timestamp) -> Vec<DefinitionRow> {
    if schedule.definitions.len() < 2 {
        return Vec::new();
    }
    let in_force = schedule.definition_at(now);
    schedule
        .definitions
        .iter()
        .enumerate()
        .rev()
        .map(|(i, d)| DefinitionRow {
            from: d
                .effective_from
                .filter(|_| i > 0)
                .map(|t| viewer.time(t, now)),
            timezone: d.timezone.iana_name().unwrap_or("").to_string(),
            layers: d
                .layers
                .iter()
                .map(|l| format!("{} ({})", l.name, l.members.join(", ")))
                .collect::<Vec<_>>()
                .join("; "),
            state: if std::ptr::eq(d, in_force) {
                "in force"
            } else if d.effective_from.is_some_and(|t| t > now) && i > 0 {
                "pending"
            } else {
                "earlier"
            },
        })
        .collect()
}

pub async fn schedule_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let catalog = &snapshot.catalog;
    let from_catalog = match catalog_schedule(catalog, &id) {
        Ok(schedule) => schedule,
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {
            return Ok(missing(
                &viewer,
                format!("There is no schedule with id “{id}”."),
            ));
        }
        Err(e) => return Err(fail(e)),
    };
    let now = state.store.clock().now();
    // Midnight today is at most a day and a few hours back in any zone.
    let since = now - 48.hours();
    let loaded = schedule(&state, catalog, &id, since).await.map_err(fail)?;
    let in_force = loaded.definition_at(now);
    // From midnight today in the schedule's zone.
    let from = now
        .to_zoned(in_force.timezone.clone())
        .start_of_day()
        .map(|z| z.timestamp())
        .unwrap_or(now);
    let to = from + (TIMELINE_DAYS * 24).hours();
    let result = loaded.shifts(from, to);
    let mut shifts: Vec<ShiftRow> = result
        .shifts
        .iter()
        .map(|s| ShiftRow {
            person: Some((s.person.clone(), name_of(catalog, &s.person))),
            start: viewer.time(s.start, now),
            end: viewer.time(s.end, now),
        })
        .chain(result.gaps.iter().map(|g| ShiftRow {
            person: None,
            start: viewer.time(g.start, now),
            end: viewer.time(g.end, now),
        }))
        .collect();
    shifts.sort_by(|a, b| a.start.iso.cmp(&b.start.iso));
    let catalog_ids: Vec<&str> = from_catalog
        .overrides
        .iter()
        .map(|o| o.id.as_str())
        .collect();
    let overrides = loaded
        .overrides
        .iter()
        .filter(|o| o.to > now)
        .map(|o| OverrideRow {
            id: o.id.clone(),
            person: (o.person.clone(), name_of(catalog, &o.person)),
            replaces: o.replaces.as_deref().map(|r| name_of(catalog, r)),
            from: viewer.time(o.from, now),
            to: viewer.time(o.to, now),
            source: if catalog_ids.contains(&o.id.as_str()) {
                "catalog"
            } else {
                "API"
            },
        })
        .collect();
    let used_by = teams_of_schedule(catalog, &id).map(str::to_owned).collect();
    Ok(SchedulePage {
        nav: viewer.nav("/oncall"),
        timezone: in_force.timezone.iana_name().unwrap_or("").to_string(),
        timeline: timeline(&loaded, catalog, from, TIMELINE_DAYS, now),
        definitions: definition_rows(&loaded, &viewer, now),
        id,
        days: TIMELINE_DAYS,
        shifts,
        overrides,
        used_by,
    }
    .into_response())
}

pub struct NotificationRow {
    pub recipient: String,
    pub channel: String,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created: TimeView,
    /// When a queued message is next tried, if later than now (a rule's delay, a
    /// retry's backoff or a throttle).
    pub waits_until: Option<TimeView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    nav: Nav,
    recipient: Option<String>,
    rows: Vec<NotificationRow>,
}

#[derive(Deserialize)]
pub struct NotificationQuery {
    recipient: Option<String>,
}

/// The latest messages of one recipient (for the person page and the log).
pub async fn notification_rows(
    state: &AppState,
    viewer: &Viewer,
    recipient: Option<&str>,
    limit: i64,
) -> Result<Vec<NotificationRow>, StoreError> {
    let now = state.store.clock().now();
    let at = |ms: i64| Timestamp::from_millisecond(ms).unwrap_or(now);
    Ok(state
        .store
        .notifications(recipient, None, limit)
        .await?
        .into_iter()
        .map(|n| NotificationRow {
            created: viewer.time(at(n.created_at), now),
            waits_until: (n.status == "queued" && at(n.next_attempt_at) > now)
                .then(|| viewer.time(at(n.next_attempt_at), now)),
            recipient: n.recipient,
            channel: n.channel,
            subject: n.subject,
            status: n.status,
            attempts: n.attempts,
            last_error: n.last_error,
        })
        .collect())
}

pub async fn notifications(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<NotificationQuery>,
) -> PageResult {
    let recipient = query.recipient.filter(|r| !r.is_empty());
    let rows = notification_rows(&state, &viewer, recipient.as_deref(), 200)
        .await
        .map_err(fail)?;
    Ok(NotificationsPage {
        nav: viewer.nav("/notifications"),
        recipient,
        rows,
    }
    .into_response())
}

pub struct UpcomingShift {
    pub schedule: String,
    pub start: TimeView,
    pub end: TimeView,
}

/// `person`'s final shifts on every schedule over the next `days` days.
pub async fn upcoming_shifts(
    state: &AppState,
    viewer: &Viewer,
    catalog: &Catalog,
    person: &str,
    days: i64,
) -> Result<Vec<UpcomingShift>, Response> {
    let now = state.store.clock().now();
    let to = now + (days * 24).hours();
    let shifts = crate::api::oncall::person_shifts(state, catalog, person, now, to)
        .await
        .map_err(fail)?;
    Ok(shifts
        .into_iter()
        .map(|(schedule, shift)| UpcomingShift {
            schedule,
            start: viewer.time(shift.start, now),
            end: viewer.time(shift.end, now),
        })
        .collect())
}

/// The person page's "calendar link" button: a new feed URL, shown once.
pub async fn calendar_feed(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<super::CsrfForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| super::refused(&viewer, e))?;
    let principal = &viewer.principal;
    if !may_manage_calendar(principal.person.as_deref(), &principal.grant, &id) {
        return Err(super::refused(
            &viewer,
            ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "Only the person themselves or an editor can make their calendar link.",
            ),
        ));
    }
    let actor = muster_domain::audit::Actor {
        label: viewer.principal.label.clone(),
        person: viewer.principal.person.clone(),
        on_behalf_of: None,
        reason: None,
    };
    match crate::api::oncall::new_feed_url(&state, &actor, &id).await {
        Ok(url) => Ok(super::message(
            &viewer,
            axum::http::StatusCode::OK,
            "Calendar link",
            format!(
                "Subscribe to this address in your calendar app: {url} — it is shown only now. \
                 Anyone with it can see {id}'s shifts for the next {} days; making a new link revokes this one.",
                crate::api::oncall::FEED_DAYS
            ),
        )),
        Err(e) => Err(super::refused(&viewer, e)),
    }
}

#[derive(Deserialize)]
pub struct TestForm {
    csrf: String,
    /// Set by the "test page by the rules" button.
    #[serde(default)]
    follow_rules: Option<String>,
}

/// The person page's "send a test" buttons.
pub async fn test_notification(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<TestForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| super::refused(&viewer, e))?;
    let permission = muster_domain::auth::Permission::Respond;
    if !viewer.principal.grant.allows(permission, None) {
        return Err(super::refused(
            &viewer,
            ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                format!(
                    "Sending test notifications needs a role that may {}.",
                    permission.describe()
                ),
            ),
        ));
    }
    let by_rules = form.follow_rules.as_deref() == Some("true");
    match crate::api::notifications::queue_test(&state, &viewer.principal.label, &id, by_rules)
        .await
    {
        Ok(queued) => Ok(axum::response::Redirect::to(&format!(
            "/people/{}?tested={}&by_rules={by_rules}#notifications",
            percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC),
            queued.len()
        ))
        .into_response()),
        Err(e) => Err(super::refused(&viewer, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_timeline_shows_layers_overrides_and_gaps_to_scale() {
        let schedule = Schedule::from_json(&json!({
            "id": "s", "timezone": "UTC",
            "layers": [{"name": "days", "rotation": "daily", "handoff": "00:00",
                        "start": "2026-11-24", "members": ["a", "b"]}],
            "overrides": [{"person": "c", "from": "2026-11-25T12:00:00Z", "to": "2026-11-26T00:00:00Z"}]
        }))
        .unwrap();
        let from: Timestamp = "2026-11-23T00:00:00Z".parse().unwrap();
        let t = timeline(&schedule, &Catalog::default(), from, 4, from);
        assert_eq!(t.width, 400.0);
        assert_eq!(t.rows.len(), 3, "one layer, overrides, final");
        let final_row = &t.rows[2];
        let gap = final_row.bars.iter().find(|b| b.class == "gap").unwrap();
        assert_eq!(
            (gap.x, gap.width),
            (0.0, 100.0),
            "nobody before the first shift"
        );
        let cover = &t.rows[1].bars[0];
        assert_eq!((cover.x, cover.width), (250.0, 50.0));
        let people: Vec<&str> = final_row.bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(people, ["a", "b", "c", "a", "nobody"]);
        assert_eq!(t.ticks[1].label, "Tue 24");
    }
}
