//! Editing a schedule does not rewrite history: a change to its definition (timezone
//! and layers) is recorded as a revision in force from its `effective_from` (the
//! instant of the change when the document declares none), and questions about
//! earlier instants are answered with the definition then in force.

use crate::catalog::Kind;
use crate::catalog::apply::{Change, Op};
use crate::problem::FieldErrors;
use jiff::Timestamp;
use serde_json::Value;

/// A definition to record when a catalog change is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRevision {
    pub schedule: String,
    pub effective_from: Timestamp,
    /// The schedule document as it was, recorded as the first definition (in force
    /// from the beginning) when the schedule has no revisions yet.
    pub previous: Value,
    pub body: Value,
}

/// The parts of a schedule document that define who is on call when.
const DEFINING: [&str; 3] = ["timezone", "layers", "effective_from"];

/// The revisions a set of catalog changes records: one per updated schedule whose
/// definition or declared `effective_from` changed. A definition declared to take
/// effect before `now` is refused: it would rewrite the past.
pub fn planned(changes: &[Change], now: Timestamp) -> Result<Vec<NewRevision>, FieldErrors> {
    let mut revisions = Vec::new();
    let mut errors = FieldErrors::default();
    for change in changes {
        let (Kind::Schedule, Op::Update, Some(before), Some(after)) =
            (change.kind, change.op, &change.before, &change.after)
        else {
            continue;
        };
        if DEFINING.iter().all(|key| before.get(key) == after.get(key)) {
            continue;
        }
        let declared = after.get("effective_from");
        // Merge patches and re-imported files carry an earlier edit's instant along.
        let carried_over = declared == before.get("effective_from");
        let effective_from = match declared
            .and_then(Value::as_str)
            .map(str::parse::<Timestamp>)
        {
            None => now,
            Some(Ok(at)) if at >= now => at,
            Some(Ok(_)) if carried_over => now,
            Some(Ok(at)) => {
                errors.push(
                    format!("schedules[id={}].effective_from", change.id),
                    format!(
                        "{at} is in the past: a changed schedule takes effect from now on \
                         (give no effective_from, or null in a merge patch, to change it now)"
                    ),
                );
                continue;
            }
            // Validation has read the document already; unreadable means absent.
            Some(Err(_)) => now,
        };
        revisions.push(NewRevision {
            schedule: change.id.clone(),
            effective_from,
            previous: before.clone(),
            body: after.clone(),
        });
    }
    errors.into_result(revisions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(before: Value, after: Value) -> Change {
        Change {
            kind: Kind::Schedule,
            id: "s".into(),
            op: Op::Update,
            before: Some(before),
            after: Some(after),
        }
    }

    fn doc(members: &[&str]) -> Value {
        json!({"id": "s", "timezone": "UTC", "layers": [
            {"name": "l", "rotation": "daily", "handoff": "09:00", "start": "2027-01-01", "members": members}]})
    }

    #[test]
    fn a_changed_definition_takes_effect_now_or_when_declared() {
        let now: Timestamp = "2027-01-10T12:00:00Z".parse().unwrap();
        let planned_now = planned(&[update(doc(&["a"]), doc(&["b"]))], now).unwrap();
        assert_eq!(planned_now.len(), 1);
        assert_eq!(planned_now[0].effective_from, now);
        assert_eq!(planned_now[0].previous, doc(&["a"]));

        let mut later = doc(&["b"]);
        later["effective_from"] = "2027-01-17T09:00:00Z".into();
        let planned_later = planned(&[update(doc(&["a"]), later)], now).unwrap();
        assert_eq!(
            planned_later[0].effective_from.to_string(),
            "2027-01-17T09:00:00Z"
        );
    }

    #[test]
    fn an_instant_carried_over_from_an_earlier_edit_means_now() {
        let now: Timestamp = "2027-01-10T12:00:00Z".parse().unwrap();
        let mut before = doc(&["a"]);
        before["effective_from"] = "2027-01-03T09:00:00Z".into();
        let mut after = doc(&["b"]);
        after["effective_from"] = "2027-01-03T09:00:00Z".into();
        let revisions = planned(&[update(before, after)], now).unwrap();
        assert_eq!(revisions[0].effective_from, now);
    }

    #[test]
    fn other_edits_record_nothing() {
        let now: Timestamp = "2027-01-10T12:00:00Z".parse().unwrap();
        let mut with_override = doc(&["a"]);
        with_override["overrides"] = json!([{"person": "b",
            "from": "2027-01-11T00:00:00Z", "to": "2027-01-12T00:00:00Z"}]);
        assert!(
            planned(&[update(doc(&["a"]), with_override)], now)
                .unwrap()
                .is_empty()
        );
        let created = Change {
            op: Op::Create,
            before: None,
            ..update(doc(&["a"]), doc(&["a"]))
        };
        assert!(planned(&[created], now).unwrap().is_empty());
    }

    #[test]
    fn a_change_declared_in_the_past_is_refused() {
        let now: Timestamp = "2027-01-10T12:00:00Z".parse().unwrap();
        let mut past = doc(&["b"]);
        past["effective_from"] = "2027-01-01T00:00:00Z".into();
        let errors = planned(&[update(doc(&["a"]), past)], now).unwrap_err();
        assert_eq!(errors.0[0].path, "schedules[id=s].effective_from");
        assert!(errors.0[0].message.contains("in the past"), "{errors:?}");
    }
}
