//! The renewal pipeline: a renewal is done only when it is verified live on every
//! target. `due` → `ordered` (by whom, a reference) → `received` (the new expiry and
//! identity) → `applied` per target → `verified` per target → done, when the expiry
//! moves. Each move is checked here; the store keeps the state and its history.

use super::Renewable;
use crate::clock::{format_duration, parse_duration};
use jiff::{SignedDuration, Timestamp};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

crate::named!(
    /// Where a renewal stands; ordered as the pipeline runs.
    Stage {
        Due => "due",
        Ordered => "ordered",
        Received => "received",
        Applied => "applied",
        Verified => "verified",
    }
);

/// Who did a step, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub by: String,
    pub at: Timestamp,
}

/// A target's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetProgress {
    pub applied: Option<Step>,
    pub verified: Option<Step>,
    /// What the verification rests on (a probe's finding, an attestation's evidence).
    pub evidence: Option<String>,
    /// The new item's expiry on this target, when a probe saw it (else the renewal's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// One renewal of one expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewal {
    /// The expiry being renewed.
    pub expires_at: Timestamp,
    /// When it became due (its first reminder, or the order when that came first).
    pub since: Timestamp,
    pub ordered: Option<Step>,
    pub reference: Option<String>,
    pub received: Option<Step>,
    pub new_expires_at: Option<Timestamp>,
    /// The new item's identity (certificate SPKI or fingerprint, a licence key's
    /// fingerprint), never the secret.
    pub identity: Option<String>,
    pub targets: BTreeMap<String, TargetProgress>,
    /// Artifacts in use pin another key than the one received: applying needs an
    /// acknowledgement first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_warning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pins_acknowledged: Option<Step>,
}

/// A move asked for.
#[derive(Debug, Clone, Default)]
pub struct Move {
    pub stage: Option<Stage>,
    pub target: Option<String>,
    pub by: String,
    pub reference: Option<String>,
    pub new_expires_at: Option<Timestamp>,
    pub identity: Option<String>,
    pub evidence: Option<String>,
    /// Kept with the move in the history.
    pub note: Option<String>,
    /// Applies even though artifacts in use pin another key (see `pin_warning`).
    pub acknowledge_pins: bool,
}

/// Why a move is refused: the field (or rule) and the reason.
pub type Refusal = (String, String);

fn refuse(field: &str, why: impl Into<String>) -> Refusal {
    (field.to_string(), why.into())
}

impl Renewal {
    /// A renewal of `renewable`'s current expiry, due since `since`.
    pub fn start(renewable: &Renewable, since: Timestamp) -> Renewal {
        Renewal {
            expires_at: renewable.expires_at,
            since,
            ordered: None,
            reference: None,
            received: None,
            new_expires_at: None,
            identity: None,
            pin_warning: None,
            pins_acknowledged: None,
            targets: renewable
                .targets
                .iter()
                .map(|t| (t.key.clone(), TargetProgress::default()))
                .collect(),
        }
    }

    /// The stage of one target.
    pub fn target_stage(&self, key: &str) -> Stage {
        match (self.targets.get(key), &self.received, &self.ordered) {
            (Some(t), _, _) if t.verified.is_some() => Stage::Verified,
            (Some(t), _, _) if t.applied.is_some() => Stage::Applied,
            (_, Some(_), _) => Stage::Received,
            (_, None, Some(_)) => Stage::Ordered,
            _ => Stage::Due,
        }
    }

    /// Where the renewal sits on the board: the earliest stage of any target.
    pub fn stage(&self) -> Stage {
        self.targets
            .keys()
            .map(|k| self.target_stage(k))
            .min()
            .unwrap_or(Stage::Due)
    }

    /// The expiry the renewable moves to when done: the earliest of its targets' new
    /// ones (as probes saw them, else as received).
    pub fn new_expiry(&self) -> Option<Timestamp> {
        self.targets
            .values()
            .map(|t| t.expires_at.or(self.new_expires_at))
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
    }

    /// Done: verified live on every target.
    pub fn is_done(&self) -> bool {
        self.stage() == Stage::Verified
    }

    /// (targets, applied, verified).
    pub fn progress(&self) -> (usize, usize, usize) {
        let applied = self
            .targets
            .values()
            .filter(|t| t.applied.is_some())
            .count();
        let verified = self
            .targets
            .values()
            .filter(|t| t.verified.is_some())
            .count();
        (self.targets.len(), applied, verified)
    }

    /// The targets not yet verified live (still on the old item, as far as anyone
    /// knows).
    pub fn unverified(&self) -> Vec<String> {
        self.targets
            .iter()
            .filter(|(_, t)| t.verified.is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Where it stands in words: "received 9 days ago; applied 3 of 11; verified 2 of
    /// 11", "ordered today by paul", "due, not ordered".
    pub fn wording(&self, now: Timestamp) -> String {
        let ago = |at: Timestamp| match super::days_left(now, at) {
            d if d <= 0 => "today".to_string(),
            1 => "1 day ago".to_string(),
            d => format!("{d} days ago"),
        };
        let (all, applied, verified) = self.progress();
        match (&self.received, &self.ordered) {
            _ if self.is_done() => format!("done: verified on all {all} targets"),
            (Some(received), _) => format!(
                "received {}; applied {applied} of {all}; verified {verified} of {all}",
                ago(received.at)
            ),
            (None, Some(ordered)) => format!("ordered {} by {}", ago(ordered.at), ordered.by),
            (None, None) => "due, not ordered".to_string(),
        }
    }

    /// Applies a move, or says why not (naming the field or the rule); on refusal the
    /// renewal is unchanged. Answers the history's words for it.
    pub fn apply(&mut self, request: &Move, now: Timestamp) -> Result<String, Refusal> {
        let Some(stage) = request.stage else {
            return Err(refuse(
                "stage",
                format!("is required: one of {}", Stage::names()),
            ));
        };
        if request.by.trim().is_empty() {
            return Err(refuse("by", "is required: the person who did it"));
        }
        let step = Step {
            by: request.by.clone(),
            at: now,
        };
        let needs_target = matches!(stage, Stage::Applied | Stage::Verified);
        let target = match (&request.target, needs_target) {
            (Some(key), true) if self.targets.contains_key(key) => Some(key.clone()),
            (Some(key), true) => {
                let known: Vec<&str> = self.targets.keys().map(String::as_str).collect();
                return Err(refuse(
                    "target",
                    format!(
                        "{key:?} is not a target of this renewable: {}",
                        known.join(", ")
                    ),
                ));
            }
            (None, true) => {
                return Err(refuse(
                    "target",
                    format!("is required for {}", stage.as_str()),
                ));
            }
            (Some(_), false) => {
                return Err(refuse(
                    "target",
                    format!(
                        "{} is for the whole renewal, not one target",
                        stage.as_str()
                    ),
                ));
            }
            (None, false) => None,
        };
        let out_of_order = |needed: &str| {
            refuse(
                "stage",
                format!(
                    "{} comes after {needed}; the renewal is at {}",
                    stage.as_str(),
                    self.stage().as_str()
                ),
            )
        };
        let text = match stage {
            Stage::Due => Err(refuse(
                "stage",
                "a renewal becomes due by itself, with its first reminder",
            )),
            Stage::Ordered => {
                if self.ordered.is_some() {
                    return Err(refuse("stage", "it is ordered already"));
                }
                self.ordered = Some(step);
                self.reference = request.reference.clone().filter(|r| !r.trim().is_empty());
                Ok(match &self.reference {
                    Some(r) => format!("Ordered by {} (reference {r})", request.by),
                    None => format!("Ordered by {}", request.by),
                })
            }
            Stage::Received => {
                if self.ordered.is_none() {
                    return Err(out_of_order("ordered"));
                }
                if self.received.is_some() {
                    return Err(refuse("stage", "it is received already"));
                }
                let Some(new_expiry) = request.new_expires_at else {
                    return Err(refuse(
                        "new_expires_at",
                        "is required: the new item's expiry",
                    ));
                };
                if new_expiry <= self.expires_at {
                    return Err(refuse(
                        "new_expires_at",
                        format!(
                            "{new_expiry} is not after the current expiry {}",
                            self.expires_at
                        ),
                    ));
                }
                self.received = Some(step);
                self.new_expires_at = Some(new_expiry);
                self.identity = request.identity.clone().filter(|i| !i.trim().is_empty());
                Ok(format!(
                    "Received by {}; expires {}{}",
                    request.by,
                    new_expiry.strftime("%Y-%m-%d"),
                    self.identity
                        .as_ref()
                        .map(|i| format!("; identity {i}"))
                        .unwrap_or_default()
                ))
            }
            Stage::Applied => {
                let key = target.expect("checked above");
                if self.received.is_none() {
                    return Err(out_of_order("received"));
                }
                if let Some(warning) = &self.pin_warning
                    && self.pins_acknowledged.is_none()
                {
                    if !request.acknowledge_pins {
                        return Err(refuse(
                            "acknowledge_pins",
                            format!("{warning}: send acknowledge_pins: true to apply it anyway"),
                        ));
                    }
                    self.pins_acknowledged = Some(step.clone());
                }
                let progress = self.targets.get_mut(&key).expect("checked above");
                if progress.applied.is_some() {
                    return Err(refuse("target", format!("{key:?} is applied already")));
                }
                progress.applied = Some(step);
                let (all, applied, _) = self.progress();
                Ok(format!(
                    "Applied on {key} by {}; applied {applied} of {all}",
                    request.by
                ))
            }
            Stage::Verified => {
                let key = target.expect("checked above");
                let evidence = request.evidence.clone().filter(|e| !e.trim().is_empty());
                let progress = self.targets.get_mut(&key).expect("checked above");
                if progress.applied.is_none() {
                    return Err(refuse("target", format!("{key:?} is not applied yet")));
                }
                if progress.verified.is_some() {
                    return Err(refuse("target", format!("{key:?} is verified already")));
                }
                let Some(evidence) = evidence else {
                    return Err(refuse(
                        "evidence",
                        "is required to verify by attestation: what was seen",
                    ));
                };
                progress.verified = Some(step);
                progress.evidence = Some(evidence);
                let (all, _, verified) = self.progress();
                Ok(format!(
                    "Verified on {key} by {}; verified {verified} of {all}",
                    request.by
                ))
            }
        }?;
        Ok(match request.note.as_deref().map(str::trim) {
            Some(note) if !note.is_empty() => format!("{text}: {note}"),
            _ => text,
        })
    }
}

/// How long each stage may take (from entering it) before it is stalled, and how long
/// after the team holding it is told before its escalation policy is paged. A
/// renewable's `deadlines: {order: 14d, apply: 2d, verify: 1d, escalate_after: 24h}`
/// changes any of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlines {
    pub order: SignedDuration,
    pub apply: SignedDuration,
    pub verify: SignedDuration,
    pub escalate_after: SignedDuration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            order: SignedDuration::from_hours(14 * 24),
            apply: SignedDuration::from_hours(2 * 24),
            verify: SignedDuration::from_hours(24),
            escalate_after: SignedDuration::from_hours(24),
        }
    }
}

impl Deadlines {
    const FIELDS: [&str; 4] = ["order", "apply", "verify", "escalate_after"];

    /// The catalog's `deadlines` mapping: any of its four durations, the rest default.
    pub fn read(value: &Value) -> Result<Deadlines, Refusal> {
        let Value::Object(fields) = value else {
            return Err(refuse(
                "deadlines",
                "is a mapping such as {order: 14d, apply: 2d, verify: 1d, escalate_after: 24h}",
            ));
        };
        let mut deadlines = Deadlines::default();
        for (name, given) in fields {
            let field = format!("deadlines.{name}");
            let slot = match name.as_str() {
                "order" => &mut deadlines.order,
                "apply" => &mut deadlines.apply,
                "verify" => &mut deadlines.verify,
                "escalate_after" => &mut deadlines.escalate_after,
                _ => {
                    return Err(refuse(
                        &field,
                        format!("is not a deadline: use {}", Deadlines::FIELDS.join(", ")),
                    ));
                }
            };
            let text = given
                .as_str()
                .ok_or_else(|| refuse(&field, format!("{given} is not a duration such as 2d")))?;
            let duration = parse_duration(text).map_err(|why| refuse(&field, why))?;
            if !duration.is_positive() || duration > SignedDuration::from_hours(3650 * 24) {
                return Err(refuse(
                    &field,
                    format!("{text:?}: use more than 0, at most 3650d"),
                ));
            }
            *slot = duration;
        }
        Ok(deadlines)
    }
}

impl Serialize for Deadlines {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let values = [self.order, self.apply, self.verify, self.escalate_after];
        let mut map = serializer.serialize_map(Some(4))?;
        for (name, value) in Deadlines::FIELDS.iter().zip(values) {
            map.serialize_entry(name, &format_duration(value))?;
        }
        map.end()
    }
}

/// A stage past its deadline: which stage, which team holds it, since when it was
/// due to move, and the targets it holds back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stall {
    pub stage: Stage,
    pub team: String,
    pub deadline: Timestamp,
    pub targets: Vec<String>,
}

/// The stages of `renewal` that are waiting to move, each with its deadline: not
/// ordered within `order` of becoming due (held by the buyer, else the owner);
/// received but a target not applied within `apply`; applied on a target but not
/// verified within `verify` (held by the owner; the deadline is the earliest target's,
/// and the targets are those whose own deadline passed by `now`).
fn waiting(renewable: &Renewable, renewal: &Renewal, now: Timestamp) -> Vec<Stall> {
    let deadlines = &renewable.deadlines;
    let mut found = Vec::new();
    if renewal.ordered.is_none() && renewal.received.is_none() {
        found.push(Stall {
            stage: Stage::Ordered,
            team: renewable
                .buyer
                .clone()
                .unwrap_or_else(|| renewable.owner.clone()),
            deadline: renewal.since + deadlines.order,
            targets: renewable.in_order(renewal.targets.keys().cloned().collect()),
        });
        return found;
    }
    let Some(received) = &renewal.received else {
        return found;
    };
    let unapplied: Vec<String> = renewal
        .targets
        .iter()
        .filter(|(_, t)| t.applied.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    if !unapplied.is_empty() {
        found.push(Stall {
            stage: Stage::Applied,
            team: renewable.owner.clone(),
            deadline: received.at + deadlines.apply,
            targets: renewable.in_order(unapplied),
        });
    }
    let unverified: Vec<(&String, Timestamp)> = renewal
        .targets
        .iter()
        .filter_map(|(k, t)| match (&t.applied, &t.verified) {
            (Some(applied), None) => Some((k, applied.at + deadlines.verify)),
            _ => None,
        })
        .collect();
    if let Some(earliest) = unverified.iter().map(|(_, d)| *d).min() {
        found.push(Stall {
            stage: Stage::Verified,
            team: renewable.owner.clone(),
            deadline: earliest,
            targets: renewable.in_order(
                unverified
                    .into_iter()
                    .filter(|(_, d)| *d < now)
                    .map(|(k, _)| k.clone())
                    .collect(),
            ),
        });
    }
    found
}

/// The stalled stages of `renewal` at `now`: those past their deadline.
pub fn stalls(renewable: &Renewable, renewal: &Renewal, now: Timestamp) -> Vec<Stall> {
    waiting(renewable, renewal, now)
        .into_iter()
        .filter(|s| s.deadline < now)
        .collect()
}

crate::named!(
    /// How loudly a stall was raised: the holding team told, then its escalation
    /// policy paged.
    Level {
        Notified => "notified",
        Paged => "paged",
    }
);

/// A stall raised at one level, once per stage per renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    pub stage: Stage,
    pub level: Level,
    pub at: Timestamp,
}

/// What to do about a renewal's stalls at `now`, given what was raised already.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alarms {
    /// Stalls to raise now, each at its level.
    pub raise: Vec<(Stall, Level)>,
    /// Stages that were raised and are no longer stalled: their pages can stop, and a
    /// later stall of the same stage is raised afresh (told, then paged).
    pub cleared: Vec<Stage>,
    /// When to look at this renewal again (none while nothing more can fall due).
    pub next: Option<Timestamp>,
}

/// Decides a renewal's alarms: a stage past its deadline notifies the team holding
/// it once; still stalled `escalate_after` after that, it pages the team's escalation
/// policy once. A stage that moves on is cleared, so stalling again starts over. A done
/// renewal raises nothing and clears everything.
pub fn alarms(
    renewable: &Renewable,
    renewal: &Renewal,
    raised: &[Raised],
    now: Timestamp,
) -> Alarms {
    let was =
        |stage: Stage, level: Level| raised.iter().find(|r| r.stage == stage && r.level == level);
    let waiting = if renewal.is_done() {
        Vec::new()
    } else {
        waiting(renewable, renewal, now)
    };
    let mut out = Alarms::default();
    let mut look_at = |at: Timestamp| out.next = Some(out.next.map_or(at, |n| n.min(at)));
    // A deadline passes the instant after it.
    let after = |at: Timestamp| at + SignedDuration::from_millis(1);
    let mut raise = Vec::new();
    for stall in &waiting {
        let late = stall.deadline < now;
        match (
            was(stall.stage, Level::Notified),
            was(stall.stage, Level::Paged),
        ) {
            (None, _) if late => {
                raise.push((stall.clone(), Level::Notified));
                look_at(now + renewable.deadlines.escalate_after);
            }
            (None, _) => look_at(after(stall.deadline)),
            (Some(told), None) => {
                let page_at = told.at + renewable.deadlines.escalate_after;
                if late && page_at <= now {
                    raise.push((stall.clone(), Level::Paged));
                } else {
                    look_at(page_at.max(after(stall.deadline)));
                }
            }
            (Some(_), Some(_)) => {}
        }
    }
    let stalled: Vec<Stage> = waiting
        .iter()
        .filter(|s| s.deadline < now)
        .map(|s| s.stage)
        .collect();
    out.cleared = raised
        .iter()
        .map(|r| r.stage)
        .filter(|stage| !stalled.contains(stage))
        .collect();
    out.cleared.sort();
    out.cleared.dedup();
    out.raise = raise;
    out
}

/// The words of a stall: what is late, since when, and the targets it holds back.
pub fn stall_text(renewable: &Renewable, renewal: &Renewal, stall: &Stall) -> (String, String) {
    let (all, applied, verified) = renewal.progress();
    let late = match stall.stage {
        Stage::Ordered => "not ordered".to_string(),
        Stage::Applied => format!("not applied on {} of {all} targets", stall.targets.len()),
        _ => format!("not verified on {} of {all} targets", stall.targets.len()),
    };
    let title = format!("Renewal stalled: {} {late}", renewable.name);
    let mut body = format!(
        "{} ({}) expires {}. Its renewal is {late}; the deadline was {}.\n",
        renewable.name,
        renewable.id,
        renewal.expires_at.strftime("%Y-%m-%d"),
        stall.deadline.strftime("%Y-%m-%d %H:%M UTC"),
    );
    if let Some(received) = &renewal.received {
        body.push_str(&format!(
            "Received {} by {}; applied {applied} of {all}; verified {verified} of {all}.\n",
            received.at.strftime("%Y-%m-%d"),
            received.by
        ));
    }
    if stall.stage != Stage::Ordered {
        body.push_str(&format!(
            "Still on the old item: {}.\n",
            stall.targets.join(", ")
        ));
    }
    body.push_str(&format!("Held by team {}.\n", stall.team));
    (title, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn licence() -> Renewable {
        let catalog = crate::catalog::seed_world();
        Renewable::of_catalog(&catalog).remove(0)
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn step(stage: Stage, target: Option<&str>) -> Move {
        Move {
            stage: Some(stage),
            target: target.map(str::to_string),
            by: "sam".into(),
            new_expires_at: Some(at("2028-02-01T00:00:00Z")),
            evidence: Some("licence screen shows 2028-02-01".into()),
            ..Move::default()
        }
    }

    #[test]
    fn the_licence_story_runs_due_to_verified_on_every_target() {
        let renewable = licence();
        let now = at("2026-11-03T00:00:00Z");
        let mut renewal = Renewal::start(&renewable, now);
        assert_eq!(renewal.stage(), Stage::Due);
        assert_eq!(
            renewal
                .apply(&step(Stage::Applied, Some("org-01")), now)
                .unwrap_err()
                .0,
            "stage"
        );
        renewal.apply(&step(Stage::Ordered, None), now).unwrap();
        let received = renewal.apply(&step(Stage::Received, None), now).unwrap();
        assert_eq!(received, "Received by sam; expires 2028-02-01");
        for org in ["org-01", "org-02", "org-03"] {
            renewal
                .apply(&step(Stage::Applied, Some(org)), now)
                .unwrap();
        }
        assert_eq!(renewal.progress(), (11, 3, 0));
        assert_eq!(
            renewal.stage(),
            Stage::Received,
            "the earliest target's stage"
        );
        let verified = renewal
            .apply(&step(Stage::Verified, Some("org-01")), now)
            .unwrap();
        assert_eq!(verified, "Verified on org-01 by sam; verified 1 of 11");
        assert_eq!(
            renewal.wording(at("2026-11-12T06:00:00Z")),
            "received 9 days ago; applied 3 of 11; verified 1 of 11"
        );
        assert_eq!(renewal.unverified().len(), 10);
        let keys: Vec<String> = renewal.targets.keys().cloned().collect();
        for key in &keys {
            let _ = renewal.apply(&step(Stage::Applied, Some(key)), now);
            let _ = renewal.apply(&step(Stage::Verified, Some(key)), now);
        }
        assert!(renewal.is_done());
    }

    #[test]
    fn bad_moves_name_the_field_and_change_nothing() {
        let renewable = licence();
        let now = at("2026-11-03T00:00:00Z");
        let mut renewal = Renewal::start(&renewable, now);
        renewal.apply(&step(Stage::Ordered, None), now).unwrap();
        let before = renewal.clone();
        let field = |renewal: &mut Renewal, m: Move| renewal.apply(&m, now).unwrap_err().0;
        let early = Move {
            new_expires_at: Some(at("2027-01-01T00:00:00Z")),
            ..step(Stage::Received, None)
        };
        assert_eq!(field(&mut renewal, early), "new_expires_at");
        assert_eq!(
            field(&mut renewal, step(Stage::Applied, Some("org-01"))),
            "stage"
        );
        assert_eq!(
            field(&mut renewal, step(Stage::Applied, Some("nowhere"))),
            "target"
        );
        assert_eq!(field(&mut renewal, step(Stage::Applied, None)), "target");
        assert_eq!(field(&mut renewal, step(Stage::Ordered, None)), "stage");
        assert_eq!(field(&mut renewal, step(Stage::Due, None)), "stage");
        assert_eq!(
            field(
                &mut renewal,
                Move {
                    by: " ".into(),
                    ..step(Stage::Received, None)
                }
            ),
            "by"
        );
        assert_eq!(renewal, before);
        renewal.apply(&step(Stage::Received, None), now).unwrap();
        renewal
            .apply(&step(Stage::Applied, Some("org-01")), now)
            .unwrap();
        let bare = Move {
            evidence: None,
            ..step(Stage::Verified, Some("org-01"))
        };
        assert_eq!(field(&mut renewal, bare), "evidence");
    }

    #[test]
    fn a_pin_warning_needs_an_acknowledgement_before_applied() {
        let renewable = licence();
        let now = at("2026-11-03T00:00:00Z");
        let mut renewal = Renewal::start(&renewable, now);
        renewal.apply(&step(Stage::Ordered, None), now).unwrap();
        renewal.apply(&step(Stage::Received, None), now).unwrap();
        renewal.pin_warning = Some("desktop-client 0.9.1 pins SPKI sha256:old".into());
        let refused = renewal
            .apply(&step(Stage::Applied, Some("org-01")), now)
            .unwrap_err();
        assert_eq!(refused.0, "acknowledge_pins");
        assert!(
            refused.1.starts_with("desktop-client 0.9.1 pins"),
            "{}",
            refused.1
        );
        let acknowledged = Move {
            acknowledge_pins: true,
            ..step(Stage::Applied, Some("org-01"))
        };
        renewal.apply(&acknowledged, now).unwrap();
        assert!(renewal.pins_acknowledged.is_some());
        renewal
            .apply(&step(Stage::Applied, Some("org-02")), now)
            .unwrap();
    }

    #[test]
    fn stalled_stages_are_held_by_the_team_that_must_move() {
        let renewable = licence();
        let due = at("2026-11-03T00:00:00Z");
        let mut renewal = Renewal::start(&renewable, due);
        assert!(stalls(&renewable, &renewal, at("2026-11-16T00:00:00Z")).is_empty());
        let late = stalls(&renewable, &renewal, at("2026-11-18T00:00:00Z"));
        assert_eq!(late[0].stage, Stage::Ordered);
        assert_eq!(late[0].team, "procurement", "the buyer orders");
        renewal.apply(&step(Stage::Ordered, None), due).unwrap();
        let received_at = at("2026-11-20T00:00:00Z");
        renewal
            .apply(&step(Stage::Received, None), received_at)
            .unwrap();
        renewal
            .apply(&step(Stage::Applied, Some("org-01")), received_at)
            .unwrap();
        let stalled = stalls(&renewable, &renewal, at("2026-11-23T00:00:00Z"));
        assert_eq!(stalled.len(), 2, "{stalled:?}");
        assert_eq!(stalled[0].stage, Stage::Applied);
        assert_eq!(stalled[0].team, "service-desk");
        assert_eq!(
            stalled[0].targets.len(),
            10,
            "the organisations still on the old key"
        );
        assert_eq!(stalled[1].stage, Stage::Verified);
        assert_eq!(stalled[1].targets, ["org-01"]);
    }

    #[test]
    fn a_stall_notifies_once_then_pages_once_escalate_after_later() {
        let renewable = licence();
        let received_at = at("2026-11-20T00:00:00Z");
        let mut renewal = Renewal::start(&renewable, at("2026-11-03T00:00:00Z"));
        renewal
            .apply(&step(Stage::Ordered, None), received_at)
            .unwrap();
        renewal
            .apply(&step(Stage::Received, None), received_at)
            .unwrap();
        for org in ["org-01", "org-02", "org-03"] {
            renewal
                .apply(&step(Stage::Applied, Some(org)), received_at)
                .unwrap();
            renewal
                .apply(&step(Stage::Verified, Some(org)), received_at)
                .unwrap();
        }
        // Before the 2-day apply deadline: nothing, look again right after it.
        let early = alarms(&renewable, &renewal, &[], at("2026-11-21T00:00:00Z"));
        assert!(early.raise.is_empty());
        assert_eq!(early.next, Some(at("2026-11-22T00:00:00.001Z")));
        // Past it: the owner team is told, and the page falls due a day later.
        let told_at = at("2026-11-22T00:01:00Z");
        let told = alarms(&renewable, &renewal, &[], told_at);
        assert_eq!(told.raise.len(), 1);
        let (stall, level) = &told.raise[0];
        assert_eq!((stall.stage, *level), (Stage::Applied, Level::Notified));
        assert_eq!(stall.targets.len(), 8);
        assert_eq!(told.next, Some(at("2026-11-23T00:01:00Z")));
        let mut raised = vec![Raised {
            stage: Stage::Applied,
            level: Level::Notified,
            at: told_at,
        }];
        // Told already: nothing again before the page is due.
        let waiting = alarms(&renewable, &renewal, &raised, at("2026-11-22T12:00:00Z"));
        assert!(waiting.raise.is_empty());
        assert_eq!(waiting.next, told.next);
        let paged_at = at("2026-11-23T00:01:00Z");
        let paged = alarms(&renewable, &renewal, &raised, paged_at);
        assert_eq!(paged.raise[0].1, Level::Paged);
        let (title, body) = stall_text(&renewable, &renewal, &paged.raise[0].0);
        assert_eq!(
            title,
            "Renewal stalled: FormPrint server licence key not applied on 8 of 11 targets"
        );
        assert!(
            body.contains("Still on the old item: org-04, org-05, org-06, org-07, org-08, org-09, org-10, northwind."),
            "{body}"
        );
        raised.push(Raised {
            stage: Stage::Applied,
            level: Level::Paged,
            at: paged_at,
        });
        let after = alarms(&renewable, &renewal, &raised, at("2026-11-25T00:00:00Z"));
        assert!(after.raise.is_empty(), "each level once");
        assert!(after.cleared.is_empty());
        // Applied everywhere: the applied stage's page is cleared; verification's
        // deadline is the next thing to watch.
        let applied_at = at("2026-11-25T00:00:00Z");
        let keys: Vec<String> = renewal.targets.keys().cloned().collect();
        for key in &keys {
            let _ = renewal.apply(&step(Stage::Applied, Some(key)), applied_at);
        }
        let moved = alarms(&renewable, &renewal, &raised, applied_at);
        assert_eq!(moved.cleared, [Stage::Applied]);
        assert_eq!(moved.next, Some(at("2026-11-26T00:00:00.001Z")));
    }

    #[test]
    fn a_stage_that_moves_on_is_cleared_whatever_was_raised() {
        let renewable = licence();
        let at_ = at("2026-11-20T00:00:00Z");
        let mut renewal = Renewal::start(&renewable, at("2026-11-03T00:00:00Z"));
        renewal.apply(&step(Stage::Ordered, None), at_).unwrap();
        renewal.apply(&step(Stage::Received, None), at_).unwrap();
        let keys: Vec<String> = renewal.targets.keys().cloned().collect();
        for key in &keys {
            renewal
                .apply(&step(Stage::Applied, Some(key)), at_)
                .unwrap();
        }
        // Told about verification, then everything verified: cleared, so a later
        // stall of verification would be told afresh rather than paged at once.
        let raised = [Raised {
            stage: Stage::Verified,
            level: Level::Notified,
            at: at("2026-11-21T01:00:00Z"),
        }];
        let stalled = alarms(&renewable, &renewal, &raised, at("2026-11-21T02:00:00Z"));
        assert!(stalled.cleared.is_empty(), "still stalled");
        for key in &keys {
            renewal
                .apply(&step(Stage::Verified, Some(key)), at_)
                .unwrap();
        }
        let done = alarms(&renewable, &renewal, &raised, at("2026-11-21T03:00:00Z"));
        assert_eq!(done.cleared, [Stage::Verified]);
        assert!(done.raise.is_empty());
        assert_eq!(done.next, None, "nothing more can fall due");
    }

    #[test]
    fn deadlines_read_from_the_catalog_name_their_field() {
        let read = |v: serde_json::Value| Deadlines::read(&v);
        let custom = read(serde_json::json!({"apply": "4h", "escalate_after": "30m"})).unwrap();
        assert_eq!(custom.apply, SignedDuration::from_hours(4));
        assert_eq!(custom.order, Deadlines::default().order);
        assert_eq!(
            serde_json::to_value(&custom).unwrap()["escalate_after"],
            "30m"
        );
        assert_eq!(
            read(serde_json::json!({"ship": "1d"})).unwrap_err().0,
            "deadlines.ship"
        );
        assert_eq!(
            read(serde_json::json!({"apply": "soon"})).unwrap_err().0,
            "deadlines.apply"
        );
        assert_eq!(
            read(serde_json::json!({"verify": "-1d"})).unwrap_err().0,
            "deadlines.verify"
        );
        assert_eq!(read(serde_json::json!("2d")).unwrap_err().0, "deadlines");
    }
}
