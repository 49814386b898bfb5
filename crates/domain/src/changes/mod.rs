//! Changes: planned work on services, visible before it starts. This module holds the
//! change's words (types, risks, states, actions), its lifecycle, the freezes read from
//! the catalog, and the settings the policy and the conflict checks use; `policy` holds
//! computed risk and approvals, `conflicts` the collisions over the dependency graph.

pub mod calendar;
pub mod conflicts;
pub mod correlation;
pub mod events;
pub mod outcomes;
pub mod policy;
pub mod templates;

use crate::catalog::Catalog;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

crate::named!(
    /// `standard` changes are routine (pre-approved once templates exist; until then
    /// treated as normal), `emergency` ones may be approved after they start.
    ChangeType {
        Standard => "standard",
        Normal => "normal",
        Emergency => "emergency",
    }
);

crate::named!(
    /// Ordered: `Low < Medium < High`.
    Risk {
        Low => "low",
        Medium => "medium",
        High => "high",
    }
);

crate::named!(
    State {
        Draft => "draft",
        Submitted => "submitted",
        Approved => "approved",
        InProgress => "in_progress",
        Completed => "completed",
        RolledBack => "rolled_back",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

crate::named!(
    Action {
        Submit => "submit",
        Approve => "approve",
        Reject => "reject",
        Start => "start",
        Complete => "complete",
        Rollback => "rollback",
        Fail => "fail",
        Cancel => "cancel",
    }
);

impl ChangeType {
    /// Whether its work suppresses alerts on its services unless the change says
    /// otherwise: planned and routine work does; emergency work is usually a fix, whose
    /// alerts people want to see.
    pub fn suppresses_alerts_by_default(self) -> bool {
        self != ChangeType::Emergency
    }
}

impl State {
    /// Over: completed, rolled back, failed or cancelled. Ended changes no longer
    /// conflict with anything.
    pub fn has_ended(self) -> bool {
        matches!(
            self,
            State::Completed | State::RolledBack | State::Failed | State::Cancelled
        )
    }

    /// Whether its record may still be edited (an edit after submission sends it back
    /// to `submitted` and clears its approvals).
    pub fn editable(self) -> bool {
        matches!(self, State::Draft | State::Submitted | State::Approved)
    }
}

/// Where `action` takes a change of `change_type` in `state`, or why it is refused.
/// `approve` is decided by the policy (it may leave the change submitted, waiting for
/// more approvals); here it is only checked to be in order. Emergency changes may
/// start before approval and be approved while in progress.
pub fn transition(change_type: ChangeType, state: State, action: Action) -> Result<State, String> {
    use State::*;
    let emergency = change_type == ChangeType::Emergency;
    let refuse = |why: String| Err(format!("cannot {}: {why}", action.as_str()));
    match (action, state) {
        (Action::Submit, Draft) => Ok(Submitted),
        (Action::Approve, Submitted | Approved) => Ok(Approved),
        (Action::Approve, InProgress) if emergency => Ok(InProgress),
        (Action::Reject, Submitted | Approved) => Ok(Draft),
        (Action::Start, Approved) => Ok(InProgress),
        (Action::Start, Submitted) if emergency => Ok(InProgress),
        (Action::Start, Submitted) => refuse("the change is not approved yet".into()),
        (Action::Complete, InProgress) => Ok(Completed),
        (Action::Rollback, InProgress) => Ok(RolledBack),
        (Action::Fail, InProgress) => Ok(Failed),
        (Action::Cancel, Draft | Submitted | Approved) => Ok(Cancelled),
        (Action::Cancel, InProgress) => {
            refuse("the change is in progress: complete, roll back or fail it".into())
        }
        (_, state) => refuse(format!(
            "the change is {}",
            state.as_str().replace('_', " ")
        )),
    }
}

/// When a change's work happens: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    /// A window that ends after it starts.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Window, String> {
        if end <= start {
            return Err(format!("must be after start ({start}); got {end}"));
        }
        Ok(Window { start, end })
    }

    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }
}

/// Proof a change was tried somewhere safe first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestEvidence {
    /// Where it was tried, e.g. "backup server".
    pub environment: String,
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub tested_at: Timestamp,
    /// The services or description changed after it was recorded: it no longer
    /// vouches for the change as it stands.
    #[serde(default)]
    pub stale: bool,
}

/// A change freeze from the catalog's `freezes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Freeze {
    pub id: String,
    pub window: Window,
    /// `*` covers every service.
    pub services: Vec<String>,
    pub reason: String,
}

impl Freeze {
    /// The catalog's freezes (validated on import; an entry that does not read is
    /// skipped rather than blocking every change).
    pub fn of_catalog(catalog: &Catalog) -> Vec<Freeze> {
        #[derive(Deserialize)]
        struct Stored {
            id: String,
            from: Timestamp,
            to: Timestamp,
            #[serde(default)]
            services: Vec<String>,
            #[serde(default)]
            reason: String,
        }
        catalog
            .freezes
            .iter()
            .filter_map(|value| serde_json::from_value::<Stored>(value.clone()).ok())
            .filter_map(|f| {
                Some(Freeze {
                    window: Window::new(f.from, f.to).ok()?,
                    id: f.id,
                    services: f.services,
                    reason: f.reason,
                })
            })
            .collect()
    }

    pub fn covers(&self, service: &str) -> bool {
        self.services.iter().any(|s| s == "*" || s == service)
    }
}

/// The change policy's settings (the `[changes]` section of the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How far along the dependency graph other work counts as a `dependency` conflict.
    pub hops: u32,
    /// More than `launches` launches per owner team within `launch_window` conflict.
    pub launches: u32,
    pub launch_window: SignedDuration,
    /// How long after it starts an emergency change may still be approved.
    pub emergency_approval_window: SignedDuration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            hops: 2,
            launches: 2,
            launch_window: SignedDuration::from_hours(30 * 24),
            emergency_approval_window: SignedDuration::from_hours(24),
        }
    }
}

/// The most incidents one change may name as fixed.
pub const MAX_FIXES: usize = 20;

/// A change's number as people say it: `CHG-42`.
pub fn number(id: i64) -> String {
    format!("CHG-{id}")
}

/// A change id from its id or its `CHG-…` number.
pub fn parse_reference(text: &str) -> Option<i64> {
    let digits = text
        .strip_prefix("CHG-")
        .or_else(|| text.strip_prefix("chg-"))
        .unwrap_or(text);
    digits.parse().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_moves_forward_and_refuses_what_is_out_of_order() {
        use Action::*;
        use State::*;
        let normal = |state, action| transition(ChangeType::Normal, state, action);
        assert_eq!(normal(Draft, Submit), Ok(Submitted));
        assert_eq!(normal(Submitted, Approve), Ok(Approved));
        assert_eq!(normal(Submitted, Reject), Ok(Draft));
        assert_eq!(normal(Approved, Start), Ok(InProgress));
        assert_eq!(normal(InProgress, Complete), Ok(Completed));
        assert_eq!(normal(InProgress, Rollback), Ok(RolledBack));
        assert_eq!(normal(InProgress, Fail), Ok(Failed));
        for before in [Draft, Submitted, Approved] {
            assert_eq!(normal(before, Cancel), Ok(Cancelled));
        }
        assert_eq!(
            normal(Submitted, Start),
            Err("cannot start: the change is not approved yet".into())
        );
        assert_eq!(
            normal(Completed, Complete),
            Err("cannot complete: the change is completed".into())
        );
        assert_eq!(
            normal(InProgress, Cancel),
            Err("cannot cancel: the change is in progress: complete, roll back or fail it".into())
        );
        assert!(normal(Draft, Approve).is_err(), "a draft is not submitted");
        assert!(normal(InProgress, Approve).is_err());
        assert!(normal(RolledBack, Start).is_err());
        // Emergencies start first and are approved while in progress.
        let emergency = |state, action| transition(ChangeType::Emergency, state, action);
        assert_eq!(emergency(Submitted, Start), Ok(InProgress));
        assert_eq!(emergency(InProgress, Approve), Ok(InProgress));
    }

    #[test]
    fn words_read_their_own_names() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(*state));
        }
        assert_eq!(Action::parse("rollback"), Some(Action::Rollback));
        assert_eq!(Action::parse("close"), None);
        assert_eq!(Risk::names(), "low, medium, high");
        assert!(Risk::Low < Risk::Medium && Risk::Medium < Risk::High);
        assert_eq!(State::ALL.iter().filter(|s| s.has_ended()).count(), 4);
        assert_eq!(parse_reference("CHG-12"), Some(12));
        assert_eq!(parse_reference("12"), Some(12));
        assert_eq!(parse_reference("CHG-x"), None);
        assert_eq!(parse_reference("0"), None);
    }

    #[test]
    fn windows_overlap_only_when_they_share_time() {
        let t = |h: i64| Timestamp::from_second(h * 3600).unwrap();
        let a = Window::new(t(3), t(6)).unwrap();
        assert!(a.overlaps(&Window::new(t(5), t(7)).unwrap()));
        assert!(
            !a.overlaps(&Window::new(t(6), t(7)).unwrap()),
            "end is exclusive"
        );
        assert!(Window::new(t(6), t(3)).is_err());
        assert!(Window::new(t(3), t(3)).is_err());
    }

    #[test]
    fn freezes_read_from_the_catalog_cover_their_services() {
        let catalog = Catalog {
            freezes: vec![serde_json::json!({
                "id": "year-end", "from": "2026-12-21T00:00:00Z", "to": "2027-01-04T00:00:00Z",
                "services": ["*"], "reason": "Year-end change freeze"
            })],
            ..Catalog::default()
        };
        let freezes = Freeze::of_catalog(&catalog);
        assert_eq!(freezes.len(), 1);
        assert!(freezes[0].covers("ges"));
        assert_eq!(freezes[0].reason, "Year-end change freeze");
    }
}
