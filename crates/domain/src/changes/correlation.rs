//! "Changes near this": the work that may have caused an incident — changes and change
//! events on its services and their neighbourhood in the day before it began, and
//! changes in progress — ranked so the likeliest comes first.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// How far back before an incident began work is looked at.
pub const LOOKBACK: SignedDuration = SignedDuration::from_hours(24);

/// One piece of work near an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NearWork {
    /// `change` or `change_event`.
    pub kind: &'static str,
    pub id: i64,
    /// `CHG-…` for a change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub title: String,
    /// Its state (changes), for the reader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Who did it: the implementer, or the event's actor or source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    /// When it started (a change) or happened (an event).
    pub at: Timestamp,
    /// An event no change covered.
    pub unscheduled: bool,
    /// The incident's service it is nearest to, and the path from there.
    pub service: String,
    pub distance: u32,
    pub path: Vec<String>,
}

/// Nearest in the graph first; at equal distance unscheduled work before planned work,
/// then whatever started (or happened) closest to the incident's start.
pub fn rank(work: &mut [NearWork], incident_start: Timestamp) {
    work.sort_by_key(|w| {
        (
            w.distance,
            !w.unscheduled,
            w.at.duration_since(incident_start).abs(),
            w.id,
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(
        kind: &'static str,
        id: i64,
        distance: u32,
        minutes_before: i64,
        unscheduled: bool,
    ) -> NearWork {
        let start: Timestamp = "2026-11-23T11:00:00Z".parse().unwrap();
        NearWork {
            kind,
            id,
            number: None,
            title: format!("{kind} {id}"),
            state: None,
            who: None,
            at: start - SignedDuration::from_mins(minutes_before),
            unscheduled,
            service: "s".into(),
            distance,
            path: Vec::new(),
        }
    }

    #[test]
    fn nearest_first_then_unscheduled_then_closest_in_time() {
        let start: Timestamp = "2026-11-23T11:00:00Z".parse().unwrap();
        let mut found = vec![
            work("change", 1, 1, 120, false),
            work("change_event", 2, 1, 40, true),
            work("change", 3, 0, 600, false),
            work("change", 4, 1, 30, false),
            work("change_event", 5, 2, 1, true),
        ];
        rank(&mut found, start);
        let order: Vec<i64> = found.iter().map(|w| w.id).collect();
        // On the service itself first; then, one hop away, the unscheduled event before
        // planned work however close that is; then by time; two hops last.
        assert_eq!(order, [3, 2, 4, 1, 5]);
    }
}
