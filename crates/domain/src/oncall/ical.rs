//! A person's shifts as an iCalendar feed (RFC 5545): one event per final shift, times
//! in UTC, text escaped and lines folded at 75 octets.

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
    let mut out = String::new();
    let mut line = |text: String| fold(&text, &mut out);
    line("BEGIN:VCALENDAR".into());
    line("VERSION:2.0".into());
    line("PRODID:-//Muster//On-call shifts//EN".into());
    line("CALSCALE:GREGORIAN".into());
    line("METHOD:PUBLISH".into());
    line(format!(
        "X-WR-CALNAME:{}",
        escape(&format!("On call: {person_name}"))
    ));
    for shift in shifts {
        line("BEGIN:VEVENT".into());
        line(format!(
            "UID:{}",
            escape(&format!(
                "{person}-{}-{}@muster",
                shift.schedule,
                shift.start.as_second()
            ))
        ));
        line(format!("DTSTAMP:{}", utc(now)));
        line(format!("DTSTART:{}", utc(shift.start)));
        line(format!("DTEND:{}", utc(shift.end)));
        line(format!(
            "SUMMARY:{}",
            escape(&format!("On call: {}", shift.schedule))
        ));
        line(format!("URL:{link}/schedules/{}", shift.schedule));
        line("TRANSP:OPAQUE".into());
        line("END:VEVENT".into());
    }
    line("END:VCALENDAR".into());
    out
}

/// `20261123T090000Z`.
fn utc(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// TEXT values: backslash, semicolon, comma and newlines escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends a content line, folded so no line exceeds 75 octets (continuations start
/// with a space), never splitting a UTF-8 character; lines end in CRLF.
fn fold(text: &str, out: &mut String) {
    let mut width = 0;
    for c in text.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_utc_escaped_and_folded() {
        let shifts = [FeedShift {
            schedule: "print-platform-primary",
            start: "2026-11-23T09:00:00Z".parse().unwrap(),
            end: "2026-11-30T09:00:00Z".parse().unwrap(),
        }];
        let now = "2026-11-23T10:00:00Z".parse().unwrap();
        let text = feed(
            "dana",
            "Dana, Okafor; ÄÖÜ ".repeat(6).trim(),
            &shifts,
            now,
            "https://m.example",
        );
        assert!(text.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
        assert!(text.contains("DTSTART:20261123T090000Z\r\nDTEND:20261130T090000Z\r\n"));
        assert!(text.contains("X-WR-CALNAME:On call: Dana\\, Okafor\\; "));
        for line in text.split("\r\n") {
            assert!(line.len() <= 75, "{line:?} is longer than 75 octets");
        }
        assert!(text.ends_with("END:VCALENDAR\r\n"));
    }
}
