//! Which reminder is due. Each offset fires once per expiry, decided by state — the
//! offsets already sent for this expiry — rather than by "days left equals N", so
//! reminders missed while Muster was down are caught up as one message (the most
//! urgent of them), never as a burst, and a moved expiry starts afresh.

use super::days;
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
        // Expired and everything sent: nothing more.
        assert_eq!(
            due(at(EXPIRY), &LICENCE, &LICENCE, at("2027-02-05T00:00:00Z")),
            None
        );
    }
}
