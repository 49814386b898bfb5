//! Changes as an iCalendar feed (RFC 5545): one event per change over its window,
//! tentative until approved, cancelled ones marked so calendar apps drop them.

use super::{ChangeType, State};
use crate::ical::{Calendar, Event};
use jiff::Timestamp;

/// A change as its calendar event shows it.
pub struct FeedChange<'a> {
    pub number: &'a str,
    pub title: &'a str,
    pub state: State,
    pub change_type: ChangeType,
    pub services: &'a [String],
    pub start: Timestamp,
    pub end: Timestamp,
    /// The implementer's name, when there is one.
    pub implementer: Option<&'a str>,
    pub launch: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What calendar apps make of a change's state: plans not yet approved are tentative.
pub fn status(state: State) -> &'static str {
    match state {
        State::Draft | State::Submitted => "TENTATIVE",
        State::Cancelled => "CANCELLED",
        _ => "CONFIRMED",
    }
}

/// The whole `VCALENDAR` named `name`, stamped `now`; `link` is the base of the
/// change pages.
pub fn feed(name: &str, changes: &[FeedChange], now: Timestamp, link: &str) -> String {
    let mut calendar = Calendar::new("Changes", name, now);
    // UIDs are global: qualified by this Muster's host, two instances never collide.
    let host = link
        .split_once("://")
        .map_or(link, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("muster");
    for change in changes {
        let state = change.state.as_str().replace('_', " ");
        let mut description = format!(
            "{} change, {state}\nServices: {}",
            change.change_type.as_str(),
            change.services.join(", ")
        );
        if let Some(implementer) = change.implementer {
            description.push_str(&format!("\nImplementer: {implementer}"));
        }
        if change.launch {
            description.push_str("\nA product launch");
        }
        let mut categories = vec![change.state.as_str(), change.change_type.as_str()];
        if change.launch {
            categories.push("launch");
        }
        calendar.event(&Event {
            uid: &format!("{}@{host}", change.number),
            start: change.start,
            end: change.end,
            summary: &format!("{} {} ({state})", change.number, change.title),
            description: Some(&description),
            url: &format!("{link}/changes/{}", change.number),
            status: Some(status(change.state)),
            categories: &categories,
            // Seconds since creation: grows with every edit, so apps take the latest.
            sequence: Some(
                change
                    .updated_at
                    .duration_since(change.created_at)
                    .as_secs(),
            ),
            last_modified: Some(change.updated_at),
            // A cancelled change no longer takes anyone's time.
            busy: change.state != State::Cancelled,
        });
    }
    calendar.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_change_with_its_state_as_status() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let services = vec!["phone-switch".to_string(), "agent-portal".to_string()];
        let change = |number, state| FeedChange {
            number,
            title: "Patch, then fail over",
            state,
            change_type: ChangeType::Normal,
            services: &services,
            start: at("2026-11-25T10:00:00Z"),
            end: at("2026-11-25T13:00:00Z"),
            implementer: Some("Rodney Blake"),
            launch: false,
            created_at: at("2026-11-20T10:00:00Z"),
            updated_at: at("2026-11-20T10:01:00Z"),
        };
        let text = feed(
            "Changes: contact-centre",
            &[
                change("CHG-1", State::Submitted),
                change("CHG-2", State::Cancelled),
            ],
            at("2026-11-23T10:00:00Z"),
            "https://m.example",
        );
        assert!(text.contains("UID:CHG-1@m.example\r\n"));
        assert!(text.contains("SUMMARY:CHG-1 Patch\\, then fail over (submitted)\r\n"));
        assert!(text.contains("STATUS:TENTATIVE\r\n"));
        assert!(
            text.contains("STATUS:CANCELLED\r\nCATEGORIES:cancelled,normal\r\nSEQUENCE:60\r\n")
        );
        assert!(text.contains("TRANSP:TRANSPARENT\r\n") && text.contains("TRANSP:OPAQUE\r\n"));
        assert!(text.contains("SEQUENCE:60\r\n"));
        assert!(text.contains("URL:https://m.example/changes/CHG-2\r\n"));
        let unfolded = text.replace("\r\n ", "");
        assert!(
            unfolded.contains("Services: phone-switch\\, agent-portal\\nImplementer: Rodney Blake")
        );
        assert_eq!(status(State::InProgress), "CONFIRMED");
    }
}
