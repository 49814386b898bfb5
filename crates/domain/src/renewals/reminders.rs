//! Which reminder is due. Each offset fires once per expiry, decided by state — the
//! offsets already sent for this expiry — rather than by "days left equals N", so
//! reminders missed while Muster was down are caught up as one message (the most
//! urgent of them), never as a burst, and a moved expiry starts afresh.

use super::pipeline::Renewal;
use super::{Renewable, days, days_left};
use jiff::Timestamp;

/// A reminder to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The offset the message speaks for: the most urgent one passed.
    pub offset: i64,
    /// Every offset this message counts as sent (those missed are caught up in it).
    pub covers: Vec<i64>,
    /// Inside the last offset: unverified, the owner team's escalation policy is paged.
    pub last: bool,
}

/// The reminder due at `now` for an item expiring at `expires_at`, with reminder
/// `offsets` (days before expiry) of which `sent` went out for this expiry already.
pub fn due(expires_at: Timestamp, offsets: &[i64], sent: &[i64], now: Timestamp) -> Option<Due> {
    let passed: Vec<i64> = offsets
        .iter()
        .copied()
        .filter(|d| expires_at - days(*d) <= now)
        .collect();
    let covers: Vec<i64> = passed
        .iter()
        .copied()
        .filter(|d| !sent.contains(d))
        .collect();
    let offset = covers.iter().copied().min()?;
    let last = offsets.iter().min().is_some_and(|l| passed.contains(l));
    Some(Due {
        offset,
        covers,
        last,
    })
}

/// "expires in 30 days (2027-02-01)", "expires within a day", "expired 3 days ago".
pub fn when(expires_at: Timestamp, now: Timestamp) -> String {
    let date = expires_at.strftime("%Y-%m-%d");
    if expires_at <= now {
        return match days_left(now, expires_at) {
            0 => format!("expired today ({date})"),
            1 => format!("expired 1 day ago ({date})"),
            ago => format!("expired {ago} days ago ({date})"),
        };
    }
    match days_left(expires_at, now) {
        0 => format!("expires within a day ({date})"),
        1 => format!("expires in 1 day ({date})"),
        d => format!("expires in {d} days ({date})"),
    }
}

/// A reminder's subject and body; `renewal` is the renewal under way, if any.
pub fn message(
    renewable: &Renewable,
    due: &Due,
    renewal: Option<&Renewal>,
    now: Timestamp,
) -> (String, String) {
    let when = when(renewable.expires_at, now);
    let subject = format!("Renewal due: {} {when}", renewable.name);
    let mut body = format!(
        "{} ({}, {}) {when}.\nApplied by team {}",
        renewable.name,
        renewable.id,
        renewable.kind.as_str().replace('_', " "),
        renewable.owner
    );
    if let Some(buyer) = &renewable.buyer {
        body.push_str(&format!("; bought by team {buyer}"));
    }
    if let Some(vendor) = &renewable.vendor {
        body.push_str(&format!(" from {vendor}"));
    }
    body.push_str(".\n");
    let keys: Vec<&str> = renewable.targets.iter().map(|t| t.key.as_str()).collect();
    if keys != [super::IMPLICIT_TARGET] {
        body.push_str(&format!(
            "It must be applied on {} target{}: {}.\n",
            keys.len(),
            if keys.len() == 1 { "" } else { "s" },
            keys.join(", ")
        ));
    }
    if !renewable.services.is_empty() {
        body.push_str(&format!(
            "Services that depend on it: {}.\n",
            renewable.services.join(", ")
        ));
    }
    if let Some(renewal) = renewal {
        body.push_str(&format!("Renewal: {}.\n", renewal.wording(now)));
    }
    body.push_str(&format!("This is the {}-day reminder", due.offset));
    if due.covers.len() > 1 {
        let missed: Vec<String> = due
            .covers
            .iter()
            .filter(|d| **d != due.offset)
            .map(|d| d.to_string())
            .collect();
        body.push_str(&format!(
            "; it includes the {}-day reminder{} missed while Muster was not running",
            missed.join("-, "),
            if missed.len() == 1 { "" } else { "s" }
        ));
    }
    body.push_str(".\n");
    (subject, body)
}

/// The page inside the last offset while the renewal is not verified everywhere:
/// its title, summary, and the targets still on the old item.
pub fn expiry_page(
    renewable: &Renewable,
    renewal: Option<&Renewal>,
    now: Timestamp,
) -> (String, String, Vec<String>) {
    let title = format!(
        "{} {}, not verified live",
        renewable.name,
        when(renewable.expires_at, now)
    );
    let targets: Vec<String> = match renewal {
        Some(r) => renewable.in_order(r.unverified()),
        None => renewable.targets.iter().map(|t| t.key.clone()).collect(),
    };
    let status = renewal.map_or("due, not ordered".to_string(), |r| r.wording(now));
    let mut summary = format!(
        "Renewal of {} ({}): {status}.",
        renewable.name, renewable.id
    );
    if targets != [super::IMPLICIT_TARGET] {
        summary.push_str(&format!("\nStill on the old item: {}.", targets.join(", ")));
    }
    (title, summary, targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const LICENCE: [i64; 7] = [90, 60, 30, 14, 7, 3, 1];
    const EXPIRY: &str = "2027-02-01T00:00:00Z";

    #[test]
    fn each_offset_fires_once() {
        let expiry = at(EXPIRY);
        assert_eq!(due(expiry, &LICENCE, &[], at("2026-11-02T00:00:00Z")), None);
        let first = due(expiry, &LICENCE, &[], at("2026-11-03T00:00:00Z")).unwrap();
        assert_eq!(
            first,
            Due {
                offset: 90,
                covers: vec![90],
                last: false
            }
        );
        assert_eq!(
            due(expiry, &LICENCE, &[90], at("2026-11-20T00:00:00Z")),
            None
        );
        let second = due(expiry, &LICENCE, &[90], at("2026-12-03T00:00:00Z")).unwrap();
        assert_eq!(second.offset, 60);
    }

    #[test]
    fn missed_reminders_are_caught_up_as_one_message() {
        // Down from November until 10 days before expiry: 90, 60, 30 and 14 missed.
        let late = due(at(EXPIRY), &LICENCE, &[], at("2027-01-22T00:00:00Z")).unwrap();
        assert_eq!(late.offset, 14);
        assert_eq!(late.covers, [90, 60, 30, 14]);
        assert!(!late.last);
    }

    #[test]
    fn the_message_says_what_when_where_and_what_was_caught_up() {
        let catalog = crate::catalog::seed_world();
        let licence = &Renewable::of_catalog(&catalog)[0];
        let now = at("2027-01-22T00:00:00Z");
        let late = due(licence.expires_at, &licence.reminders, &[], now).unwrap();
        let (subject, body) = message(licence, &late, None, now);
        assert_eq!(
            subject,
            "Renewal due: FormPrint server licence key expires in 10 days (2027-02-01)"
        );
        assert!(
            body.contains(
                "Applied by team service-desk; bought by team procurement from FormPrint Ltd."
            ),
            "{body}"
        );
        assert!(
            body.contains("It must be applied on 11 targets: org-01, "),
            "{body}"
        );
        assert!(
            body.contains(
                "This is the 14-day reminder; it includes the 90-, 60-, 30-day reminders missed"
            ),
            "{body}"
        );
        assert_eq!(
            when(licence.expires_at, at("2027-02-04T00:00:00Z")),
            "expired 3 days ago (2027-02-01)"
        );
        assert_eq!(
            when(licence.expires_at, at("2027-01-31T12:00:00Z")),
            "expires within a day (2027-02-01)"
        );
    }

    #[test]
    fn inside_the_last_offset_it_escalates() {
        let last = due(
            at(EXPIRY),
            &LICENCE,
            &[90, 60, 30, 14, 7, 3],
            at("2027-01-31T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            last,
            Due {
                offset: 1,
                covers: vec![1],
                last: true
            }
        );
        let catalog = crate::catalog::seed_world();
        let licence = &Renewable::of_catalog(&catalog)[0];
        let (title, summary, targets) = expiry_page(licence, None, at("2027-01-31T00:00:00Z"));
        assert_eq!(
            title,
            "FormPrint server licence key expires in 1 day (2027-02-01), not verified live"
        );
        assert!(summary.contains(": due, not ordered."), "{summary}");
        assert_eq!(targets.len(), 11);
        // Expired and everything sent: nothing more.
        assert_eq!(
            due(at(EXPIRY), &LICENCE, &LICENCE, at("2027-02-05T00:00:00Z")),
            None
        );
    }
}
