//! Change events: work reported as it happens (a deploy, a maintenance toggle, from CI
//! or PagerDuty's change events). An event on a service that no in-progress change
//! covers is unscheduled; when other work is in progress nearby in the graph, both
//! sides are told at once.

use super::conflicts::Planned;
use super::number;
use crate::catalog::graph::ServiceGraph;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// An event as received, from the API or PagerDuty's `/v2/change/enqueue`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChangeEvent {
    pub service: String,
    pub summary: String,
    /// Who did the work, as the sender names it.
    pub actor: Option<String>,
    /// What sent it, e.g. `github-actions`.
    pub source: Option<String>,
    pub at: Timestamp,
    pub custom_details: Option<Value>,
    pub links: Vec<Value>,
}

/// In-progress work near an unscheduled event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nearby {
    pub change: i64,
    pub number: String,
    pub title: String,
    pub implementer: Option<String>,
    /// The change's service nearest the event's.
    pub service: String,
    pub distance: u32,
    /// From the event's service to the change's.
    pub path: Vec<String>,
}

/// Of `in_progress` (the changes under way when the event happened), the one that
/// covers work on `service`, if any.
pub fn covering<'c>(service: &str, in_progress: &'c [Planned]) -> Option<&'c Planned> {
    in_progress
        .iter()
        .find(|c| c.services.iter().any(|s| s == service))
}

/// Of `in_progress`, those within `hops` of `service` (the conflict paths: up, down,
/// or up then down), nearest first.
pub fn nearby(
    service: &str,
    in_progress: &[Planned],
    graph: &ServiceGraph,
    hops: u32,
) -> Vec<Nearby> {
    let reach = graph.neighbourhood(service, hops);
    let mut found: Vec<Nearby> = in_progress
        .iter()
        .filter_map(|c| {
            let nearest = reach.iter().find(|r| c.services.contains(&r.service))?;
            let id = c.id.unwrap_or_default();
            Some(Nearby {
                change: id,
                number: number(id),
                title: c.title.clone(),
                implementer: c.implementer.clone(),
                service: nearest.service.clone(),
                distance: nearest.distance,
                path: nearest.path.clone(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.distance.cmp(&b.distance).then(a.change.cmp(&b.change)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::{ChangeType, State, Window};

    fn in_progress(id: i64, services: &[&str]) -> Planned {
        let at = |h: i64| Timestamp::from_second(h * 3600).unwrap();
        Planned {
            id: Some(id),
            title: format!("change {id}"),
            state: State::InProgress,
            change_type: ChangeType::Normal,
            services: services.iter().map(|s| s.to_string()).collect(),
            window: Window::new(at(1), at(2)).unwrap(),
            implementer: Some("rodney".into()),
            launch: false,
        }
    }

    #[test]
    fn an_event_near_in_progress_work_names_the_path_and_covered_work_is_planned() {
        let graph = ServiceGraph::new(&crate::catalog::seed_world());
        let switch = in_progress(1, &["phone-switch"]);
        let portal = in_progress(2, &["agent-portal"]);
        let changes = [switch.clone(), portal];
        assert!(covering("ges", &changes).is_none());
        let near = nearby("ges", &changes, &graph, 2);
        assert_eq!(near.len(), 2);
        assert_eq!(
            near[0].number, "CHG-2",
            "nearest first: the portal is one hop away"
        );
        assert_eq!(near[1].number, "CHG-1");
        assert_eq!(near[1].path, ["ges", "agent-portal", "phone-switch"]);
        assert_eq!(covering("phone-switch", &changes), Some(&switch));
        assert!(nearby("helpdesk-portal", &changes, &graph, 2).is_empty());
    }
}
