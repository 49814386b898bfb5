//! Planning what a batch of received alerts does to the store, given the latest stored
//! instance of each fingerprint: which instances continue, which start, which end,
//! and the events each change makes. Pure, so the rules are tested without a database.

use super::merge::{combine, events};
use super::{Alert, EventKind};
use jiff::Timestamp;
use std::collections::HashMap;

/// An alert's identity in Muster: a service and a fingerprint.
pub type AlertKey = (String, String);

/// The latest stored instance of a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub alert: Alert,
    /// Whether the store last recorded it as firing.
    pub firing: bool,
}

/// One write of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// The stored instance `id` continues, with new fields.
    Update {
        id: i64,
        alert: Alert,
        firing: bool,
        events: Vec<EventKind>,
    },
    /// A new instance starts. `retire` is the instance it replaces as the latest (its
    /// id, and whether it was firing, so it now resolves).
    Insert {
        key: AlertKey,
        alert: Alert,
        firing: bool,
        events: Vec<EventKind>,
        retire: Option<(i64, bool)>,
    },
}

/// Instants as the store keeps them (milliseconds), so a re-sent alert compares equal
/// to its stored self whatever precision its sender used.
fn to_milliseconds(mut alert: Alert) -> Alert {
    let ms = |t: Timestamp| Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t);
    alert.starts_at = ms(alert.starts_at);
    alert.ends_at = alert.ends_at.map(ms);
    alert.updated_at = ms(alert.updated_at);
    alert
}

/// Splits a batch into rounds in which each key appears once, keeping order: an alert
/// repeated in one request (or in requests written together) applies after its
/// earlier copy, as consecutive posts would. `T` carries each alert and whatever
/// travels with it.
pub fn rounds<T>(incoming: Vec<(AlertKey, T)>) -> Vec<Vec<(AlertKey, T)>> {
    let mut rounds: Vec<Vec<(AlertKey, T)>> = Vec::new();
    // The round each key goes to next: linear in the batch, however often a key repeats.
    let mut next: HashMap<AlertKey, usize> = HashMap::new();
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

/// Plans one round (each key once) against the latest stored instances.
pub fn plan(
    latest: &HashMap<AlertKey, Stored>,
    round: Vec<(AlertKey, Alert)>,
    now: Timestamp,
) -> Vec<Write> {
    round
        .into_iter()
        .map(|(key, alert)| (key, to_milliseconds(alert)))
        .map(|(key, alert)| match latest.get(&key) {
            None => Write::Insert {
                key,
                firing: !alert.resolved(now),
                events: events(None, None, &alert, now),
                alert,
                retire: None,
            },
            Some(stored) => {
                let combined = combine(&stored.alert, &alert, now);
                let firing = !combined.alert.resolved(now);
                if combined.same_instance {
                    Write::Update {
                        id: stored.id,
                        events: events(
                            Some(stored.firing),
                            Some(&stored.alert),
                            &combined.alert,
                            now,
                        ),
                        alert: combined.alert,
                        firing,
                    }
                } else {
                    Write::Insert {
                        key,
                        events: events(None, None, &combined.alert, now),
                        alert: combined.alert,
                        firing,
                        retire: Some((stored.id, stored.firing)),
                    }
                }
            }
        })
        .collect()
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
    fn plans_new_continued_and_replaced_instances() {
        let now = at(0);
        let latest = HashMap::from([
            (
                key("cont"),
                Stored {
                    id: 1,
                    alert: alert("cont", -5, 4),
                    firing: true,
                },
            ),
            (
                key("again"),
                Stored {
                    id: 2,
                    alert: alert("again", -60, -30),
                    firing: true,
                },
            ),
        ]);
        let writes = plan(
            &latest,
            vec![
                (key("new"), alert("new", 0, 4)),
                (key("cont"), alert("cont", -5, 5)),
                (key("again"), alert("again", -1, 4)),
            ],
            now,
        );
        assert!(
            matches!(&writes[0], Write::Insert { events, retire: None, .. } if events == &[EventKind::Fired])
        );
        assert!(matches!(&writes[1], Write::Update { id: 1, events, .. } if events.is_empty()));
        assert!(
            matches!(&writes[2], Write::Insert { retire: Some((2, true)), events, .. } if events == &[EventKind::Fired])
        );
    }
}
