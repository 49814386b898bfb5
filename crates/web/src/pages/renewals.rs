//! Renewal pages: the board (a column per stage, each renewal in the earliest stage of
//! any of its targets, per-target progress, days left coloured), the 12-month expiry
//! timeline, and one renewable with its targets, history, alarms and probe results,
//! with forms to move its renewal and to probe it now. Writes go through the API's
//! functions.

use super::{CsrfForm, Nav, PageResult, Viewer, api_body, fail, missing, refused};
use crate::AppState;
use crate::api::renewals::{apply_move, detail, find, probe_now};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use jiff::ToSpan;
use jiff::civil::Date;
use muster_domain::renewals::pipeline::{Stage, stalls};
use muster_domain::renewals::{Renewable, days_left};
use serde::Deserialize;
use serde_json::{Value, json};

/// A renewal on the board.
pub struct Card {
    id: String,
    name: String,
    kind: String,
    days: i64,
    /// `expired`, `urgent` (a week), `soon` (a month) or `later`: the colour.
    urgency: &'static str,
    expires: String,
    /// "received 9 days ago; applied 3 of 11; verified 2 of 11", or "not started".
    status: String,
    /// Targets applied and verified, of all (for the bars).
    progress: (usize, usize, usize),
    stalled: Vec<String>,
}

pub struct Column {
    title: &'static str,
    cards: Vec<Card>,
}

/// One month of the expiry timeline.
pub struct Month {
    label: String,
    count: usize,
    /// Bar height in the chart, 0–100.
    height: usize,
    /// The renewables expiring that month: (id, name, urgency).
    items: Vec<(String, String, &'static str)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "renewals.html")]
struct BoardPage {
    nav: Nav,
    columns: Vec<Column>,
    months: Vec<Month>,
    expired: Vec<(String, String)>,
}

fn urgency(days: i64) -> &'static str {
    match days {
        d if d < 0 => "expired",
        d if d < 7 => "urgent",
        d if d < 30 => "soon",
        _ => "later",
    }
}

/// How many days before expiry a renewable shows on the board before its renewal
/// starts: its first reminder.
fn upcoming(renewable: &Renewable) -> i64 {
    renewable.reminders.first().copied().unwrap_or(30)
}

/// `GET /renewals`: the board and the 12-month timeline.
pub async fn board(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let now = state.store.clock().now();
    let mut renewables = Renewable::of_catalog(&snapshot.catalog);
    renewables.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
    let under_way = state
        .store
        .renewals_under_way(&renewables)
        .await
        .map_err(fail)?;
    let titles = [
        ("Upcoming", None),
        ("Due", Some(Stage::Due)),
        ("Ordered", Some(Stage::Ordered)),
        ("Received", Some(Stage::Received)),
        ("Applied", Some(Stage::Applied)),
    ];
    let mut columns: Vec<Column> = titles
        .iter()
        .map(|(title, _)| Column {
            title,
            cards: Vec::new(),
        })
        .collect();
    for r in &renewables {
        let days = days_left(r.expires_at, now);
        let renewal = under_way.get(&r.id);
        if renewal.is_none() && days > upcoming(r) {
            continue;
        }
        let stage = renewal.map(|w| w.stage());
        let column = titles
            .iter()
            .position(|(_, s)| *s == stage)
            .unwrap_or(titles.len() - 1);
        columns[column].cards.push(Card {
            id: r.id.clone(),
            name: r.name.clone(),
            kind: r.kind.as_str().replace('_', " "),
            days,
            urgency: urgency(days),
            expires: r.expires_at.strftime("%Y-%m-%d").to_string(),
            status: renewal.map_or("not started".into(), |w| w.wording(now)),
            progress: renewal.map_or((r.targets.len(), 0, 0), |w| w.progress()),
            stalled: renewal
                .map(|w| {
                    stalls(r, w, now)
                        .into_iter()
                        .map(|s| format!("{} late ({})", s.stage.as_str(), s.team))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    // The next 12 months, from this one.
    let today: Date = now.to_zoned(viewer.zone.clone()).date();
    let first = today.first_of_month();
    let mut months: Vec<Month> = (0..12)
        .map(|i| {
            let start = first
                .checked_add((i as i64).months())
                .expect("within range");
            Month {
                label: start.strftime("%b %Y").to_string(),
                count: 0,
                height: 0,
                items: Vec::new(),
            }
        })
        .collect();
    let mut expired = Vec::new();
    for r in &renewables {
        let date = r.expires_at.to_zoned(viewer.zone.clone()).date();
        let days = days_left(r.expires_at, now);
        if days < 0 {
            expired.push((r.id.clone(), r.name.clone()));
            continue;
        }
        let index = (date.year() as i64 - first.year() as i64) * 12 + date.month() as i64
            - first.month() as i64;
        if let Some(month) = usize::try_from(index).ok().and_then(|i| months.get_mut(i)) {
            month.count += 1;
            month
                .items
                .push((r.id.clone(), r.name.clone(), urgency(days)));
        }
    }
    let most = months.iter().map(|m| m.count).max().unwrap_or(0).max(1);
    for month in &mut months {
        month.height = month.count * 100 / most;
    }
    Ok(BoardPage {
        nav: viewer.nav("/renewals"),
        columns,
        months,
        expired,
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "renewable.html")]
struct DetailPage {
    nav: Nav,
    error: Option<String>,
    r: Renewable,
    days: i64,
    urgency: &'static str,
    /// The renewal in words, or none before it starts; its reference, new expiry and
    /// identity as one line.
    status: Option<String>,
    received: String,
    stalled: Vec<String>,
    /// (target, stage, applied, verified, evidence, latest probe verdict)
    targets: Vec<(String, String, String, String, String, String)>,
    history: Vec<(String, String, String)>,
    alarms: Vec<String>,
    probes: Vec<(String, String, String, String)>,
    can_probe: bool,
    pin_warning: Option<String>,
    stages: Vec<&'static str>,
}

fn text(value: &Value) -> String {
    value.as_str().map(str::to_string).unwrap_or_default()
}

async fn detail_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    error: Option<String>,
) -> PageResult {
    let renewable = match find(state, id).await {
        Ok(r) => r,
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {
            return Err(missing(viewer, format!("No renewable {id}.")));
        }
        Err(e) => return Err(fail(e)),
    };
    let r = detail(state, &renewable).await.map_err(fail)?;
    let renewal = &r["renewal"];
    let probes = r["probes"].as_array().cloned().unwrap_or_default();
    let step = |v: &Value| {
        if v.is_null() {
            String::new()
        } else {
            format!(
                "{} {}",
                text(&v["by"]),
                text(&v["at"]).get(..10).unwrap_or("")
            )
        }
    };
    let targets = renewable
        .targets
        .iter()
        .map(|t| {
            let progress = &renewal["targets"][&t.key];
            let probe = probes
                .iter()
                .find(|p| p["target"] == t.key.as_str())
                .map(|p| match p["outcome"].as_str() {
                    Some("seen") => {
                        let problems: Vec<String> = p["problems"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(text)
                            .collect();
                        let verdict = if problems.is_empty() {
                            "valid".to_string()
                        } else {
                            problems.join("; ")
                        };
                        format!(
                            "{verdict}, expires {}",
                            text(&p["expires_at"]).get(..10).unwrap_or("")
                        )
                    }
                    _ => format!("failed: {}", text(&p["error"])),
                })
                .unwrap_or_default();
            (
                t.key.clone(),
                progress["stage"].as_str().unwrap_or("—").to_string(),
                step(&progress["applied"]),
                step(&progress["verified"]),
                text(&progress["evidence"]),
                probe,
            )
        })
        .collect();
    let history = renewal["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| (text(&h["at"]), text(&h["actor"]), text(&h["text"])))
        .collect();
    let alarms = r["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{} {} {}{}",
                text(&a["stage"]),
                text(&a["level"]),
                text(&a["at"]).get(..16).unwrap_or(""),
                a["incident"]
                    .as_str()
                    .map(|i| format!(" ({i})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let probe_rows = probes
        .iter()
        .take(20)
        .map(|p| {
            (
                text(&p["at"]),
                text(&p["target"]),
                text(&p["method"]),
                match p["outcome"].as_str() {
                    Some("seen") => format!(
                        "expires {}{}",
                        text(&p["expires_at"]).get(..10).unwrap_or(""),
                        p["identity"]
                            .as_str()
                            .map(|i| format!(", key {i}"))
                            .unwrap_or_default()
                    ),
                    _ => format!("failed: {}", text(&p["error"])),
                },
            )
        })
        .collect();
    let days = r["days_left"].as_i64().unwrap_or(0);
    let received = [
        ("reference", &renewal["reference"]),
        ("new expiry", &renewal["new_expires_at"]),
        ("identity", &renewal["identity"]),
    ]
    .iter()
    .filter_map(|(label, v)| v.as_str().map(|t| format!("{label} {t}")))
    .collect::<Vec<_>>()
    .join(" · ");
    let stalled = r["stalls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            format!(
                "{} late since {} (team {})",
                text(&s["stage"]),
                text(&s["deadline"]),
                text(&s["team"])
            )
        })
        .collect();
    let page = DetailPage {
        days,
        status: renewal["status"].as_str().map(str::to_string),
        received,
        stalled,
        nav: viewer.nav("/renewals"),
        error,
        urgency: urgency(days),
        targets,
        history,
        alarms,
        probes: probe_rows,
        can_probe: !muster_domain::renewals::probes::probed_targets(&renewable).is_empty(),
        pin_warning: renewal["pin_warning"].as_str().map(str::to_string),
        // A renewal becomes due by itself; every later stage is moved by hand.
        stages: Stage::ALL
            .iter()
            .filter(|s| **s != Stage::Due)
            .map(|s| s.as_str())
            .collect(),
        r: renewable,
    };
    Ok(page.into_response())
}

/// `GET /renewals/{id}`.
pub async fn renewable(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    detail_page(&state, &viewer, &id, None).await
}

#[derive(Deserialize)]
pub struct MoveForm {
    csrf: String,
    stage: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    new_expires_at: String,
    #[serde(default)]
    identity: String,
    #[serde(default)]
    evidence: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    acknowledge_pins: Option<String>,
}

/// `POST /renewals/{id}/move`: a move of the renewal, as the API makes it; a refusal
/// shows on the page naming the field.
pub async fn move_renewal(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<MoveForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    let given = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    // A date from the form is midnight UTC.
    let new_expires_at = given(&form.new_expires_at).map(|d| {
        if d.len() == 10 {
            format!("{d}T00:00:00Z")
        } else {
            d
        }
    });
    let body = json!({
        "stage": form.stage, "target": given(&form.target), "reference": given(&form.reference),
        "new_expires_at": new_expires_at, "identity": given(&form.identity),
        "evidence": given(&form.evidence), "note": given(&form.note),
        "acknowledge_pins": form.acknowledge_pins.is_some(),
    });
    match apply_move(&state, &viewer.caller(), &id, api_body(body)).await {
        Ok(_) => Ok(Redirect::to(&format!("/renewals/{id}")).into_response()),
        Err(e) => detail_page(&state, &viewer, &id, Some(e.detail)).await,
    }
}

/// `POST /renewals/{id}/probe`: probes it now.
pub async fn probe(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> PageResult {
    viewer
        .check_csrf(&form.csrf)
        .map_err(|e| refused(&viewer, e))?;
    match probe_now(&state, &viewer.caller(), &id).await {
        Ok(_) => Ok(Redirect::to(&format!("/renewals/{id}")).into_response()),
        Err(e) => detail_page(&state, &viewer, &id, Some(e.detail)).await,
    }
}
