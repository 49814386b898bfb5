//! Outcomes of changes: the change failure rate — of the changes that ended in a
//! period, those that failed, were rolled back or caused an incident — per team and
//! per service.

use super::State;
use serde::Serialize;
use std::collections::BTreeMap;

/// A change that ended, as the rate counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub state: State,
    pub services: Vec<String>,
    /// It caused at least one incident.
    pub caused_incident: bool,
}

impl Ended {
    pub fn failed(&self) -> bool {
        matches!(self.state, State::RolledBack | State::Failed) || self.caused_incident
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rate {
    pub ended: usize,
    pub failed: usize,
    /// `failed / ended`; absent when nothing ended.
    pub rate: Option<f64>,
}

impl Rate {
    fn add(&mut self, failed: bool) {
        self.ended += 1;
        self.failed += failed as usize;
        self.rate = Some(self.failed as f64 / self.ended as f64);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FailureRate {
    pub overall: Rate,
    /// By owner team of any of the change's services.
    pub teams: BTreeMap<String, Rate>,
    pub services: BTreeMap<String, Rate>,
}

/// The failure rate of `ended` changes; `owner` names a service's owner team. A change
/// on several services (or teams) counts once for each, and once overall.
pub fn failure_rate<'a>(ended: &[Ended], owner: impl Fn(&str) -> Option<&'a str>) -> FailureRate {
    let mut rate = FailureRate::default();
    for change in ended {
        let failed = change.failed();
        rate.overall.add(failed);
        let mut teams: Vec<&str> = change.services.iter().filter_map(|s| owner(s)).collect();
        teams.sort_unstable();
        teams.dedup();
        for team in teams {
            rate.teams.entry(team.to_string()).or_default().add(failed);
        }
        for service in &change.services {
            rate.services
                .entry(service.clone())
                .or_default()
                .add(failed);
        }
    }
    rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_rolled_back_and_incident_causing_changes_count_as_failures() {
        let ended = |state, services: &[&str], caused_incident| Ended {
            state,
            services: services.iter().map(|s| s.to_string()).collect(),
            caused_incident,
        };
        let changes = [
            ended(State::Completed, &["a"], false),
            ended(State::RolledBack, &["a", "b"], false),
            ended(State::Completed, &["b"], true),
            ended(State::Failed, &["c"], false),
        ];
        let owner = |s: &str| match s {
            "a" | "b" => Some("team-1"),
            _ => Some("team-2"),
        };
        let rate = failure_rate(&changes, owner);
        assert_eq!((rate.overall.ended, rate.overall.failed), (4, 3));
        assert_eq!(rate.overall.rate, Some(0.75));
        let one = &rate.teams["team-1"];
        assert_eq!(
            (one.ended, one.failed),
            (3, 2),
            "a change on a and b counts once for its team"
        );
        assert_eq!(rate.services["a"].rate, Some(0.5));
        assert_eq!(rate.teams["team-2"].rate, Some(1.0));
        assert_eq!(failure_rate(&[], owner).overall.rate, None);
    }
}
