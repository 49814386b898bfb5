//! The one source of time. Production reads the system clock; end-to-end tests move a
//! test clock so escalations, reminders and deadlines can be exercised in seconds.

use jiff::{SignedDuration, Timestamp};
use std::sync::{Arc, RwLock};

#[derive(Clone)]
pub enum Clock {
    System,
    /// A clock that only moves when told to.
    Test(Arc<RwLock<Timestamp>>),
}

impl Clock {
    pub fn test(start: Timestamp) -> Self {
        Clock::Test(Arc::new(RwLock::new(start)))
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Test(now) => *now.read().unwrap_or_else(|e| e.into_inner()),
        }
    }

    pub fn is_test(&self) -> bool {
        matches!(self, Clock::Test(_))
    }

    /// Moves a test clock; `None` on the system clock, which cannot be moved.
    pub fn set(&self, to: Timestamp) -> Option<Timestamp> {
        match self {
            Clock::System => None,
            Clock::Test(now) => {
                *now.write().unwrap_or_else(|e| e.into_inner()) = to;
                Some(to)
            }
        }
    }

    pub fn advance(&self, by: SignedDuration) -> Option<Timestamp> {
        let to = self.now().checked_add(by).ok()?;
        self.set(to)
    }
}

/// Parses a duration such as `15m`, `2h30m`, `1d`, `90s` or an ISO 8601 `PT15M`.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let text = text.trim();
    if let Ok(span) = text.parse::<jiff::Span>() {
        return span
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(|e| format!("{text:?} is not a duration: {e}"));
    }
    Err(format!(
        "{text:?} is not a duration (examples: 90s, 15m, 2h30m, 1d)"
    ))
}

/// Writes a duration the way `parse_duration` reads it: `30d`, `2h30m`, `90s` → `1m30s`.
pub fn format_duration(duration: SignedDuration) -> String {
    let mut left = duration.as_secs().unsigned_abs();
    let mut out = String::from(if duration.is_negative() { "-" } else { "" });
    for (unit, seconds) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= seconds {
            out.push_str(&format!("{}{unit}", left / seconds));
            left %= seconds;
        }
    }
    if out.is_empty() || out == "-" {
        out = "0s".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_moves_only_when_told() {
        let start: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let clock = Clock::test(start);
        assert_eq!(clock.now(), start);
        clock.advance(parse_duration("15m").unwrap());
        assert_eq!(clock.now().to_string(), "2026-11-23T10:15:00Z");
        assert!(Clock::System.set(start).is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("2h30m").unwrap().as_secs(), 9000);
        assert_eq!(parse_duration("1d").unwrap().as_secs(), 86400);
        assert_eq!(parse_duration("PT1H").unwrap().as_secs(), 3600);
        assert!(parse_duration("soon").is_err());
        for text in ["30d", "2h30m", "1d1s", "0s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
