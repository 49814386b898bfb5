//! Escalation policies: who is paged when, from a trigger time until someone
//! acknowledges. Semantics (from `seed-world.yaml`):
//!
//! - Steps fire in order; a step's `escalate_after` is the wait before the next step
//!   (after the last step, before the next pass). `repeat: N` means N further passes
//!   after the first.
//! - `person:ID` pages that person, `team:ID` every member of the team,
//!   `schedule:ID` whoever is on call when the step fires. A step that resolves to
//!   nobody is skipped: the next step fires at once.
//! - A team with no policy is paged as one step that notifies all its members.
//! - Nothing fires at or after the acknowledgement.

use crate::catalog::parse::from_value;
use crate::catalog::{Catalog, Kind};
use crate::clock::parse_duration;
use crate::problem::FieldErrors;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Target {
    Person(String),
    Schedule(String),
    Team(String),
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, String> {
        match text.split_once(':') {
            Some(("person", id)) if !id.is_empty() => Ok(Target::Person(id.into())),
            Some(("schedule", id)) if !id.is_empty() => Ok(Target::Schedule(id.into())),
            Some(("team", id)) if !id.is_empty() => Ok(Target::Team(id.into())),
            _ => Err(format!(
                "{text:?} is not a target: use person:ID, schedule:ID or team:ID"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub targets: Vec<Target>,
    pub escalate_after: SignedDuration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: String,
    pub steps: Vec<Step>,
    /// Further passes after the first.
    pub repeat: u32,
}

/// One page: who is notified when, by which step of which pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    pub at: Timestamp,
    pub pass: u32,
    pub step: usize,
    pub people: Vec<String>,
}

pub const MAX_REPEAT: u32 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    id: String,
    #[serde(default)]
    repeat: u32,
    steps: Vec<StepDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDoc {
    targets: Vec<String>,
    escalate_after: String,
}

impl Policy {
    /// Reads a policy as stored in the catalog, naming the field of any problem.
    pub fn from_json(value: &Value) -> Result<Policy, FieldErrors> {
        let doc: PolicyDoc = from_value(value.clone())?;
        let mut errors = FieldErrors::default();
        if doc.repeat > MAX_REPEAT {
            errors.push("repeat", format!("must be at most {MAX_REPEAT}"));
        }
        if doc.steps.is_empty() {
            errors.push("steps", "a policy needs at least one step");
        }
        let mut steps = Vec::new();
        for (s, step) in doc.steps.into_iter().enumerate() {
            if step.targets.is_empty() {
                errors.push(
                    format!("steps[{s}].targets"),
                    "a step needs at least one target",
                );
            }
            let targets: Vec<Target> = step
                .targets
                .iter()
                .enumerate()
                .filter_map(|(t, text)| {
                    Target::parse(text)
                        .map_err(|e| errors.push(format!("steps[{s}].targets[{t}]"), e))
                        .ok()
                })
                .collect();
            let escalate_after = match parse_duration(&step.escalate_after) {
                Ok(d) if d.is_positive() => Some(d),
                Ok(_) => {
                    errors.push(format!("steps[{s}].escalate_after"), "must be positive");
                    None
                }
                Err(e) => {
                    errors.push(format!("steps[{s}].escalate_after"), e);
                    None
                }
            };
            if let Some(escalate_after) = escalate_after {
                steps.push(Step {
                    targets,
                    escalate_after,
                });
            }
        }
        errors.into_result(Policy {
            id: doc.id,
            steps,
            repeat: doc.repeat,
        })
    }

    /// The implicit policy of a team without one: all its members, once.
    pub fn whole_team(team: &str) -> Policy {
        Policy {
            id: format!("team:{team}"),
            steps: vec![Step {
                targets: vec![Target::Team(team.into())],
                escalate_after: SignedDuration::from_mins(1),
            }],
            repeat: 0,
        }
    }

    /// The policy that pages `team`: its own, or the whole team when it has none.
    /// Stored policies were validated with the same model, so an error is corruption.
    pub fn of_team(catalog: &Catalog, team: &str) -> Result<Policy, String> {
        let Some(policy) = catalog
            .team(team)
            .and_then(|t| t.escalation_policy.as_deref())
        else {
            return Ok(Policy::whole_team(team));
        };
        let stored = catalog
            .entity(Kind::EscalationPolicy, policy)
            .ok_or_else(|| format!("team {team:?} names unknown escalation policy {policy:?}"))?;
        Policy::from_json(&stored).map_err(|e| format!("escalation policy {policy:?}: {e}"))
    }

    /// The schedules this policy's steps name.
    pub fn schedules(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .flat_map(|s| &s.targets)
            .filter_map(|t| match t {
                Target::Schedule(id) => Some(id.as_str()),
                _ => None,
            })
    }

    /// Every page from `trigger` on, stopping at `acknowledged` (nothing fires at or
    /// after it). `resolve` turns a target into people at the instant a step fires.
    pub fn pages(
        &self,
        trigger: Timestamp,
        acknowledged: Option<Timestamp>,
        resolve: impl Fn(&Target, Timestamp) -> Vec<String>,
    ) -> Vec<Page> {
        let mut pages = Vec::new();
        let mut next = Some(Cursor::start(trigger));
        while let Some(cursor) = next {
            if acknowledged.is_some_and(|ack| cursor.due >= ack) {
                break;
            }
            let (page, after) = self.fire(cursor, &resolve);
            pages.extend(page);
            next = after;
        }
        pages
    }

    /// Fires the step `cursor` points at: the page it sends (`None` when its targets
    /// reach nobody: skipped) and where the escalation stands after it (`None` once the
    /// last pass is done, or when the policy has no such step any more). A skipped
    /// step's successor is due at once; otherwise after the step's `escalate_after`.
    pub fn fire(
        &self,
        cursor: Cursor,
        resolve: impl Fn(&Target, Timestamp) -> Vec<String>,
    ) -> (Option<Page>, Option<Cursor>) {
        let Some(step) = self
            .steps
            .get(cursor.step)
            .filter(|_| cursor.pass <= self.repeat)
        else {
            return (None, None);
        };
        let mut people: Vec<String> = Vec::new();
        for target in &step.targets {
            for person in resolve(target, cursor.due) {
                if !people.contains(&person) {
                    people.push(person);
                }
            }
        }
        let wait = if people.is_empty() {
            SignedDuration::ZERO
        } else {
            step.escalate_after
        };
        let (pass, index) = if cursor.step + 1 < self.steps.len() {
            (cursor.pass, cursor.step + 1)
        } else {
            (cursor.pass + 1, 0)
        };
        let next = match cursor.due.checked_add(wait) {
            Ok(due) if pass <= self.repeat => Some(Cursor {
                pass,
                step: index,
                due,
            }),
            _ => None,
        };
        let page = (!people.is_empty()).then_some(Page {
            at: cursor.due,
            pass: cursor.pass,
            step: cursor.step,
            people,
        });
        (page, next)
    }
}

/// Where an escalation stands: the step that fires next, of which pass, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub pass: u32,
    pub step: usize,
    pub due: Timestamp,
}

impl Cursor {
    /// The first step of the first pass, due at the trigger.
    pub fn start(trigger: Timestamp) -> Cursor {
        Cursor {
            pass: 0,
            step: 0,
            due: trigger,
        }
    }
}

/// Turns a target into people at `at`: a person, a team's members, or whoever
/// `oncall` says is on call for a schedule.
pub fn resolve(
    target: &Target,
    at: Timestamp,
    catalog: &Catalog,
    oncall: impl Fn(&str, Timestamp) -> Option<String>,
) -> Vec<String> {
    match target {
        Target::Person(id) => vec![id.clone()],
        Target::Team(id) => catalog
            .team(id)
            .map(|t| t.members.clone())
            .unwrap_or_default(),
        Target::Schedule(id) => oncall(id, at).into_iter().collect(),
    }
}

/// The teams whose policies name schedule `id`, in catalog order.
pub fn teams_of_schedule<'a>(catalog: &'a Catalog, id: &'a str) -> impl Iterator<Item = &'a str> {
    catalog.teams.iter().filter_map(move |team| {
        let policy = Policy::of_team(catalog, &team.id).ok()?;
        policy
            .schedules()
            .any(|s| s == id)
            .then_some(team.id.as_str())
    })
}

/// The first team whose policy names schedule `id`: the team a schedule works for.
pub fn team_of_schedule(catalog: &Catalog, id: &str) -> Option<String> {
    teams_of_schedule(catalog, id).next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::Schedule;
    use proptest::prelude::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Resolves targets against the seed world.
    fn seed_resolver() -> impl Fn(&Target, Timestamp) -> Vec<String> {
        let catalog = crate::catalog::seed_world();
        move |target, t| match target {
            Target::Person(p) => vec![p.clone()],
            Target::Team(team) => catalog
                .team(team)
                .map(|t| t.members.clone())
                .unwrap_or_default(),
            Target::Schedule(id) => {
                let value = catalog
                    .schedules
                    .iter()
                    .find(|s| s["id"] == id.as_str())
                    .unwrap();
                Schedule::from_json(value)
                    .unwrap()
                    .oncall_at(t)
                    .map(|o| vec![o.person])
                    .unwrap_or_default()
            }
        }
    }

    fn seed_policy(id: &str) -> Policy {
        let catalog = crate::catalog::seed_world();
        Policy::from_json(
            catalog
                .escalation_policies
                .iter()
                .find(|p| p["id"] == id)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn pages_every_step_of_every_pass_until_acknowledged() {
        let policy = seed_policy("print-platform"); // repeat 2: schedule (15m), team (30m)
        let resolve = seed_resolver();
        let t = at("2026-11-23T10:00:00Z");
        let pages = policy.pages(t, None, &resolve);
        let got: Vec<(String, u32, usize, Vec<String>)> = pages
            .iter()
            .map(|p| (p.at.to_string(), p.pass, p.step, p.people.clone()))
            .collect();
        let team = vec!["dana".to_string(), "eli".into(), "fran".into()];
        assert_eq!(
            got,
            vec![
                ("2026-11-23T10:00:00Z".into(), 0, 0, vec!["dana".into()]),
                ("2026-11-23T10:15:00Z".into(), 0, 1, team.clone()),
                ("2026-11-23T10:45:00Z".into(), 1, 0, vec!["dana".into()]),
                ("2026-11-23T11:00:00Z".into(), 1, 1, team.clone()),
                ("2026-11-23T11:30:00Z".into(), 2, 0, vec!["dana".into()]),
                ("2026-11-23T11:45:00Z".into(), 2, 1, team),
            ]
        );
        let acked = policy.pages(t, Some(at("2026-11-23T10:45:00Z")), &resolve);
        assert_eq!(
            acked.len(),
            2,
            "an acknowledgement at a step's time stops it"
        );
    }

    #[test]
    fn a_step_with_nobody_is_skipped_at_once() {
        let policy = Policy {
            id: "p".into(),
            steps: vec![
                Step {
                    targets: vec![Target::Schedule("empty".into())],
                    escalate_after: SignedDuration::from_mins(10),
                },
                Step {
                    targets: vec![Target::Person("paul".into())],
                    escalate_after: SignedDuration::from_mins(30),
                },
            ],
            repeat: 0,
        };
        let pages = policy.pages(at("2026-11-23T10:00:00Z"), None, |t, _| match t {
            Target::Person(p) => vec![p.clone()],
            _ => vec![],
        });
        assert_eq!(pages.len(), 1);
        assert_eq!(
            (pages[0].at, pages[0].people.clone()),
            (at("2026-11-23T10:00:00Z"), vec!["paul".to_string()])
        );
    }

    #[test]
    fn schedule_targets_resolve_when_the_step_fires() {
        // Service desk: schedule (10m) then paul. A trigger just before the 08:00
        // London handoff pages whoever is on call then, and paul ten minutes later.
        let pages =
            seed_policy("service-desk").pages(at("2026-11-05T07:55:00Z"), None, seed_resolver());
        // Thursday 07:55 London: Wednesday's daily shift (uma) runs until 08:00.
        assert_eq!(pages[0].people, ["uma"]);
        assert_eq!(pages[1].people, ["paul"]);
        assert_eq!(pages[1].at, at("2026-11-05T08:05:00Z"));
    }

    #[test]
    fn a_team_without_a_policy_is_paged_whole_and_once() {
        let pages =
            Policy::whole_team("helpdesk").pages(at("2026-11-23T10:00:00Z"), None, seed_resolver());
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].people, ["hal", "hope"]);
    }

    #[test]
    fn bad_policies_name_the_field() {
        let bad = serde_json::json!({"id": "b", "repeat": 500, "steps": [{"targets": ["squad:x"], "escalate_after": "soon"}, {"targets": [], "escalate_after": "0m"}]});
        let err = Policy::from_json(&bad).unwrap_err();
        let paths: Vec<&str> = err.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "repeat",
                "steps[0].targets[0]",
                "steps[0].escalate_after",
                "steps[1].targets",
                "steps[1].escalate_after"
            ]
        );
        let typo = serde_json::json!({"id": "t", "steps": [{"targets": ["person:a"], "escalate_afterr": "5m"}]});
        assert!(
            Policy::from_json(&typo).unwrap_err().0[0]
                .message
                .contains("escalate_afterr")
        );
    }

    proptest! {
        /// Pages come in time order, never at or after the acknowledgement, never more
        /// than steps × passes, and the first (if any) at the trigger.
        #[test]
        fn pages_respect_order_and_acknowledgement(
            delays in prop::collection::vec(1i64..120, 1..5),
            empty in prop::collection::vec(any::<bool>(), 5),
            repeat in 0u32..4,
            ack_after in prop::option::of(0i64..600),
        ) {
            let steps: Vec<Step> = delays.iter().enumerate().map(|(i, d)| Step {
                targets: vec![if empty[i] { Target::Schedule("nobody".into()) } else { Target::Person(format!("p{i}")) }],
                escalate_after: SignedDuration::from_mins(*d),
            }).collect();
            let policy = Policy { id: "p".into(), steps: steps.clone(), repeat };
            let t = at("2026-11-23T10:00:00Z");
            let ack = ack_after.map(|m| t.checked_add(SignedDuration::from_mins(m)).unwrap());
            let pages = policy.pages(t, ack, |target, _| match target { Target::Person(p) => vec![p.clone()], _ => vec![] });
            prop_assert!(pages.len() <= steps.len() * (repeat as usize + 1));
            prop_assert!(pages.windows(2).all(|w| w[0].at < w[1].at));
            prop_assert!(pages.iter().all(|p| ack.is_none_or(|a| p.at < a)));
            if let Some(first) = pages.first() {
                prop_assert_eq!(first.at, t);
            }
            let reachable = empty.iter().take(steps.len()).any(|e| !e);
            if reachable && ack.is_none() {
                prop_assert_eq!(pages.len(), steps.iter().enumerate().filter(|(i, _)| !empty[*i]).count() * (repeat as usize + 1));
            }
        }
    }
}
