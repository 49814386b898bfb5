//! Alertmanager's rules for an alert posted again: merge with the stored one when the
//! activity ranges overlap, else replace it. Muster also decides whether the result is
//! the same *instance* (one activity range, the unit incidents group), and which
//! events the change makes.

use super::{Alert, EventKind};
use jiff::Timestamp;

/// `None` end times (fire until resolved) sort after every instant.
fn end(alert: &Alert) -> Timestamp {
    alert.ends_at.unwrap_or(Timestamp::MAX)
}

/// Alertmanager's `Alert.Merge`: the younger alert (by `updated_at`) supplies the
/// fields, the earliest start is kept; a later explicit end of the older alert wins
/// unless the younger one is resolved, and then only a later resolved end wins.
pub fn merge(old: &Alert, new: &Alert, now: Timestamp) -> Alert {
    if new.updated_at < old.updated_at {
        return merge(new, old, now);
    }
    let mut result = new.clone();
    if old.starts_at < new.starts_at {
        result.starts_at = old.starts_at;
    }
    if new.resolved(now) {
        if old.resolved(now) && end(old) > end(new) {
            result.ends_at = old.ends_at;
        }
    } else if end(old) > end(new) && !old.timeout {
        // Alertmanager keeps the younger alert's timeout flag here.
        result.ends_at = old.ends_at;
    }
    result
}

/// Alertmanager's store rule: merge when the new end or the new start falls strictly
/// inside the stored activity range.
pub fn overlaps(old: &Alert, new: &Alert) -> bool {
    let inside = |t: Timestamp| t > old.starts_at && t < end(old);
    inside(end(new)) || inside(new.starts_at)
}

/// What posting `new` over the stored `old` (same fingerprint) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combined {
    pub alert: Alert,
    /// Whether the result continues `old`'s instance. Alertmanager replaces an alert
    /// re-sent with the same start and a later end (what Prometheus does every
    /// minute); that is still one activity range. An open-ended alert (a PagerDuty
    /// trigger) after a resolution is always a new one.
    pub same_instance: bool,
}

pub fn combine(old: &Alert, new: &Alert, now: Timestamp) -> Combined {
    // A trigger after a resolution opens a new alert, whatever time it claims.
    let reopened = old.resolved(now) && new.ends_at.is_none();
    if overlaps(old, new) && !reopened {
        return Combined {
            alert: merge(old, new, now),
            same_instance: true,
        };
    }
    Combined {
        alert: new.clone(),
        same_instance: new.starts_at == old.starts_at && !reopened,
    }
}

/// The events a change to one instance makes: `was_firing` is what the store last
/// recorded (`None` for a new instance).
pub fn events(
    was_firing: Option<bool>,
    before: Option<&Alert>,
    after: &Alert,
    now: Timestamp,
) -> Vec<EventKind> {
    let firing = !after.resolved(now);
    match was_firing {
        None if firing => vec![EventKind::Fired],
        None => Vec::new(),
        Some(false) if firing => vec![EventKind::Fired],
        Some(true) if !firing => vec![EventKind::Resolved],
        Some(true) => {
            let changed = before.is_some_and(|b| {
                b.annotations != after.annotations || b.generator_url != after.generator_url
            });
            if changed {
                vec![EventKind::Updated]
            } else {
                Vec::new()
            }
        }
        Some(false) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::LabelSet;
    use jiff::ToSpan;

    fn at(minute: i64) -> Timestamp {
        "2026-11-23T10:00:00Z".parse::<Timestamp>().unwrap() + minute.minutes()
    }

    fn alert(starts: i64, ends: Option<i64>, updated: i64, timeout: bool) -> Alert {
        Alert {
            labels: LabelSet::from([("alertname".into(), "x".into())]),
            annotations: LabelSet::new(),
            starts_at: at(starts),
            ends_at: ends.map(at),
            timeout,
            updated_at: at(updated),
            generator_url: String::new(),
        }
    }

    #[test]
    fn prometheus_resends_extend_one_instance() {
        let first = alert(0, Some(4), 0, false);
        let resend = alert(0, Some(5), 1, false);
        let combined = combine(&first, &resend, at(1));
        assert!(combined.same_instance);
        assert_eq!(combined.alert.ends_at, Some(at(5)));
    }

    #[test]
    fn merge_keeps_the_earliest_start_and_a_later_explicit_end() {
        let old = alert(-10, Some(30), 0, false);
        let new = alert(0, Some(5), 1, true);
        let merged = combine(&old, &new, at(1));
        assert!(merged.same_instance);
        assert_eq!(merged.alert.starts_at, at(-10));
        assert_eq!(merged.alert.ends_at, Some(at(30)));
        assert!(
            merged.alert.timeout,
            "the younger alert's flag, as Alertmanager"
        );
    }

    #[test]
    fn a_timeout_end_does_not_outlive_a_newer_explicit_one() {
        let old = alert(-10, Some(30), 0, true);
        let new = alert(0, Some(5), 1, false);
        assert_eq!(combine(&old, &new, at(1)).alert.ends_at, Some(at(5)));
    }

    #[test]
    fn resolving_ends_the_instance_at_the_latest_resolved_end() {
        let old = alert(-10, Some(30), 0, false);
        let resolve = alert(-10, Some(1), 2, false);
        let merged = combine(&old, &resolve, at(2));
        assert_eq!(merged.alert.ends_at, Some(at(1)));
        assert_eq!(
            events(Some(true), Some(&old), &merged.alert, at(2)),
            [EventKind::Resolved]
        );
    }

    #[test]
    fn firing_after_resolution_is_a_new_instance() {
        let old = alert(-10, Some(-5), 0, false);
        let again = alert(0, Some(4), 1, false);
        let combined = combine(&old, &again, at(1));
        assert!(!combined.same_instance);
        assert_eq!(combined.alert.starts_at, at(0));
        assert_eq!(
            events(None, None, &combined.alert, at(1)),
            [EventKind::Fired]
        );
    }

    #[test]
    fn the_older_update_never_overrides_the_younger() {
        let young = Alert {
            annotations: LabelSet::from([("summary".into(), "new".into())]),
            ..alert(0, Some(10), 5, false)
        };
        let stale = alert(0, Some(8), 1, false);
        let merged = merge(&young, &stale, at(2));
        assert_eq!(merged.annotations["summary"], "new");
    }

    #[test]
    fn a_trigger_after_resolution_opens_a_new_instance_even_at_the_same_instant() {
        let resolved = alert(0, Some(0), 0, false);
        let trigger = alert(0, None, 0, false);
        assert!(!combine(&resolved, &trigger, at(0)).same_instance);
        let longer = alert(-10, Some(0), 0, false);
        let backdated = alert(-5, None, 1, false);
        assert!(
            !combine(&longer, &backdated, at(1)).same_instance,
            "a trigger claiming a time inside the resolved range still opens a new one"
        );
        let resend_resolved = alert(0, Some(0), 1, false);
        assert!(combine(&resolved, &resend_resolved, at(1)).same_instance);
    }

    #[test]
    fn open_ended_alerts_fire_until_resolved() {
        let open = alert(0, None, 0, false);
        assert!(!open.resolved(at(100_000)));
        let trigger_again = alert(5, None, 5, false);
        let combined = combine(&open, &trigger_again, at(5));
        assert!(combined.same_instance);
        assert_eq!(combined.alert.starts_at, at(0));
    }

    #[test]
    fn events_report_updates_only_when_something_shown_changes() {
        let before = alert(0, Some(4), 0, false);
        let resend = alert(0, Some(5), 1, false);
        assert!(events(Some(true), Some(&before), &resend, at(1)).is_empty());
        let annotated = Alert {
            annotations: LabelSet::from([("summary".into(), "disk 95%".into())]),
            ..resend
        };
        assert_eq!(
            events(Some(true), Some(&before), &annotated, at(1)),
            [EventKind::Updated]
        );
        assert_eq!(
            events(Some(false), Some(&before), &annotated, at(1)),
            [EventKind::Fired]
        );
    }
}
