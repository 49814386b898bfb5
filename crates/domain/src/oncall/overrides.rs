//! Overrides made at run time (`POST /api/v1/schedules/{id}/overrides`): what a valid
//! one is, and what ending one means. They are records of their own, not catalog
//! entries, so a catalog import never removes them; they apply after the catalog's
//! overrides (a later override wins).

use super::schedule::{Override, Schedule};
use crate::catalog::parse::from_value;
use crate::problem::FieldErrors;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRequest {
    person: String,
    #[serde(default)]
    replaces: Option<String>,
    from: String,
    to: String,
}

/// Checks a requested override against its schedule and the people of the catalog.
/// Every problem is named by its field; the returned override has an empty id (the
/// store gives it one).
pub fn requested_override(
    body: &Value,
    schedule: &Schedule,
    person_exists: impl Fn(&str) -> bool,
    now: Timestamp,
) -> Result<Override, FieldErrors> {
    let request: OverrideRequest = from_value(body.clone())?;
    let mut errors = FieldErrors::default();
    if !person_exists(&request.person) {
        errors.push("person", format!("unknown person {:?}", request.person));
    }
    let instant = |field: &str, text: &str, errors: &mut FieldErrors| {
        text.parse::<Timestamp>()
            .map_err(|_| {
                errors.push(
                    field,
                    format!("{text:?} is not an RFC 3339 instant (e.g. 2026-11-23T18:00:00Z)"),
                )
            })
            .ok()
    };
    // Reported after `replaces`, in the order of the request's fields.
    let mut window_errors = FieldErrors::default();
    let from = instant("from", &request.from, &mut window_errors);
    let to = instant("to", &request.to, &mut window_errors);
    if let (Some(from), Some(to)) = (from, to) {
        if to <= from {
            window_errors.push("to", "must be after from");
        } else if to <= now {
            window_errors.push("to", "is in the past: the past is not rewritten");
        }
    }
    if let Some(replaced) = &request.replaces {
        // The definitions in force during the override (all of them when its window
        // does not parse).
        let window = match (from, to) {
            (Some(from), Some(to)) if from < to => schedule.spans(from, to),
            _ => schedule.spans(Timestamp::MIN, Timestamp::MAX),
        };
        let in_a_layer = window
            .iter()
            .flat_map(|(definition, _, _)| &definition.layers)
            .any(|l| l.members.iter().any(|m| m == replaced));
        if !person_exists(replaced) {
            errors.push("replaces", format!("unknown person {replaced:?}"));
        } else if !in_a_layer {
            errors.push(
                "replaces",
                format!(
                    "{replaced:?} is in no layer of schedule {:?} during the override, so it would never apply",
                    schedule.id
                ),
            );
        }
        if *replaced == request.person {
            errors.push("replaces", "a person cannot replace themselves");
        }
    }
    errors.0.extend(window_errors.0);
    errors.into_result(Override {
        id: String::new(),
        person: request.person,
        replaces: request.replaces,
        from: from.unwrap_or(now),
        to: to.unwrap_or(now),
    })
}

/// What removing an override at `now` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Not started yet: it goes.
    Remove,
    /// Under way: it ends now, and what happened stays on record.
    CutShort(Timestamp),
    /// Already over: history is kept.
    AlreadyOver,
}

pub fn ending(over: &Override, now: Timestamp) -> Ending {
    if over.to <= now {
        Ending::AlreadyOver
    } else if over.from < now {
        Ending::CutShort(now)
    } else {
        Ending::Remove
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schedule() -> Schedule {
        Schedule::from_json(&json!({
            "id": "primary", "timezone": "Europe/London",
            "layers": [{"name": "weekly", "rotation": "weekly", "handoff": "Mon 09:00",
                        "start": "2026-11-02", "members": ["dana", "eli"]}]
        }))
        .unwrap()
    }

    fn known(id: &str) -> bool {
        ["dana", "eli", "paul"].contains(&id)
    }

    fn now() -> Timestamp {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    fn paths(result: Result<Override, FieldErrors>) -> Vec<String> {
        result.unwrap_err().0.into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn accepts_a_swap_and_a_cover() {
        let swap = requested_override(
            &json!({"person": "paul", "replaces": "dana",
                    "from": "2026-11-24T09:00:00Z", "to": "2026-11-25T09:00:00Z"}),
            &schedule(),
            known,
            now(),
        )
        .unwrap();
        assert_eq!(swap.replaces.as_deref(), Some("dana"));
        let cover = requested_override(
            &json!({"person": "paul", "from": "2026-11-23T10:00:00Z", "to": "2026-11-23T18:00:00+00:00"}),
            &schedule(),
            known,
            now(),
        )
        .unwrap();
        assert_eq!(cover.replaces, None);
    }

    #[test]
    fn names_every_bad_field() {
        let bad = requested_override(
            &json!({"person": "ghost", "replaces": "paul", "from": "tomorrow", "to": "2026-11-20T00:00:00Z"}),
            &schedule(),
            known,
            now(),
        );
        assert_eq!(paths(bad), ["person", "replaces", "from"]);
        let backwards = requested_override(
            &json!({"person": "paul", "from": "2026-11-25T00:00:00Z", "to": "2026-11-24T00:00:00Z"}),
            &schedule(),
            known,
            now(),
        );
        assert_eq!(paths(backwards), ["to"]);
        let past = requested_override(
            &json!({"person": "paul", "from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}),
            &schedule(),
            known,
            now(),
        );
        assert_eq!(paths(past), ["to"]);
        let typo = requested_override(
            &json!({"person": "paul", "from": "2026-11-24T00:00:00Z", "until": "x"}),
            &schedule(),
            known,
            now(),
        );
        assert!(!paths(typo).is_empty());
    }

    #[test]
    fn ending_keeps_history() {
        let over = |from: &str, to: &str| Override {
            id: "o".into(),
            person: "paul".into(),
            replaces: None,
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
        };
        assert_eq!(
            ending(&over("2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z"), now()),
            Ending::Remove
        );
        assert_eq!(
            ending(&over("2026-11-23T00:00:00Z", "2026-11-25T00:00:00Z"), now()),
            Ending::CutShort(now())
        );
        assert_eq!(
            ending(&over("2026-11-20T00:00:00Z", "2026-11-23T12:00:00Z"), now()),
            Ending::AlreadyOver
        );
    }
}
