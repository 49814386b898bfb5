//! Alertmanager's rules for an alert posted again: merge with the stored one when the
//! activity ranges overlap, else replace it. Muster also decides whether the result is
//! the same *instance* (one activity range, the unit incidents group), and which
//! events the change makes. The rules look only at times; which alert's content the
//! result keeps is an answer, so a re-post that says the same is planned without
//! copying what it says.

use super::{Alert, EventKind};
use jiff::Timestamp;

/// When an alert fires: the part of it merging decides and most re-posts move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    pub starts_at: Timestamp,
    /// `None`: fires until resolved explicitly.
    pub ends_at: Option<Timestamp>,
    /// Whether `ends_at` was made up from the resolve timeout rather than sent.
    pub timeout: bool,
    pub updated_at: Timestamp,
}

impl Activity {
    /// Alertmanager's `Resolved`: an end time at or before `now`.
    pub fn resolved(&self, now: Timestamp) -> bool {
        self.ends_at.is_some_and(|end| end <= now)
    }

    /// `None` end times (fire until resolved) sort after every instant.
    fn end(&self) -> Timestamp {
        self.ends_at.unwrap_or(Timestamp::MAX)
    }
}

impl Alert {
    pub fn activity(&self) -> Activity {
        Activity {
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            timeout: self.timeout,
            updated_at: self.updated_at,
        }
    }

    /// This alert's content with `activity`'s times.
    pub fn with_activity(&self, activity: Activity) -> Alert {
        Alert {
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            generator_url: self.generator_url.clone(),
            starts_at: activity.starts_at,
            ends_at: activity.ends_at,
            timeout: activity.timeout,
            updated_at: activity.updated_at,
        }
    }
}

/// Whose content (labels, annotations, generator URL) a merge keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Old,
    New,
}

/// Alertmanager's `Alert.Merge`: the younger alert (by `updated_at`) supplies the
/// fields, the earliest start is kept; a later explicit end of the older alert wins
/// unless the younger one is resolved, and then only a later resolved end wins.
pub fn merge(old: &Activity, new: &Activity, now: Timestamp) -> (Activity, Content) {
    let (younger, older, content) = if new.updated_at < old.updated_at {
        (old, new, Content::Old)
    } else {
        (new, old, Content::New)
    };
    let mut result = *younger;
    if older.starts_at < younger.starts_at {
        result.starts_at = older.starts_at;
    }
    if younger.resolved(now) {
        if older.resolved(now) && older.end() > younger.end() {
            result.ends_at = older.ends_at;
        }
    } else if older.end() > younger.end() && !older.timeout {
        // Alertmanager keeps the younger alert's timeout flag here.
        result.ends_at = older.ends_at;
    }
    (result, content)
}

/// Alertmanager's store rule: merge when the new end or the new start falls strictly
/// inside the stored activity range.
pub fn overlaps(old: &Activity, new: &Activity) -> bool {
    let inside = |t: Timestamp| t > old.starts_at && t < old.end();
    inside(new.end()) || inside(new.starts_at)
}

/// What posting `new` over the stored `old` (same fingerprint) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Combined {
    pub activity: Activity,
    pub content: Content,
    /// Whether the result continues `old`'s instance. Alertmanager replaces an alert
    /// re-sent with the same start and a later end (what Prometheus does every
    /// minute); that is still one activity range. An open-ended alert (a PagerDuty
    /// trigger) after a resolution is always a new one.
    pub same_instance: bool,
}

pub fn combine(old: &Activity, new: &Activity, now: Timestamp) -> Combined {
    // A trigger after a resolution opens a new alert, whatever time it claims.
    let reopened = old.resolved(now) && new.ends_at.is_none();
    if overlaps(old, new) && !reopened {
        let (activity, content) = merge(old, new, now);
        return Combined {
            activity,
            content,
            same_instance: true,
        };
    }
    Combined {
        activity: *new,
        content: Content::New,
        same_instance: new.starts_at == old.starts_at && !reopened,
    }
}

/// The events a change to one instance makes: `was_firing` is what the store last
/// recorded (`None` for a new instance); `shown_changed` whether the annotations or
/// the generator URL changed.
pub fn events(
    was_firing: Option<bool>,
    shown_changed: bool,
    after: &Activity,
    now: Timestamp,
) -> Vec<EventKind> {
    let firing = !after.resolved(now);
    match was_firing {
        None | Some(false) if firing => vec![EventKind::Fired],
        Some(true) if !firing => vec![EventKind::Resolved],
        Some(true) if shown_changed => vec![EventKind::Updated],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::ToSpan;

    fn at(minute: i64) -> Timestamp {
        "2026-11-23T10:00:00Z".parse::<Timestamp>().unwrap() + minute.minutes()
    }

    fn alert(starts: i64, ends: Option<i64>, updated: i64, timeout: bool) -> Activity {
        Activity {
            starts_at: at(starts),
            ends_at: ends.map(at),
            timeout,
            updated_at: at(updated),
        }
    }

    #[test]
    fn prometheus_resends_extend_one_instance() {
        let first = alert(0, Some(4), 0, false);
        let resend = alert(0, Some(5), 1, false);
        let combined = combine(&first, &resend, at(1));
        assert!(combined.same_instance);
        assert_eq!(combined.activity.ends_at, Some(at(5)));
    }

    #[test]
    fn merge_keeps_the_earliest_start_and_a_later_explicit_end() {
        let old = alert(-10, Some(30), 0, false);
        let new = alert(0, Some(5), 1, true);
        let merged = combine(&old, &new, at(1));
        assert!(merged.same_instance);
        assert_eq!(merged.activity.starts_at, at(-10));
        assert_eq!(merged.activity.ends_at, Some(at(30)));
        assert!(
            merged.activity.timeout,
            "the younger alert's flag, as Alertmanager"
        );
    }

    #[test]
    fn a_timeout_end_does_not_outlive_a_newer_explicit_one() {
        let old = alert(-10, Some(30), 0, true);
        let new = alert(0, Some(5), 1, false);
        assert_eq!(combine(&old, &new, at(1)).activity.ends_at, Some(at(5)));
    }

    #[test]
    fn resolving_ends_the_instance_at_the_latest_resolved_end() {
        let old = alert(-10, Some(30), 0, false);
        let resolve = alert(-10, Some(1), 2, false);
        let merged = combine(&old, &resolve, at(2));
        assert_eq!(merged.activity.ends_at, Some(at(1)));
        assert_eq!(
            events(Some(true), false, &merged.activity, at(2)),
            [EventKind::Resolved]
        );
    }

    #[test]
    fn firing_after_resolution_is_a_new_instance() {
        let old = alert(-10, Some(-5), 0, false);
        let again = alert(0, Some(4), 1, false);
        let combined = combine(&old, &again, at(1));
        assert!(!combined.same_instance);
        assert_eq!(combined.activity.starts_at, at(0));
        assert_eq!(
            events(None, false, &combined.activity, at(1)),
            [EventKind::Fired]
        );
    }

    #[test]
    fn the_older_update_never_overrides_the_younger() {
        let young = alert(0, Some(10), 5, false);
        let stale = alert(0, Some(8), 1, false);
        let (merged, content) = merge(&young, &stale, at(2));
        assert_eq!(content, Content::Old, "the stored alert's content stays");
        assert_eq!(merged.updated_at, at(5));
        assert_eq!(merged.ends_at, Some(at(10)));
        assert_eq!(merge(&stale, &young, at(2)).1, Content::New);
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
        assert_eq!(combined.activity.starts_at, at(0));
    }

    #[test]
    fn events_report_updates_only_when_something_shown_changed() {
        let resend = alert(0, Some(5), 1, false);
        assert!(events(Some(true), false, &resend, at(1)).is_empty());
        assert_eq!(
            events(Some(true), true, &resend, at(1)),
            [EventKind::Updated]
        );
        assert_eq!(
            events(Some(false), true, &resend, at(1)),
            [EventKind::Fired]
        );
        assert!(events(Some(false), true, &alert(0, Some(1), 1, false), at(2)).is_empty());
    }
}
