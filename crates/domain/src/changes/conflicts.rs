//! Conflict detection: what a change collides with — work on the same service or near
//! it in the dependency graph at the same time, a freeze, its implementer's other work,
//! and too many launches for one team. Checked on create, on update and as a dry run.

use super::{ChangeType, Freeze, Settings, State, Window, number};
use crate::catalog::graph::ServiceGraph;
use crate::clock::format_duration;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// A change as the conflict check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// `None` for a change not stored yet (a dry run).
    pub id: Option<i64>,
    pub title: String,
    pub state: State,
    pub change_type: ChangeType,
    pub services: Vec<String>,
    pub window: Window,
    pub implementer: Option<String>,
    pub launch: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SameService,
    Dependency,
    Freeze,
    ImplementerBusy,
    LaunchDensity,
}

/// The other change in a conflict, as much as a reader needs to find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherChange {
    pub id: i64,
    pub number: String,
    pub title: String,
    pub state: State,
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implementer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreezeRef {
    pub id: String,
    pub reason: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub kind: Kind,
    /// The other change (all kinds but `freeze` and `launch_density`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<OtherChange>,
    /// The other launches within the window (`launch_density`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<OtherChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze: Option<FreezeRef>,
    /// This change's services involved, then (for `dependency`) the other's.
    pub services: Vec<String>,
    /// For `dependency`: from this change's service to the other's, both included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<String>>,
    /// For `launch_density`: the owner team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Approval is refused while it stands, acknowledged or not (a freeze, for
    /// anything but an emergency change).
    pub blocking: bool,
    pub message: String,
}

fn other(change: &Planned) -> OtherChange {
    let id = change.id.unwrap_or_default();
    OtherChange {
        id,
        number: number(id),
        title: change.title.clone(),
        state: change.state,
        start: change.window.start,
        end: change.window.end,
        implementer: change.implementer.clone(),
    }
}

fn describe(change: &Planned) -> String {
    let id = change.id.unwrap_or_default();
    format!(
        "{} {:?} ({}, {} – {})",
        number(id),
        change.title,
        change.state.as_str().replace('_', " "),
        change.window.start,
        change.window.end
    )
}

/// Every conflict of `change` with `others` (any changes; those ended or cancelled
/// are skipped, except that completed, rolled-back and failed launches still count
/// toward launch density), the freezes, and the launch limit. Ordered by kind, then
/// by the other change's start.
pub fn conflicts(
    change: &Planned,
    others: &[Planned],
    freezes: &[Freeze],
    graph: &ServiceGraph,
    settings: &Settings,
) -> Vec<Conflict> {
    let mut found = Vec::new();
    let others: Vec<&Planned> = others
        .iter()
        .filter(|o| o.id.is_none() || o.id != change.id)
        .collect();
    // This change's neighbourhood: for each nearby service, the nearest of its own
    // services and the path from there.
    let mut near: HashMap<String, (u32, Vec<String>)> = HashMap::new();
    for service in &change.services {
        for reach in graph.neighbourhood(service, settings.hops) {
            if change.services.contains(&reach.service) {
                continue;
            }
            let closer = near
                .get(&reach.service)
                .is_none_or(|(distance, _)| reach.distance < *distance);
            if closer {
                near.insert(reach.service.clone(), (reach.distance, reach.path));
            }
        }
    }
    for o in others.iter().filter(|o| !o.state.has_ended()) {
        if !o.window.overlaps(&change.window) {
            continue;
        }
        let shared: Vec<String> = change
            .services
            .iter()
            .filter(|s| o.services.contains(s))
            .cloned()
            .collect();
        if !shared.is_empty() {
            found.push(Conflict {
                kind: Kind::SameService,
                change: Some(other(o)),
                changes: Vec::new(),
                freeze: None,
                message: format!(
                    "{} also works on {} at the same time",
                    describe(o),
                    shared.join(", ")
                ),
                services: shared,
                path: None,
                team: None,
                blocking: false,
            });
        } else if let Some((distance, path)) = o
            .services
            .iter()
            .filter_map(|s| near.get(s))
            .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
        {
            let (mine, theirs) = (path[0].clone(), path[path.len() - 1].clone());
            found.push(Conflict {
                kind: Kind::Dependency,
                change: Some(other(o)),
                changes: Vec::new(),
                freeze: None,
                message: format!(
                    "{} works on {theirs}, {distance} hop{} from {mine} ({}) at the same time",
                    describe(o),
                    if *distance == 1 { "" } else { "s" },
                    path.join(" – ")
                ),
                services: vec![mine, theirs],
                path: Some(path.clone()),
                team: None,
                blocking: false,
            });
        }
        let busy = change.implementer.is_some() && o.implementer == change.implementer;
        if busy {
            let who = change.implementer.clone().unwrap_or_default();
            found.push(Conflict {
                kind: Kind::ImplementerBusy,
                change: Some(other(o)),
                changes: Vec::new(),
                freeze: None,
                services: o.services.clone(),
                path: None,
                team: None,
                blocking: false,
                message: format!("{who} also implements {} at the same time", describe(o)),
            });
        }
    }
    for freeze in freezes.iter().filter(|f| f.window.overlaps(&change.window)) {
        let frozen: Vec<String> = change
            .services
            .iter()
            .filter(|s| freeze.covers(s))
            .cloned()
            .collect();
        if frozen.is_empty() {
            continue;
        }
        let emergency = change.change_type == ChangeType::Emergency;
        found.push(Conflict {
            kind: Kind::Freeze,
            change: None,
            changes: Vec::new(),
            freeze: Some(FreezeRef {
                id: freeze.id.clone(),
                reason: freeze.reason.clone(),
                from: freeze.window.start,
                to: freeze.window.end,
            }),
            message: format!(
                "inside freeze {} ({}, {} – {}) covering {}{}",
                freeze.id,
                freeze.reason,
                freeze.window.start,
                freeze.window.end,
                frozen.join(", "),
                if emergency {
                    ""
                } else {
                    ": only emergency changes may be approved"
                }
            ),
            services: frozen,
            path: None,
            team: None,
            blocking: !emergency,
        });
    }
    if change.launch {
        found.extend(launch_density(change, &others, graph, settings));
    }
    found.sort_by(|a, b| {
        let start = |c: &Conflict| c.change.as_ref().map(|o| o.start);
        a.kind.cmp(&b.kind).then_with(|| start(a).cmp(&start(b)))
    });
    found
}

/// More than `settings.launches` launches (this one included) of one owner team
/// inside any window of `settings.launch_window` that holds this launch's start.
fn launch_density(
    change: &Planned,
    others: &[&Planned],
    graph: &ServiceGraph,
    settings: &Settings,
) -> Vec<Conflict> {
    let owners = |services: &[String]| -> BTreeSet<String> {
        services
            .iter()
            .filter_map(|s| graph.owner(s))
            .map(str::to_string)
            .collect()
    };
    let start = change.window.start;
    let width = settings.launch_window;
    let mut found = Vec::new();
    for team in owners(&change.services) {
        let mut launches: Vec<&Planned> = others
            .iter()
            .copied()
            .filter(|o| o.launch && o.state != State::Cancelled)
            .filter(|o| owners(&o.services).contains(&team))
            .filter(|o| o.window.start.duration_since(start).abs() < width.abs())
            .collect();
        launches.sort_by_key(|o| o.window.start);
        // Windows [from, from + width) holding `start`, each beginning at a launch.
        let densest = launches
            .iter()
            .map(|o| o.window.start)
            .chain([start])
            .filter(|from| *from <= start && start < *from + width)
            .map(|from| {
                let inside: Vec<&Planned> = launches
                    .iter()
                    .copied()
                    .filter(|o| from <= o.window.start && o.window.start < from + width)
                    .collect();
                inside
            })
            .max_by_key(|inside| inside.len())
            .unwrap_or_default();
        let count = densest.len() + 1;
        if count as u32 > settings.launches {
            found.push(Conflict {
                kind: Kind::LaunchDensity,
                change: None,
                changes: densest.iter().map(|o| other(o)).collect(),
                freeze: None,
                services: change.services.clone(),
                path: None,
                message: format!(
                    "{count} launches by team {team} within {} (at most {} advised): {}",
                    format_duration(width),
                    settings.launches,
                    densest
                        .iter()
                        .map(|o| describe(o))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                team: Some(team),
                blocking: false,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn world() -> ServiceGraph {
        ServiceGraph::new(&crate::catalog::seed_world())
    }

    fn at(hour: i64) -> Timestamp {
        "2026-11-02T00:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_hours(hour)
    }

    fn planned(id: i64, services: &[&str], from: i64, to: i64) -> Planned {
        Planned {
            id: Some(id),
            title: format!("change {id}"),
            state: State::Approved,
            change_type: ChangeType::Normal,
            services: services.iter().map(|s| s.to_string()).collect(),
            window: Window::new(at(from), at(to)).unwrap(),
            implementer: Some(format!("person-{id}")),
            launch: false,
        }
    }

    fn kinds(found: &[Conflict]) -> Vec<Kind> {
        found.iter().map(|c| c.kind).collect()
    }

    #[test]
    fn the_phone_switch_and_ges_collide_through_the_agent_portal() {
        let graph = world();
        let switch = planned(1, &["phone-switch"], 3, 6);
        let ges = planned(2, &["ges"], 4, 5);
        let found = conflicts(
            &switch,
            std::slice::from_ref(&ges),
            &[],
            &graph,
            &Settings::default(),
        );
        assert_eq!(kinds(&found), [Kind::Dependency]);
        assert_eq!(
            found[0].path,
            Some(vec![
                "phone-switch".into(),
                "agent-portal".into(),
                "ges".into()
            ])
        );
        assert_eq!(found[0].services, ["phone-switch", "ges"]);
        assert_eq!(found[0].change.as_ref().unwrap().number, "CHG-2");
        // One hop is not enough to see it.
        let near = Settings {
            hops: 1,
            ..Settings::default()
        };
        assert!(conflicts(&switch, std::slice::from_ref(&ges), &[], &graph, &near).is_empty());
        // No overlap in time: no conflict.
        let later = planned(3, &["ges"], 6, 8);
        assert!(conflicts(&switch, &[later], &[], &graph, &Settings::default()).is_empty());
    }

    #[test]
    fn sharing_a_dependency_is_not_a_conflict_but_sharing_a_service_is() {
        let graph = world();
        // Both depend on identity (down, then up): not neighbours.
        let api = planned(1, &["public-api"], 0, 4);
        let helpdesk = planned(2, &["helpdesk-portal"], 1, 2);
        assert!(conflicts(&api, &[helpdesk], &[], &graph, &Settings::default()).is_empty());
        let same = planned(3, &["public-api", "identity"], 2, 3);
        let found = conflicts(&api, &[same], &[], &graph, &Settings::default());
        assert_eq!(kinds(&found), [Kind::SameService]);
        assert_eq!(found[0].services, ["public-api"]);
    }

    #[test]
    fn ended_and_cancelled_work_does_not_conflict_but_drafts_do() {
        let graph = world();
        let mine = planned(1, &["ges"], 0, 4);
        let mut done = planned(2, &["ges"], 0, 4);
        done.state = State::Completed;
        let mut cancelled = planned(3, &["ges"], 0, 4);
        cancelled.state = State::Cancelled;
        let mut draft = planned(4, &["ges"], 0, 4);
        draft.state = State::Draft;
        let found = conflicts(
            &mine,
            &[done, cancelled, draft, mine.clone()],
            &[],
            &graph,
            &Settings::default(),
        );
        assert_eq!(kinds(&found), [Kind::SameService]);
        assert_eq!(found[0].change.as_ref().unwrap().state, State::Draft);
    }

    #[test]
    fn a_busy_implementer_is_a_conflict_anywhere_in_the_graph() {
        let graph = world();
        let mine = planned(1, &["forms-printing"], 0, 4);
        let mut elsewhere = planned(2, &["desktop-client"], 3, 5);
        elsewhere.implementer = mine.implementer.clone();
        let found = conflicts(&mine, &[elsewhere], &[], &graph, &Settings::default());
        assert_eq!(kinds(&found), [Kind::ImplementerBusy]);
        assert!(
            found[0]
                .message
                .starts_with("person-1 also implements CHG-2")
        );
    }

    #[test]
    fn freezes_block_all_but_emergencies() {
        let graph = world();
        let freeze = Freeze {
            id: "year-end".into(),
            window: Window::new(at(0), at(48)).unwrap(),
            services: vec!["*".into()],
            reason: "Year-end change freeze".into(),
        };
        let mut change = planned(1, &["ges"], 47, 50);
        let found = conflicts(
            &change,
            &[],
            std::slice::from_ref(&freeze),
            &graph,
            &Settings::default(),
        );
        assert_eq!(kinds(&found), [Kind::Freeze]);
        assert!(found[0].blocking);
        assert!(
            found[0]
                .message
                .ends_with("only emergency changes may be approved")
        );
        change.change_type = ChangeType::Emergency;
        let found = conflicts(
            &change,
            &[],
            std::slice::from_ref(&freeze),
            &graph,
            &Settings::default(),
        );
        assert!(!found[0].blocking, "an emergency is flagged, not blocked");
        let outside = planned(2, &["ges"], 48, 50);
        assert!(conflicts(&outside, &[], &[freeze], &graph, &Settings::default()).is_empty());
    }

    #[test]
    fn the_third_launch_of_a_team_within_thirty_days_is_too_many() {
        let graph = world();
        let launch = |id: i64, day: i64, state: State| {
            let mut p = planned(id, &["helpdesk-portal"], day * 24, day * 24 + 2);
            p.launch = true;
            p.state = state;
            p
        };
        let first = launch(1, 0, State::Completed);
        let second = launch(2, 10, State::Approved);
        let third = launch(3, 25, State::Draft);
        let settings = Settings::default();
        assert!(
            conflicts(
                &second,
                std::slice::from_ref(&first),
                &[],
                &graph,
                &settings
            )
            .is_empty()
        );
        let found = conflicts(
            &third,
            &[first.clone(), second.clone()],
            &[],
            &graph,
            &settings,
        );
        assert_eq!(kinds(&found), [Kind::LaunchDensity]);
        assert_eq!(found[0].team.as_deref(), Some("helpdesk"));
        assert_eq!(found[0].changes.len(), 2, "a completed launch still counts");
        // 35 days after the first, only the second is within 30 days of it.
        let later = launch(4, 35, State::Draft);
        assert!(
            conflicts(
                &later,
                &[first.clone(), second.clone()],
                &[],
                &graph,
                &settings
            )
            .is_empty()
        );
        // A cancelled launch does not count.
        let mut cancelled = second.clone();
        cancelled.state = State::Cancelled;
        assert!(conflicts(&third, &[first, cancelled], &[], &graph, &settings).is_empty());
    }
}
