//! An iCalendar (RFC 5545) writer for Muster's feeds: times in UTC, text escaped and
//! content lines folded at 75 octets, CRLF line ends.

use jiff::Timestamp;

/// One `VEVENT`.
pub struct Event<'a> {
    /// Unique and stable across fetches, so calendar apps update the event in place.
    pub uid: &'a str,
    pub start: Timestamp,
    pub end: Timestamp,
    pub summary: &'a str,
    pub description: Option<&'a str>,
    pub url: &'a str,
    /// `TENTATIVE`, `CONFIRMED` or `CANCELLED`.
    pub status: Option<&'a str>,
    pub categories: &'a [&'a str],
    /// Revision: calendar apps keep the event with the highest.
    pub sequence: Option<i64>,
    pub last_modified: Option<Timestamp>,
    /// Busy time (`OPAQUE`) or not (`TRANSPARENT`).
    pub busy: bool,
}

/// A `VCALENDAR` being written.
pub struct Calendar {
    out: String,
    stamp: String,
}

impl Calendar {
    /// Starts a calendar named `name`, stamped `now`; `product` names the feed in
    /// `PRODID`.
    pub fn new(product: &str, name: &str, now: Timestamp) -> Calendar {
        let mut calendar = Calendar {
            out: String::new(),
            stamp: utc(now),
        };
        calendar.line("BEGIN:VCALENDAR");
        calendar.line("VERSION:2.0");
        calendar.line(&format!("PRODID:-//Muster//{product}//EN"));
        calendar.line("CALSCALE:GREGORIAN");
        calendar.line("METHOD:PUBLISH");
        calendar.line(&format!("X-WR-CALNAME:{}", escape(name)));
        calendar
    }

    pub fn event(&mut self, event: &Event) {
        self.line("BEGIN:VEVENT");
        self.line(&format!("UID:{}", escape(event.uid)));
        let stamp = format!("DTSTAMP:{}", self.stamp);
        self.line(&stamp);
        self.line(&format!("DTSTART:{}", utc(event.start)));
        self.line(&format!("DTEND:{}", utc(event.end)));
        self.line(&format!("SUMMARY:{}", escape(event.summary)));
        if let Some(description) = event.description {
            self.line(&format!("DESCRIPTION:{}", escape(description)));
        }
        self.line(&format!("URL:{}", event.url));
        if let Some(status) = event.status {
            self.line(&format!("STATUS:{status}"));
        }
        if !event.categories.is_empty() {
            let categories: Vec<String> = event.categories.iter().map(|c| escape(c)).collect();
            self.line(&format!("CATEGORIES:{}", categories.join(",")));
        }
        if let Some(sequence) = event.sequence {
            self.line(&format!("SEQUENCE:{sequence}"));
        }
        if let Some(modified) = event.last_modified {
            self.line(&format!("LAST-MODIFIED:{}", utc(modified)));
        }
        self.line(if event.busy {
            "TRANSP:OPAQUE"
        } else {
            "TRANSP:TRANSPARENT"
        });
        self.line("END:VEVENT");
    }

    pub fn finish(mut self) -> String {
        self.line("END:VCALENDAR");
        self.out
    }

    /// Appends a content line, folded so no line exceeds 75 octets (continuations
    /// start with a space), never splitting a UTF-8 character.
    fn line(&mut self, text: &str) {
        let mut width = 0;
        for c in text.chars() {
            if width + c.len_utf8() > 75 {
                self.out.push_str("\r\n ");
                width = 1;
            }
            self.out.push(c);
            width += c.len_utf8();
        }
        self.out.push_str("\r\n");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_utc_escaped_and_folded() {
        let now = "2026-11-23T10:00:00Z".parse().unwrap();
        let name = "Dana, Okafor; ÄÖÜ ".repeat(6);
        let mut calendar = Calendar::new("Test", name.trim(), now);
        calendar.event(&Event {
            uid: "a@muster",
            start: "2026-11-23T09:00:00Z".parse().unwrap(),
            end: "2026-11-30T09:00:00Z".parse().unwrap(),
            summary: "line one\nline two",
            description: None,
            url: "https://m.example/x",
            status: Some("TENTATIVE"),
            categories: &["in_progress", "a,b"],
            sequence: Some(3),
            last_modified: None,
            busy: false,
        });
        let text = calendar.finish();
        assert!(
            text.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Muster//Test//EN\r\n")
        );
        assert!(text.contains(
            "DTSTAMP:20261123T100000Z\r\nDTSTART:20261123T090000Z\r\nDTEND:20261130T090000Z\r\n"
        ));
        assert!(text.contains("X-WR-CALNAME:Dana\\, Okafor\\; "));
        assert!(text.contains("SUMMARY:line one\\nline two\r\n"));
        assert!(
            text.contains("CATEGORIES:in_progress,a\\,b\r\nSEQUENCE:3\r\nTRANSP:TRANSPARENT\r\n")
        );
        for line in text.split("\r\n") {
            assert!(line.len() <= 75, "{line:?} is longer than 75 octets");
        }
        assert!(text.ends_with("END:VEVENT\r\nEND:VCALENDAR\r\n"));
    }
}
