//! Alertmanager's API v2, so Prometheus and amtool work against Muster unchanged:
//! the same shapes, status codes and error bodies (`../shared/reference/compat-apis.md`).
//! Each service is a receiver; a service's key sees and silences its service only.

use super::{Intake, Refused, ingest};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use muster_domain::signals::matchers::{Matcher, MatcherBody};
use muster_domain::signals::postable::{self, AmError};
use muster_domain::signals::silences::{self, Silence, State as SilenceState, Update};
use muster_domain::signals::{LabelSet, Source};
use muster_store::signals::{AlertQuery, StoredAlert, uuid_v4};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Largest `POST /api/v2/alerts` body (Prometheus sends 64 alerts per request).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Alertmanager's default `resolve_timeout`: the end of an alert posted without one.
pub const RESOLVE_TIMEOUT: SignedDuration = SignedDuration::from_mins(5);

fn code_body(status: StatusCode, code: u16, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"code": code, "message": message}).to_string(),
    )
        .into_response()
}

fn string_body(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Value::String(message.to_string()).to_string(),
    )
        .into_response()
}

/// Alertmanager's answer for each kind of refusal.
pub fn refusal(error: AmError) -> Response {
    match error {
        AmError::Parse(m) => code_body(StatusCode::BAD_REQUEST, 400, &m),
        AmError::Required(m) => code_body(StatusCode::UNPROCESSABLE_ENTITY, 602, &m),
        AmError::Format(m) => code_body(StatusCode::UNPROCESSABLE_ENTITY, 601, &m),
        AmError::Invalid(m) => string_body(StatusCode::BAD_REQUEST, &m),
        AmError::NotFound(m) => string_body(StatusCode::NOT_FOUND, &m),
        AmError::Internal(m) => string_body(StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        code_body(self.status, self.status.as_u16(), &self.message)
    }
}

fn store_failed(error: muster_store::StoreError) -> Response {
    tracing::error!(%error, "alertmanager API request failed");
    string_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; the server log has the details",
    )
}

/// Alertmanager's timestamps: RFC 3339 in UTC with milliseconds.
fn instant(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

const ZERO_TIME: &str = "0001-01-01T00:00:00.000Z";

type Outcome = Result<Response, Response>;

fn json_ok(value: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

pub async fn post_alerts(
    State(state): State<AppState>,
    intake: Result<Intake, Refused>,
    headers: HeaderMap,
    body: Bytes,
) -> Outcome {
    let intake = intake.map_err(IntoResponse::into_response)?;
    let key = intake.key().map_err(|r| r.into_response())?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(code_body(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
            &format!(
                "unsupported media type {content_type:?}, only \"application/json\" is allowed"
            ),
        ));
    }
    let now = state.store.clock().now();
    let batch = postable::alerts(&body, now, RESOLVE_TIMEOUT).map_err(refusal)?;
    let error = batch.error();
    let count = ingest(&state.store, key, Source::Alertmanager, batch.alerts)
        .await
        .map_err(store_failed)?;
    metrics::counter!("muster_alerts_received_total", "source" => "alertmanager")
        .increment(count as u64);
    match error {
        Some(message) => Err(string_body(StatusCode::BAD_REQUEST, &message)),
        None => Ok(StatusCode::OK.into_response()),
    }
}

/// Query parameters, repeatable ones (`filter`) kept in order.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    crate::api::Params::pairs(query)
}

fn bool_param(pairs: &[(String, String)], name: &str) -> Result<bool, AmError> {
    match pairs.iter().rev().find(|(k, _)| k == name) {
        None => Ok(true),
        Some((_, v)) => match v.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(AmError::Parse(format!(
                "{name} in query must be of type boolean: \"{other}\""
            ))),
        },
    }
}

fn filters(pairs: &[(String, String)]) -> Result<Vec<Matcher>, AmError> {
    let mut matchers = Vec::new();
    for (_, text) in pairs.iter().filter(|(k, _)| k == "filter") {
        matchers.extend(Matcher::parse_list(text).map_err(AmError::Invalid)?);
    }
    Ok(matchers)
}

/// The alerts a caller may see with the silences that mute each, at `now`.
pub async fn visible_alerts(
    state: &AppState,
    service: Option<&str>,
) -> Result<Vec<(StoredAlert, Vec<String>)>, muster_store::StoreError> {
    let now = state.store.clock().now();
    let alerts = state
        .store
        .alerts(&AlertQuery {
            service: service.map(str::to_owned),
            ..AlertQuery::default()
        })
        .await?;
    let silences = active_silences(state, now).await?;
    Ok(alerts
        .into_iter()
        .map(|a| {
            let by = silenced_by(&silences, &a.service, &a.alert.labels, now);
            (a, by)
        })
        .collect())
}

/// Every active silence (silences of all scopes apply to every alert they match).
pub async fn active_silences(
    state: &AppState,
    now: Timestamp,
) -> Result<Vec<Silence>, muster_store::StoreError> {
    Ok(state
        .store
        .silences(None)
        .await?
        .into_iter()
        .filter(|s| s.state(now) == SilenceState::Active)
        .collect())
}

pub fn silenced_by(
    silences: &[Silence],
    service: &str,
    labels: &LabelSet,
    now: Timestamp,
) -> Vec<String> {
    silences
        .iter()
        .filter(|s| s.mutes(service, labels, now))
        .map(|s| s.id.clone())
        .collect()
}

fn gettable_alert(alert: &StoredAlert, silenced_by: &[String]) -> Value {
    let mut value = json!({
        "labels": alert.alert.labels,
        "annotations": alert.alert.annotations,
        "fingerprint": alert.fingerprint,
        "receivers": [{"name": alert.service}],
        "startsAt": instant(alert.alert.starts_at),
        "updatedAt": instant(alert.alert.updated_at),
        "endsAt": alert.alert.ends_at.map_or(ZERO_TIME.to_string(), instant),
        "status": {
            "state": if silenced_by.is_empty() { "active" } else { "suppressed" },
            "silencedBy": silenced_by,
            "inhibitedBy": [],
        },
    });
    if !alert.alert.generator_url.is_empty() {
        value["generatorURL"] = json!(alert.alert.generator_url);
    }
    value
}

/// The alerts `GET /api/v2/alerts` and `/alerts/groups` answer, filtered.
async fn selected(
    state: &AppState,
    intake: &Intake,
    query: Option<&str>,
) -> Result<Vec<Value>, Response> {
    let pairs = query_pairs(query);
    let active = bool_param(&pairs, "active").map_err(refusal)?;
    let silenced = bool_param(&pairs, "silenced").map_err(refusal)?;
    bool_param(&pairs, "inhibited").map_err(refusal)?;
    bool_param(&pairs, "unprocessed").map_err(refusal)?;
    let matchers = filters(&pairs).map_err(refusal)?;
    let receiver = match pairs.iter().find(|(k, _)| k == "receiver") {
        Some((_, re)) => Some(regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| {
            string_body(
                StatusCode::BAD_REQUEST,
                &format!("failed to parse receiver param: {e}"),
            )
        })?),
        None => None,
    };
    let alerts = visible_alerts(state, intake.service())
        .await
        .map_err(store_failed)?;
    Ok(alerts
        .iter()
        .filter(|(_, by)| if by.is_empty() { active } else { silenced })
        .filter(|(a, _)| matchers.iter().all(|m| m.matches(&a.alert.labels)))
        .filter(|(a, _)| receiver.as_ref().is_none_or(|re| re.is_match(&a.service)))
        .map(|(a, by)| gettable_alert(a, by))
        .collect())
}

pub async fn get_alerts(
    State(state): State<AppState>,
    intake: Result<Intake, Refused>,
    RawQuery(query): RawQuery,
) -> Outcome {
    let intake = intake.map_err(IntoResponse::into_response)?;
    let alerts = selected(&state, &intake, query.as_deref()).await?;
    Ok(json_ok(Value::Array(alerts)))
}

/// One group per receiver (service): Muster groups by service by default.
pub async fn get_groups(
    State(state): State<AppState>,
    intake: Result<Intake, Refused>,
    RawQuery(query): RawQuery,
) -> Outcome {
    let intake = intake.map_err(IntoResponse::into_response)?;
    let alerts = selected(&state, &intake, query.as_deref()).await?;
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for alert in alerts {
        let receiver = alert["receivers"][0]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match groups.iter_mut().find(|(r, _)| *r == receiver) {
            Some((_, list)) => list.push(alert),
            None => groups.push((receiver, vec![alert])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let body: Vec<Value> = groups
        .into_iter()
        .map(|(receiver, alerts)| json!({"labels": {}, "receiver": {"name": receiver}, "alerts": alerts}))
        .collect();
    Ok(json_ok(Value::Array(body)))
}

fn gettable_silence(s: &Silence, now: Timestamp) -> Value {
    json!({
        "id": s.id,
        "status": {"state": s.state(now).as_str()},
        "updatedAt": instant(s.updated_at),
        "matchers": s.matchers.iter().map(MatcherBody::from).collect::<Vec<_>>(),
        "startsAt": instant(s.starts_at),
        "endsAt": instant(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
    })
}

/// Alertmanager's order: active by end, then pending by start, then expired, most
/// recently ended first.
fn sort_silences(list: &mut [Silence], now: Timestamp) {
    let rank = |s: &Silence| match s.state(now) {
        SilenceState::Active => 0,
        SilenceState::Pending => 1,
        SilenceState::Expired => 2,
    };
    list.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| match a.state(now) {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
}

/// Alertmanager's silence filter: every filter matcher must match the value of a
/// silence matcher with the same name.
fn silence_selected(s: &Silence, filters: &[Matcher]) -> bool {
    filters.iter().all(|f| {
        s.matchers
            .iter()
            .any(|m| m.name == f.name && f.matches_value(&m.value))
    })
}

pub async fn get_silences(
    State(state): State<AppState>,
    intake: Result<Intake, Refused>,
    RawQuery(query): RawQuery,
) -> Outcome {
    let intake = intake.map_err(IntoResponse::into_response)?;
    let pairs = query_pairs(query.as_deref());
    let filters = filters(&pairs).map_err(refusal)?;
    let now = state.store.clock().now();
    let mut list = state
        .store
        .silences(intake.service())
        .await
        .map_err(store_failed)?;
    list.retain(|s| silence_selected(s, &filters));
    sort_silences(&mut list, now);
    Ok(json_ok(Value::Array(
        list.iter().map(|s| gettable_silence(s, now)).collect(),
    )))
}

fn uuid_shaped(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A silence the caller may see, by id; 422 for an id that is not a UUID, as
/// Alertmanager's spec checks.
async fn own_silence(
    state: &AppState,
    intake: &Intake,
    id: &str,
) -> Result<Option<Silence>, Response> {
    if !uuid_shaped(id) {
        return Err(code_body(
            StatusCode::UNPROCESSABLE_ENTITY,
            601,
            &format!("silenceID in path must be of type uuid: \"{id}\""),
        ));
    }
    let found = state.store.silence(id).await.map_err(store_failed)?;
    Ok(found.filter(|s| visible(intake, s)))
}

pub async fn post_silence(
    State(state): State<AppState>,
    intake: Result<Intake, Refused>,
    body: Bytes,
) -> Outcome {
    let intake = intake.map_err(IntoResponse::into_response)?;
    intake.may_silence().map_err(|r| r.into_response())?;
    let now = state.store.clock().now();
    let posted = postable::silence(&body, now).map_err(refusal)?;
    if !posted.id.is_empty() && !uuid_shaped(&posted.id) {
        return Err(string_body(StatusCode::NOT_FOUND, "silence not found"));
    }
    let id = save_silence(&state, &intake, posted)
        .await
        .map_err(refusal)?;
    Ok(json_ok(json!({"silenceID": id})))
}

/// Stores a posted silence by Alertmanager's rules: validated; with the id of one the
/// caller may see, updated in place when allowed, else replaced (the old one expired);
/// a new one starts no earlier than now. Returns the silence's id. The API and the
/// silences page share it.
pub async fn save_silence(
    state: &AppState,
    intake: &Intake,
    mut posted: Silence,
) -> Result<String, AmError> {
    let now = state.store.clock().now();
    let internal = |e: muster_store::StoreError| {
        tracing::error!(error = %e, "saving a silence failed");
        AmError::Internal("internal error; the server log has the details".into())
    };
    posted.service = intake.service().map(str::to_owned);
    silences::validate(&posted, now).map_err(AmError::Invalid)?;
    let mut expired = None;
    if !posted.id.is_empty() {
        let stored = state
            .store
            .silence(&posted.id)
            .await
            .map_err(internal)?
            .filter(|s| writable(intake, s))
            .ok_or_else(|| AmError::NotFound("silence not found".into()))?;
        posted.service = stored.service.clone();
        if let Update::Replace { expire_old } = silences::update(&stored, &posted, now) {
            if expire_old {
                expired = Some(silences::expired(&stored, now).map_err(AmError::Invalid)?);
            }
            posted.id = String::new();
        }
    }
    if posted.id.is_empty() {
        posted.id = uuid_v4();
        posted.starts_at = posted.starts_at.max(now);
    }
    state
        .store
        .save_silence(&intake.actor(), &posted, expired.as_ref())
        .await
        .map_err(internal)?;
    Ok(posted.id)
}

/// Expires a silence (Alertmanager's DELETE); expiring an expired one is refused.
pub async fn expire_silence(
    state: &AppState,
    intake: &Intake,
    silence: &Silence,
) -> Result<(), AmError> {
    let now = state.store.clock().now();
    let expired = silences::expired(silence, now).map_err(AmError::Internal)?;
    state
        .store
        .save_silence(&intake.actor(), &expired, None)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "expiring a silence failed");
            AmError::Internal("internal error; the server log has the details".into())
        })
}

/// A service's key sees its service's silences and those of every service (they may
/// mute its alerts)...
fn visible(intake: &Intake, silence: &Silence) -> bool {
    silence.service.is_none() || writable(intake, silence)
}

/// ...but changes or expires its service's silences only.
fn writable(intake: &Intake, silence: &Silence) -> bool {
    intake
        .service()
        .is_none_or(|svc| silence.service.as_deref() == Some(svc))
}

/// The silence `/silence/{id}` names, if the caller may see it; else Alertmanager's
/// empty 404.
async fn named_silence(
    state: &AppState,
    intake: &Intake,
    params: &HashMap<String, String>,
) -> Result<Silence, Response> {
    let id = params.get("id").map(String::as_str).unwrap_or("");
    own_silence(state, intake, id)
        .await?
        .ok_or_else(|| StatusCode::NOT_FOUND.into_response())
}

pub async fn get_silence(
    State(state): State<AppState>,
    intake: Result<Intake, Refused>,
    Path(params): Path<HashMap<String, String>>,
) -> Outcome {
    let intake = intake.map_err(IntoResponse::into_response)?;
    let silence = named_silence(&state, &intake, &params).await?;
    Ok(json_ok(gettable_silence(
        &silence,
        state.store.clock().now(),
    )))
}

pub async fn delete_silence(
    State(state): State<AppState>,
    intake: Result<Intake, Refused>,
    Path(params): Path<HashMap<String, String>>,
) -> Outcome {
    let intake = intake.map_err(IntoResponse::into_response)?;
    intake.may_silence().map_err(|r| r.into_response())?;
    let silence = named_silence(&state, &intake, &params).await?;
    if !writable(&intake, &silence) {
        return Err(code_body(
            StatusCode::FORBIDDEN,
            403,
            "this silence mutes every service's alerts: a service's key may not expire it",
        ));
    }
    expire_silence(&state, &intake, &silence)
        .await
        .map_err(refusal)?;
    Ok(StatusCode::OK.into_response())
}

pub async fn status(State(state): State<AppState>, intake: Result<Intake, Refused>) -> Outcome {
    let intake = intake.map_err(IntoResponse::into_response)?;
    let receivers = receiver_names(&state, &intake).await?;
    let mut config = String::from(
        "# Muster answers Alertmanager's API: each service is a receiver, alerts are grouped by service.\nroute:\n  receiver: muster\nreceivers:\n",
    );
    for name in &receivers {
        config.push_str(&format!("  - name: {name}\n"));
    }
    Ok(json_ok(json!({
        "cluster": {"name": "muster", "status": "disabled", "peers": []},
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "",
            "branch": "",
            "buildUser": "muster",
            "buildDate": "",
            "goVersion": "none (Muster is written in Rust)",
        },
        "config": {"original": config},
        "uptime": instant(state.started_at),
    })))
}

async fn receiver_names(state: &AppState, intake: &Intake) -> Result<Vec<String>, Response> {
    Ok(match intake.service() {
        Some(service) => vec![service.to_string()],
        None => state
            .store
            .catalog()
            .await
            .map_err(store_failed)?
            .catalog
            .services
            .iter()
            .map(|s| s.id.clone())
            .collect(),
    })
}

pub async fn receivers(State(state): State<AppState>, intake: Result<Intake, Refused>) -> Outcome {
    let intake = intake.map_err(IntoResponse::into_response)?;
    let names = receiver_names(&state, &intake).await?;
    Ok(json_ok(Value::Array(
        names
            .into_iter()
            .map(|name| json!({"name": name}))
            .collect(),
    )))
}

pub async fn healthy() -> &'static str {
    "OK"
}

pub async fn ready() -> &'static str {
    "OK"
}
