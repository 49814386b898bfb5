//! Planning what a received alert does to the store, given the latest stored
//! instance of its fingerprint: whether that instance continues (with new content or
//! only new times), or a new one starts, and the events each change makes. Pure, so
//! the rules are tested without a database.

use super::merge::{Activity, Content, combine, events};
use super::{Alert, EventKind};
use jiff::Timestamp;
use std::collections::HashMap;
use std::hash::Hash;

/// An alert's identity in Muster: a service and a fingerprint.
pub type AlertKey = (String, String);

/// The latest stored instance of a fingerprint, as planning needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prior<'a> {
    pub id: i64,
    /// Whether the store last recorded it as firing.
    pub firing: bool,
    pub activity: Activity,
    /// What it says; `None` when known to say what the incoming alert says.
    pub content: Option<&'a Alert>,
}

/// What a process remembers of a latest stored instance: enough to plan a re-post
/// with the same content without reading the instance back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub id: i64,
    pub firing: bool,
    pub activity: Activity,
    /// The stored instance's `Alert::content_digest`.
    pub content: u128,
}

impl Known {
    /// The stored instance, for an incoming alert whose digest is `content`; `None`
    /// when the content differs and the instance must be read.
    pub fn prior(&self, content: u128) -> Option<Prior<'static>> {
        (content == self.content).then_some(Prior {
            id: self.id,
            firing: self.firing,
            activity: self.activity,
            content: None,
        })
    }
}

/// One write of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// The stored instance `id` continues saying what it said; only its times move.
    Move {
        id: i64,
        activity: Activity,
        firing: bool,
        events: Vec<EventKind>,
    },
    /// The stored instance `id` continues, with new content.
    Update {
        id: i64,
        alert: Alert,
        firing: bool,
        events: Vec<EventKind>,
    },
    /// A new instance starts, saying what the incoming alert says. `retire` is the
    /// instance it replaces as the latest (its id, and whether it was firing, so it
    /// now resolves).
    Insert {
        alert: Alert,
        firing: bool,
        events: Vec<EventKind>,
        retire: Option<(i64, bool)>,
    },
}

/// Instants as the store keeps them (milliseconds), so a re-sent alert compares equal
/// to its stored self whatever precision its sender used.
fn to_milliseconds(mut activity: Activity) -> Activity {
    let ms = |t: Timestamp| Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t);
    activity.starts_at = ms(activity.starts_at);
    activity.ends_at = activity.ends_at.map(ms);
    activity.updated_at = ms(activity.updated_at);
    activity
}

/// Splits a batch into rounds in which each key appears once, keeping order: an alert
/// repeated in one request (or in requests written together) applies after its
/// earlier copy, as consecutive posts would. `T` carries each alert and whatever
/// travels with it.
pub fn rounds<K: Hash + Eq + Clone, T>(incoming: Vec<(K, T)>) -> Vec<Vec<(K, T)>> {
    let mut rounds: Vec<Vec<(K, T)>> = Vec::new();
    // The round each key goes to next: linear in the batch, however often a key repeats.
    let mut next: HashMap<K, usize> = HashMap::new();
    for (key, item) in incoming {
        let round = next.entry(key.clone()).or_insert(0);
        if *round == rounds.len() {
            rounds.push(Vec::new());
        }
        rounds[*round].push((key, item));
        *round += 1;
    }
    rounds
}

/// Plans one incoming alert against the latest stored instance of its key.
pub fn plan(incoming: &Alert, prior: Option<Prior>, now: Timestamp) -> Write {
    let activity = to_milliseconds(incoming.activity());
    let Some(prior) = prior else {
        return Write::Insert {
            firing: !activity.resolved(now),
            events: events(None, false, &activity, now),
            alert: incoming.with_activity(activity),
            retire: None,
        };
    };
    let combined = combine(&prior.activity, &activity, now);
    let firing = !combined.activity.resolved(now);
    if !combined.same_instance {
        return Write::Insert {
            events: events(None, false, &combined.activity, now),
            alert: incoming.with_activity(combined.activity),
            firing,
            retire: Some((prior.id, prior.firing)),
        };
    }
    // Whether the result says something the stored instance did not.
    let (changed, shown_changed) = match (combined.content, prior.content) {
        (Content::Old, _) | (Content::New, None) => (false, false),
        (Content::New, Some(stored)) => {
            let shown = stored.annotations != incoming.annotations
                || stored.generator_url != incoming.generator_url;
            (shown || stored.labels != incoming.labels, shown)
        }
    };
    let events = events(Some(prior.firing), shown_changed, &combined.activity, now);
    if changed {
        Write::Update {
            id: prior.id,
            alert: incoming.with_activity(combined.activity),
            firing,
            events,
        }
    } else {
        Write::Move {
            id: prior.id,
            activity: combined.activity,
            firing,
            events,
        }
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

    fn alert(name: &str, starts: i64, ends: i64) -> Alert {
        Alert {
            labels: LabelSet::from([("alertname".into(), name.into())]),
            annotations: LabelSet::new(),
            starts_at: at(starts),
            ends_at: Some(at(ends)),
            timeout: false,
            updated_at: at(0),
            generator_url: String::new(),
        }
    }

    fn key(name: &str) -> AlertKey {
        ("svc".into(), name.into())
    }

    fn stored(id: i64, alert: &Alert) -> Prior<'_> {
        Prior {
            id,
            firing: true,
            activity: alert.activity(),
            content: Some(alert),
        }
    }

    #[test]
    fn repeated_keys_go_to_later_rounds_in_order() {
        let rounds = rounds(vec![
            (key("a"), alert("a", 0, 1)),
            (key("b"), alert("b", 0, 1)),
            (key("a"), alert("a", 0, 2)),
            (key("a"), alert("a", 0, 3)),
        ]);
        let sizes: Vec<usize> = rounds.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1, 1]);
        assert_eq!(rounds[2][0].1.ends_at, Some(at(3)));
    }

    #[test]
    fn plans_new_moved_updated_and_replaced_instances() {
        let now = at(0);
        let fresh = plan(&alert("new", 0, 4), None, now);
        assert!(
            matches!(&fresh, Write::Insert { events, retire: None, .. } if events == &[EventKind::Fired])
        );

        let cont = alert("cont", -5, 4);
        let moved = plan(&alert("cont", -5, 5), Some(stored(1, &cont)), now);
        assert!(
            matches!(&moved, Write::Move { id: 1, activity, events, .. } if events.is_empty() && activity.ends_at == Some(at(5)))
        );

        let mut annotated = alert("cont", -5, 5);
        annotated
            .annotations
            .insert("summary".into(), "worse".into());
        let updated = plan(&annotated, Some(stored(1, &cont)), now);
        assert!(
            matches!(&updated, Write::Update { id: 1, alert, events, .. } if events == &[EventKind::Updated] && alert.annotations["summary"] == "worse")
        );

        let again = alert("again", -60, -30);
        let replaced = plan(&alert("again", -1, 4), Some(stored(2, &again)), now);
        assert!(
            matches!(&replaced, Write::Insert { retire: Some((2, true)), events, .. } if events == &[EventKind::Fired])
        );
    }

    #[test]
    fn an_older_post_moves_nothing_it_says() {
        let mut young = alert("x", -5, 10);
        young.updated_at = at(3);
        let mut stale = alert("x", -5, 8);
        stale
            .annotations
            .insert("summary".into(), "old news".into());
        stale.updated_at = at(1);
        let write = plan(&stale, Some(stored(4, &young)), at(4));
        assert!(
            matches!(&write, Write::Move { id: 4, activity, .. } if activity.ends_at == Some(at(10)) && activity.updated_at == at(3))
        );
    }

    #[test]
    fn a_known_instance_stands_in_for_the_stored_one_only_with_the_same_content() {
        let stored = alert("a", -5, 4);
        let known = Known {
            id: 7,
            firing: true,
            activity: stored.activity(),
            content: stored.content_digest(),
        };
        let repost = alert("a", -5, 5);
        let prior = known.prior(repost.content_digest()).expect("same content");
        assert_eq!((prior.id, prior.content), (7, None));
        assert!(matches!(
            plan(&repost, Some(prior), at(0)),
            Write::Move { id: 7, .. }
        ));
        let mut changed = repost.clone();
        changed
            .annotations
            .insert("summary".into(), "now worse".into());
        assert_eq!(known.prior(changed.content_digest()), None);
        let mut moved_url = repost.clone();
        moved_url.generator_url = "http://elsewhere".into();
        assert_eq!(known.prior(moved_url.content_digest()), None);
        let mut swapped = repost;
        swapped.labels = LabelSet::new();
        swapped.annotations = stored.labels.clone();
        assert_ne!(swapped.content_digest(), stored.content_digest());
    }
}
