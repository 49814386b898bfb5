//! A person's shifts as an iCalendar feed (RFC 5545): one event per final shift.

use crate::ical::{Calendar, Event};
use jiff::Timestamp;

/// One shift in a feed.
pub struct FeedShift<'a> {
    pub schedule: &'a str,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The whole `VCALENDAR` for `person`, stamped `now`; `link` is the schedule page base.
pub fn feed(
    person: &str,
    person_name: &str,
    shifts: &[FeedShift],
    now: Timestamp,
    link: &str,
) -> String {
    let mut calendar = Calendar::new("On-call shifts", &format!("On call: {person_name}"), now);
    for shift in shifts {
        calendar.event(&Event {
            uid: &format!(
                "{person}-{}-{}@muster",
                shift.schedule,
                shift.start.as_second()
            ),
            start: shift.start,
            end: shift.end,
            summary: &format!("On call: {}", shift.schedule),
            description: None,
            url: &format!("{link}/schedules/{}", shift.schedule),
            status: None,
            categories: &[],
            sequence: None,
            last_modified: None,
            busy: true,
        });
    }
    calendar.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_busy_event_per_shift_linking_its_schedule() {
        let shifts = [FeedShift {
            schedule: "print-platform-primary",
            start: "2026-11-23T09:00:00Z".parse().unwrap(),
            end: "2026-11-30T09:00:00Z".parse().unwrap(),
        }];
        let now = "2026-11-23T10:00:00Z".parse().unwrap();
        let text = feed("dana", "Dana Okafor", &shifts, now, "https://m.example");
        assert!(text.contains("X-WR-CALNAME:On call: Dana Okafor\r\n"));
        assert!(text.contains("UID:dana-print-platform-primary-1795424400@muster\r\n"));
        assert!(text.contains("SUMMARY:On call: print-platform-primary\r\n"));
        assert!(text.contains("URL:https://m.example/schedules/print-platform-primary\r\n"));
        assert!(text.contains("TRANSP:OPAQUE\r\n"));
        assert_eq!(text.matches("BEGIN:VEVENT").count(), 1);
    }
}
