//! The renewals registry over HTTP: what expires when, its targets and verification,
//! and the reminders sent for its current expiry.

use super::{Body, Params, acting_person, bounded};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use muster_domain::FieldErrors;
use muster_domain::auth::Permission;
use muster_domain::catalog::apply::plan_delete;
use muster_domain::clock::parse_duration;
use muster_domain::renewals::pipeline::{Move, Stage, stalls};
use muster_domain::renewals::probes::probed_targets;
use muster_domain::renewals::{Kind, Renewable, Verify, days, days_left};
use muster_store::renewals::{ReminderState, RenewalRecord};
use serde_json::{Value, json};

/// A renewable as the API shows it: its record, days left, its reminders for the
/// current expiry (`sent_at` null while not sent; `due_at` when it falls due), the
/// stage of its renewal (null before one starts) and the stages stalled now.
fn renewable_json(r: &Renewable, state: Option<&ReminderState>, now: Timestamp) -> Value {
    let sent = state.map(|s| &s.sent);
    let reminders: Vec<Value> = r
        .reminders
        .iter()
        .map(|d| json!({"days": d, "due_at": r.expires_at - days(*d), "sent_at": sent.and_then(|s| s.get(d))}))
        .collect();
    let renewal = state.and_then(|s| s.renewal.as_ref());
    let mut body = json!(r);
    body["days_left"] = json!(days_left(r.expires_at, now));
    body["reminders"] = json!(reminders);
    body["stage"] = json!(renewal.map(|r| r.stage()));
    body["stalls"] = json!(
        renewal
            .map(|renewal| stalls(r, renewal, now))
            .unwrap_or_default()
    );
    body
}

/// `GET /api/v1/renewables?expiring_within=90d&kind=&team=&stalled=`: renewables by
/// expiry, soonest first; `expiring_within` keeps those expiring before now + that
/// (expired ones included), `team` those it owns or buys, `stalled=true` those with
/// a stage past its deadline (`false` those without).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let now = state.store.clock().now();
    let horizon = params
        .text("expiring_within")
        .map(|text| match parse_duration(text) {
            Ok(d) if d.is_positive() => Ok(now + d),
            Ok(_) => Err(ApiError::field("expiring_within", "must be more than 0")),
            Err(why) => Err(ApiError::field("expiring_within", why)),
        })
        .transpose()?;
    let kind = params
        .text("kind")
        .map(|text| {
            Kind::parse(text).ok_or_else(|| {
                ApiError::field(
                    "kind",
                    format!("{text:?} is not a kind: use {}", Kind::names()),
                )
            })
        })
        .transpose()?;
    let stalled = match params.text("stalled") {
        None => None,
        Some(_) => Some(params.bool("stalled")?),
    };
    let snapshot = state.store.catalog().await?;
    let team = params.text("team");
    if let Some(id) = team
        && snapshot.catalog.team(id).is_none()
    {
        return Err(ApiError::field("team", format!("no team with id {id:?}")));
    }
    let limit = params.limit()?;
    let all = Renewable::of_catalog(&snapshot.catalog);
    let under_way = state.store.renewals_under_way(&all).await?;
    let mut renewables: Vec<&Renewable> = all
        .iter()
        .filter(|r| horizon.is_none_or(|h| r.expires_at <= h))
        .filter(|r| kind.is_none_or(|k| r.kind == k))
        .filter(|r| team.is_none_or(|t| r.owner == t || r.buyer.as_deref() == Some(t)))
        .filter(|r| {
            stalled.is_none_or(|wanted| {
                let now_stalled = under_way
                    .get(&r.id)
                    .is_some_and(|renewal| !stalls(r, renewal, now).is_empty());
                now_stalled == wanted
            })
        })
        .collect();
    renewables.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
    renewables.truncate(limit);
    let states = state.store.reminder_states(&renewables).await?;
    let items: Vec<Value> = renewables
        .iter()
        .map(|r| renewable_json(r, states.get(&r.id), now))
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn find(state: &AppState, id: &str) -> ApiResult<Renewable> {
    let snapshot = state.store.catalog().await?;
    Renewable::of_catalog(&snapshot.catalog)
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no renewable {id:?}")))
}

/// A renewable with its reminders and the renewal of its current expiry: `stage` (the
/// earliest of any target's), `progress`, per-target stages, the history, the stalls
/// now and the alarms raised (notified, paged with the incident).
pub(crate) async fn detail(state: &AppState, renewable: &Renewable) -> ApiResult<Value> {
    let now = state.store.clock().now();
    let states = state.store.reminder_states(&[renewable]).await?;
    let mut body = renewable_json(renewable, states.get(&renewable.id), now);
    let record = state
        .store
        .renewal(&renewable.id, renewable.expires_at)
        .await?;
    body["renewal"] = record.map_or(Value::Null, |r| renewal_json(&r, now));
    body["alarms"] = json!(state.store.renewal_alarms(renewable).await?);
    body["probes"] = json!(
        state
            .store
            .probe_history(&renewable.id, PROBES_SHOWN)
            .await?
    );
    Ok(body)
}

fn renewal_json(record: &RenewalRecord, now: Timestamp) -> Value {
    let r = &record.renewal;
    let (targets, applied, verified) = r.progress();
    let per_target: Value = r
        .targets
        .iter()
        .map(|(key, progress)| {
            let mut t = json!(progress);
            t["stage"] = json!(r.target_stage(key));
            (key.clone(), t)
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    json!({
        "stage": r.stage(), "since": r.since, "done_at": record.done_at,
        "status": r.wording(now),
        "progress": {"targets": targets, "applied": applied, "verified": verified},
        "ordered": r.ordered, "reference": r.reference, "received": r.received,
        "new_expires_at": r.new_expires_at, "identity": r.identity,
        "pin_warning": r.pin_warning, "pins_acknowledged": r.pins_acknowledged,
        "targets": per_target, "history": record.history,
    })
}

/// Probe results a renewable's answer carries, newest first.
const PROBES_SHOWN: usize = 50;

/// Refuses unless the caller responds for the renewable's owner or buyer team.
fn require_team(caller: &Caller, renewable: &Renewable) -> ApiResult<()> {
    let teams = [Some(renewable.owner.as_str()), renewable.buyer.as_deref()];
    if teams
        .iter()
        .flatten()
        .any(|t| caller.principal.grant.allows(Permission::Respond, Some(t)))
    {
        return Ok(());
    }
    caller.require(Permission::Respond, Some(&renewable.owner))
}

/// `POST /api/v1/renewables/{id}/probe`: probes every target verified by `tls` or
/// `http_json` now, records what was found (as the periodic probes do) and answers it
/// with what followed. By a responder of the owner or buyer team.
pub async fn probe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(probe_now(&state, &caller, &id).await?))
}

/// Probes renewable `id`'s targets now (the API's and the page's probe).
pub(crate) async fn probe_now(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Value> {
    let renewable = find(state, id).await?;
    require_team(caller, &renewable)?;
    let plans: Vec<(String, Verify)> = probed_targets(&renewable)
        .into_iter()
        .map(|(t, how)| (t.key.clone(), how))
        .collect();
    if plans.is_empty() {
        return Err(ApiError::invalid(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            muster_domain::FieldError::new(
                "verify",
                "every target is verified by attestation (manual): there is nothing to probe",
            )
            .into(),
        ));
    }
    let now = state.store.clock().now();
    let findings = state
        .prober
        .probe_all(
            vec![(renewable.clone(), plans)],
            muster_probe::DEFAULT_CONCURRENCY,
            now,
        )
        .await;
    let snapshot = state.store.catalog().await?;
    let reports = state
        .store
        .record_probes(&snapshot.catalog, &findings)
        .await?;
    let renewable = find(state, id).await?;
    let mut body = detail(state, &renewable).await?;
    body["probed"] = json!(reports);
    Ok(body)
}

/// `GET /api/v1/renewables/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    let renewable = find(&state, &id).await?;
    Ok(Json(detail(&state, &renewable).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    stage: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    new_expires_at: Option<String>,
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    evidence: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    acknowledge_pins: bool,
}

/// `POST /api/v1/renewables/{id}/renewal` `{stage, target, by, reference,
/// new_expires_at, identity, evidence, note}`: moves the renewal of the current
/// expiry. By a responder of the owner team or the buyer team.
pub async fn move_renewal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    Ok(Json(apply_move(&state, &caller, &id, body).await?))
}

/// Moves the renewal of renewable `id` as `body` asks (the API's and the page's
/// move); answers the renewable with the moved renewal.
pub(crate) async fn apply_move(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: Body,
) -> ApiResult<Value> {
    let request: MoveBody = body.parse()?;
    let renewable = find(state, id).await?;
    require_team(caller, &renewable)?;
    let snapshot = state.store.catalog().await?;
    let mut errors = FieldErrors::default();
    let stage = Stage::parse(&request.stage);
    if stage.is_none() {
        errors.push(
            "stage",
            format!("{:?} is not a stage: use {}", request.stage, Stage::names()),
        );
    }
    let by = acting_person(
        &snapshot.catalog,
        caller,
        request.by.as_deref(),
        &mut errors,
    );
    let new_expires_at = request.new_expires_at.as_deref().and_then(|text| {
        text.parse::<Timestamp>()
            .map_err(|_| {
                errors.push(
                    "new_expires_at",
                    format!("{text:?} is not an RFC 3339 instant (e.g. 2028-02-01T00:00:00Z)"),
                )
            })
            .ok()
    });
    for (field, value) in [
        ("reference", &request.reference),
        ("identity", &request.identity),
        ("evidence", &request.evidence),
        ("note", &request.note),
    ] {
        if let Some(text) = value {
            bounded(&mut errors, field, text, 2000, false);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            errors,
        ));
    }
    let request = Move {
        stage,
        target: request.target,
        by,
        reference: request.reference,
        new_expires_at,
        identity: request.identity,
        evidence: request.evidence,
        note: request.note,
        acknowledge_pins: request.acknowledge_pins,
    };
    let record = state
        .store
        .move_renewal(&caller.actor(), &snapshot.catalog, &renewable, &request)
        .await?;
    // After the move that finishes it, the renewable answers with its new expiry,
    // and with the renewal just done.
    let renewable = find(state, id).await?;
    let mut body = detail(state, &renewable).await?;
    body["renewal"] = renewal_json(&record, state.store.clock().now());
    Ok(body)
}

/// `GET /api/v1/artifacts`: shipped builds registered by `muster scan --register`, each
/// with the keys it pins and the renewables whose probes saw each key served.
pub async fn artifacts(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read, None)?;
    Ok(Json(json!({ "items": state.store.artifacts(None).await? })))
}

/// `POST /api/v1/artifacts/{id}/retire`: no client runs this build any more — its pins
/// stop mattering, and the renewables tracking its pinned certificates are removed. By
/// an editor of the artifact's owner team.
pub async fn retire_artifact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let artifact = state
        .store
        .artifacts(Some(&id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("no artifact {id:?}")))?;
    caller.require(Permission::Edit, Some(&artifact.owner))?;
    let retired = state.store.retire_artifact(&caller.actor(), &id).await?;
    let snapshot = state.store.catalog().await?;
    let tracking: Vec<String> = snapshot
        .catalog
        .renewables
        .iter()
        .filter(|r| r.get("artifact").and_then(Value::as_str) == Some(id.as_str()))
        .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
        .collect();
    for renewable in tracking {
        state
            .store
            .change_catalog(&caller.actor(), "", move |current| {
                plan_delete(current, muster_domain::catalog::Kind::Renewable, &renewable)
            })
            .await?;
    }
    Ok(Json(json!(retired)))
}
