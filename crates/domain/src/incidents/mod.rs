//! Incidents: one per problem, folding the alerts and reports about it together.
//! This module holds the lifecycle (which action is allowed in which state, and what
//! it leads to), severities, and the group key that decides which open incident of a
//! service a signal joins.

pub mod grouping;
pub mod pages;
pub mod reports;
pub mod rules;

pub use pages::{number, paged_incident, parse_reference};
pub use rules::Rules;

use crate::signals::LabelSet;
use serde::{Deserialize, Serialize};

/// Where an incident is in its life. Every state but `Resolved` is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Triggered,
    Acknowledged,
    Mitigated,
    Resolved,
}

impl State {
    pub const ALL: [State; 4] = [
        State::Triggered,
        State::Acknowledged,
        State::Mitigated,
        State::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Triggered => "triggered",
            State::Acknowledged => "acknowledged",
            State::Mitigated => "mitigated",
            State::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_open(self) -> bool {
        self != State::Resolved
    }
}

/// How bad an incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Major,
    Minor,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Critical, Severity::Major, Severity::Minor];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Minor => "minor",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The severity an alert's `severity` label suggests, in the words Prometheus rules
    /// and PagerDuty use (`critical`; `error`, `warning`, `major`; `info`, `minor`).
    /// Without one, major.
    pub fn of_labels(labels: &LabelSet) -> Severity {
        match labels.get("severity").map(|s| s.to_ascii_lowercase()) {
            Some(s) if s == "critical" || s == "page" => Severity::Critical,
            Some(s) if s == "info" || s == "minor" || s == "low" => Severity::Minor,
            _ => Severity::Major,
        }
    }
}

/// What people (or their tools) do to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Mitigate,
    Resolve,
    Note,
    Severity,
    Merge,
}

impl Action {
    const ALL: [(Action, &'static str); 6] = [
        (Action::Acknowledge, "acknowledge"),
        (Action::Mitigate, "mitigate"),
        (Action::Resolve, "resolve"),
        (Action::Note, "note"),
        (Action::Severity, "severity"),
        (Action::Merge, "merge"),
    ];

    pub fn parse(text: &str) -> Result<Action, String> {
        Action::ALL
            .iter()
            .find(|(_, name)| *name == text)
            .map(|(action, _)| *action)
            .ok_or_else(|| {
                let names: Vec<&str> = Action::ALL.iter().map(|(_, n)| *n).collect();
                format!("{text:?} is not an action: use {}", names.join(", "))
            })
    }

    pub fn as_str(self) -> &'static str {
        Action::ALL
            .iter()
            .find(|(action, _)| *action == self)
            .map(|(_, name)| *name)
            .unwrap_or("")
    }
}

/// What an action does to an incident in `state`: the state it leads to (`None`: the
/// state stays, e.g. a note), or why it is refused. Actions out of order — resolving
/// a resolved incident, acknowledging a mitigated one — are refused, so nothing
/// changes and the caller learns why.
pub fn transition(state: State, action: Action) -> Result<Option<State>, String> {
    use State::*;
    let refuse = |why: &str| Err(format!("cannot {}: {why}", action.as_str()));
    match (action, state) {
        (Action::Note | Action::Severity, _) => Ok(None),
        (_, Resolved) => refuse("the incident is resolved"),
        (Action::Acknowledge, Triggered) => Ok(Some(Acknowledged)),
        (Action::Acknowledge, Acknowledged) => refuse("the incident is already acknowledged"),
        (Action::Acknowledge, Mitigated) => refuse("the incident is already mitigated"),
        (Action::Mitigate, Triggered | Acknowledged) => Ok(Some(Mitigated)),
        (Action::Mitigate, Mitigated) => refuse("the incident is already mitigated"),
        (Action::Resolve, _) => Ok(Some(Resolved)),
        // Merging resolves the merged incident into its target.
        (Action::Merge, _) => Ok(Some(Resolved)),
    }
}

/// The group an alert joins within its service: the values of the service's
/// `group_by` labels (Alertmanager's `group_by`), in the order configured. No labels
/// (the default) means one group per service, the empty key.
pub fn group_key(labels: &LabelSet, group_by: &[String]) -> String {
    group_by
        .iter()
        .map(|name| {
            let value = labels.get(name).map(String::as_str).unwrap_or("");
            format!("{name}={value:?}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_moves_forward_and_refuses_what_is_out_of_order() {
        use State::*;
        assert_eq!(
            transition(Triggered, Action::Acknowledge),
            Ok(Some(Acknowledged))
        );
        assert_eq!(transition(Triggered, Action::Mitigate), Ok(Some(Mitigated)));
        assert_eq!(
            transition(Acknowledged, Action::Mitigate),
            Ok(Some(Mitigated))
        );
        for open in [Triggered, Acknowledged, Mitigated] {
            assert_eq!(transition(open, Action::Resolve), Ok(Some(Resolved)));
            assert_eq!(transition(open, Action::Note), Ok(None));
        }
        assert_eq!(
            transition(Resolved, Action::Resolve),
            Err("cannot resolve: the incident is resolved".into())
        );
        assert!(transition(Mitigated, Action::Acknowledge).is_err());
        assert!(transition(Acknowledged, Action::Acknowledge).is_err());
        assert!(transition(Resolved, Action::Merge).is_err());
        assert_eq!(transition(Resolved, Action::Note), Ok(None));
    }

    #[test]
    fn states_actions_and_severities_read_their_own_names() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
        assert!(State::ALL.iter().filter(|s| s.is_open()).count() == 3);
        assert_eq!(Action::parse("mitigate"), Ok(Action::Mitigate));
        assert_eq!(
            Action::parse("close"),
            Err(
                "\"close\" is not an action: use acknowledge, mitigate, resolve, note, severity, merge"
                    .into()
            )
        );
        for severity in Severity::ALL {
            assert_eq!(Severity::parse(severity.as_str()), Some(severity));
        }
    }

    #[test]
    fn severity_follows_the_alerts_label() {
        let with = |value: &str| LabelSet::from([("severity".into(), value.into())]);
        assert_eq!(Severity::of_labels(&with("critical")), Severity::Critical);
        assert_eq!(Severity::of_labels(&with("Warning")), Severity::Major);
        assert_eq!(Severity::of_labels(&with("info")), Severity::Minor);
        assert_eq!(Severity::of_labels(&LabelSet::new()), Severity::Major);
    }

    #[test]
    fn group_keys_take_the_configured_labels_in_order() {
        let labels = LabelSet::from([
            ("alertname".into(), "DiskFull".into()),
            ("cluster".into(), "eu-1".into()),
        ]);
        assert_eq!(group_key(&labels, &[]), "");
        assert_eq!(
            group_key(&labels, &["cluster".into(), "alertname".into()]),
            r#"cluster="eu-1",alertname="DiskFull""#
        );
        assert_eq!(
            group_key(&labels, &["region".into()]),
            r#"region="""#,
            "a missing label groups as empty, as Alertmanager"
        );
    }
}
