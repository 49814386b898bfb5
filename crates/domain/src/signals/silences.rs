//! Silences: Alertmanager's lifecycle (pending → active → expired), validation and the
//! rules for updating one in place or replacing it.

use super::LabelSet;
use super::matchers::{Matcher, all_match};
use jiff::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: String,
    /// The service whose alerts it mutes, for silences made with a service's key;
    /// `None` mutes matching alerts of every service.
    pub service: Option<String>,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Active,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Expired => "expired",
        }
    }
}

impl Silence {
    /// Expired from its end on (Alertmanager: strictly after it; the same but for
    /// an instant, and an expired silence then reads as expired at once, even on a
    /// clock that does not move).
    pub fn state(&self, now: Timestamp) -> State {
        if now < self.starts_at {
            State::Pending
        } else if now >= self.ends_at {
            State::Expired
        } else {
            State::Active
        }
    }

    /// Whether this silence mutes an alert of `service` with `labels` at `now`.
    pub fn mutes(&self, service: &str, labels: &LabelSet, now: Timestamp) -> bool {
        self.state(now) == State::Active
            && self.service.as_deref().is_none_or(|s| s == service)
            && all_match(&self.matchers, labels)
    }
}

/// A silence as posted: Alertmanager's checks, in its order and with its words.
pub fn validate(s: &Silence, now: Timestamp) -> Result<(), String> {
    if s.starts_at >= s.ends_at {
        return Err("Failed to create silence: start time must be before end time".into());
    }
    if s.ends_at < now {
        return Err("Failed to create silence: end time can't be in the past".into());
    }
    if s.matchers.is_empty() {
        return Err("silence invalid: at least one matcher required".into());
    }
    for (i, m) in s.matchers.iter().enumerate() {
        if !super::labels::valid_name(&m.name) {
            return Err(format!(
                "silence invalid: invalid label matcher {i}: invalid label name \"{}\"",
                m.name
            ));
        }
    }
    if s.matchers.iter().all(Matcher::matches_empty) {
        return Err("silence invalid: at least one matcher must not match the empty string".into());
    }
    Ok(())
}

/// What posting a silence with the id of `stored` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Same matchers and an allowed change of times: the silence keeps its id.
    InPlace,
    /// Anything else: a new silence replaces it, and the old one is expired first
    /// unless it already is.
    Replace { expire_old: bool },
}

/// Alertmanager's `canUpdate`: an active silence keeps its start and may not end in
/// the past; a pending one may not start in the past; an expired one never changes.
pub fn update(stored: &Silence, posted: &Silence, now: Timestamp) -> Update {
    let state = stored.state(now);
    let allowed = stored.matchers == posted.matchers
        && match state {
            State::Active => posted.starts_at == stored.starts_at && posted.ends_at >= now,
            State::Pending => posted.starts_at >= now,
            State::Expired => false,
        };
    if allowed {
        Update::InPlace
    } else {
        Update::Replace {
            expire_old: state != State::Expired,
        }
    }
}

/// Alertmanager's `expire`: an active silence ends now, a pending one starts and ends
/// now; an expired one cannot be expired again.
pub fn expired(s: &Silence, now: Timestamp) -> Result<Silence, String> {
    let mut out = s.clone();
    match s.state(now) {
        State::Expired => return Err(format!("silence {} already expired", s.id)),
        State::Active => out.ends_at = now,
        State::Pending => {
            out.starts_at = now;
            out.ends_at = now;
        }
    }
    out.updated_at = now;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::ToSpan;

    fn at(minute: i64) -> Timestamp {
        "2026-11-23T10:00:00Z".parse::<Timestamp>().unwrap() + minute.minutes()
    }

    fn silence(matchers: &str, from: i64, to: i64) -> Silence {
        Silence {
            id: "s1".into(),
            service: None,
            matchers: Matcher::parse_list(matchers).unwrap(),
            starts_at: at(from),
            ends_at: at(to),
            created_by: "ana".into(),
            comment: "maintenance".into(),
            updated_at: at(0),
        }
    }

    #[test]
    fn lifecycle_follows_the_clock() {
        let s = silence("alertname=x", 10, 20);
        assert_eq!(s.state(at(0)), State::Pending);
        assert_eq!(s.state(at(10)), State::Active);
        assert_eq!(s.state(at(19)), State::Active);
        assert_eq!(s.state(at(20)), State::Expired);
    }

    #[test]
    fn validation_uses_alertmanagers_words() {
        let now = at(0);
        assert!(validate(&silence("alertname=x", 0, 10), now).is_ok());
        let cases = [
            (
                silence("alertname=x", 10, 10),
                "start time must be before end time",
            ),
            (
                silence("alertname=x", -20, -10),
                "end time can't be in the past",
            ),
            (
                silence("alertname=~\".*\"", 0, 10),
                "must not match the empty string",
            ),
            (silence("", 0, 10), "at least one matcher required"),
        ];
        for (s, expected) in cases {
            let err = validate(&s, now).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn updates_keep_the_id_only_when_alertmanager_would() {
        let now = at(5);
        let active = silence("alertname=x", 0, 10);
        assert_eq!(
            update(&active, &silence("alertname=x", 0, 30), now),
            Update::InPlace
        );
        assert_eq!(
            update(&active, &silence("alertname=x", 1, 30), now),
            Update::Replace { expire_old: true }
        );
        assert_eq!(
            update(&active, &silence("alertname=y", 0, 30), now),
            Update::Replace { expire_old: true }
        );
        let pending = silence("alertname=x", 10, 20);
        assert_eq!(
            update(&pending, &silence("alertname=x", 6, 20), now),
            Update::InPlace
        );
        assert_eq!(
            update(
                &silence("alertname=x", -10, -5),
                &silence("alertname=x", 0, 20),
                now
            ),
            Update::Replace { expire_old: false }
        );
    }

    #[test]
    fn expiring_ends_active_and_pending_silences_now() {
        let now = at(5);
        assert_eq!(expired(&silence("a=b", 0, 10), now).unwrap().ends_at, now);
        let pending = expired(&silence("a=b", 10, 20), now).unwrap();
        assert_eq!((pending.starts_at, pending.ends_at), (now, now));
        assert!(expired(&silence("a=b", -10, -5), now).is_err());
    }

    #[test]
    fn service_scoped_silences_mute_only_their_service() {
        let mut s = silence("alertname=x", 0, 10);
        s.service = Some("billing".into());
        let labels = LabelSet::from([("alertname".into(), "x".into())]);
        assert!(s.mutes("billing", &labels, at(1)));
        assert!(!s.mutes("checkout", &labels, at(1)));
        assert!(!s.mutes("billing", &labels, at(11)));
    }
}
