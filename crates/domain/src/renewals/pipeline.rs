//! The renewal pipeline: a renewal is done only when it is verified live on every
//! target. `due` → `ordered` (by whom, a reference) → `received` (the new expiry and
//! identity) → `applied` per target → `verified` per target → done, when the expiry
//! moves. Each move is checked here; the store keeps the state and its history.

use super::Renewable;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
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
/// after the team holding it is told before its escalation policy is paged.
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

/// A stage past its deadline: which stage, which team holds it, since when it was
/// due to move, and the targets it holds back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stall {
    pub stage: Stage,
    pub team: String,
    pub deadline: Timestamp,
    pub targets: Vec<String>,
}

/// The stalled stages of `renewal` at `now`: not ordered within `order` of becoming
/// due (held by the buyer, else the owner); received but a target not applied within
/// `apply`; applied on a target but not verified within `verify` (held by the owner).
pub fn stalls(
    renewable: &Renewable,
    renewal: &Renewal,
    deadlines: &Deadlines,
    now: Timestamp,
) -> Vec<Stall> {
    let mut found = Vec::new();
    let team_buying = renewable
        .buyer
        .clone()
        .unwrap_or_else(|| renewable.owner.clone());
    if renewal.ordered.is_none() {
        let deadline = renewal.since + deadlines.order;
        if now > deadline {
            found.push(Stall {
                stage: Stage::Ordered,
                team: team_buying,
                deadline,
                targets: renewal.targets.keys().cloned().collect(),
            });
        }
        return found;
    }
    if let Some(received) = &renewal.received {
        let deadline = received.at + deadlines.apply;
        let waiting: Vec<String> = renewal
            .targets
            .iter()
            .filter(|(_, t)| t.applied.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if now > deadline && !waiting.is_empty() {
            found.push(Stall {
                stage: Stage::Applied,
                team: renewable.owner.clone(),
                deadline,
                targets: waiting,
            });
        }
        let unverified: Vec<(String, Timestamp)> = renewal
            .targets
            .iter()
            .filter_map(|(k, t)| match (&t.applied, &t.verified) {
                (Some(applied), None) if now > applied.at + deadlines.verify => {
                    Some((k.clone(), applied.at + deadlines.verify))
                }
                _ => None,
            })
            .collect();
        if let Some(earliest) = unverified.iter().map(|(_, d)| *d).min() {
            found.push(Stall {
                stage: Stage::Verified,
                team: renewable.owner.clone(),
                deadline: earliest,
                targets: unverified.into_iter().map(|(k, _)| k).collect(),
            });
        }
    }
    found
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
    fn stalled_stages_are_held_by_the_team_that_must_move() {
        let renewable = licence();
        let deadlines = Deadlines::default();
        let due = at("2026-11-03T00:00:00Z");
        let mut renewal = Renewal::start(&renewable, due);
        assert!(stalls(&renewable, &renewal, &deadlines, at("2026-11-16T00:00:00Z")).is_empty());
        let late = stalls(&renewable, &renewal, &deadlines, at("2026-11-18T00:00:00Z"));
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
        let stalled = stalls(&renewable, &renewal, &deadlines, at("2026-11-23T00:00:00Z"));
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
}
