//! A service's incident rules: how its alerts are grouped, whether its incidents
//! resolve by themselves, when alerts still firing after a resolution by hand open a
//! new incident, and how many reports open one without an alert (the flood rule).

use crate::catalog::{IncidentSettings, Service};
use crate::clock::parse_duration;
use jiff::SignedDuration;

/// The flood rule: at least `reports` reports from at least `organisations` distinct
/// organisations about one service within `window` open an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flood {
    pub reports: u32,
    pub organisations: u32,
    pub window: SignedDuration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub group_by: Vec<String>,
    pub auto_resolve: bool,
    pub refire_after: SignedDuration,
    pub flood: Flood,
}

/// Like Alertmanager's `repeat_interval`.
pub const DEFAULT_REFIRE_AFTER: SignedDuration = SignedDuration::from_hours(4);
pub const DEFAULT_FLOOD: Flood = Flood {
    reports: 5,
    organisations: 3,
    window: SignedDuration::from_mins(15),
};
/// The longest flood window and refire wait a catalog may set.
const MAX_WAIT: SignedDuration = SignedDuration::from_hours(7 * 24);

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            group_by: Vec::new(),
            auto_resolve: true,
            refire_after: DEFAULT_REFIRE_AFTER,
            flood: DEFAULT_FLOOD,
        }
    }
}

fn wait(field: &str, text: &str) -> Result<SignedDuration, (String, String)> {
    match parse_duration(text) {
        Ok(d) if d.is_positive() && d <= MAX_WAIT => Ok(d),
        Ok(_) => Err((
            field.into(),
            format!("{text:?} is out of range: use 1s up to 7d"),
        )),
        Err(e) => Err((field.into(), e)),
    }
}

/// `opened_by` of an incident an alert opened (`flood` for a report flood; otherwise
/// the person who declared it).
pub const OPENED_BY_ALERT: &str = "alert";

impl Rules {
    /// Whether an incident resolves by itself once every alert in it has resolved: when
    /// its service's rules allow it and an alert opened it. An incident a person
    /// declared or a report flood opened is closed by people, whatever alerts joined it.
    pub fn resolves_itself(&self, opened_by: &str) -> bool {
        self.auto_resolve && opened_by == OPENED_BY_ALERT
    }

    /// Reads settings as written in the catalog; each problem names its field
    /// (relative to `incidents`).
    pub fn from_settings(settings: &IncidentSettings) -> Result<Rules, Vec<(String, String)>> {
        let mut rules = Rules::default();
        let mut errors = Vec::new();
        for (i, label) in settings.group_by.iter().enumerate() {
            if label.is_empty() || settings.group_by[..i].contains(label) {
                errors.push((
                    format!("group_by[{i}]"),
                    format!("{label:?} must be a label name, listed once"),
                ));
            }
        }
        rules.group_by = settings.group_by.clone();
        rules.auto_resolve = settings.auto_resolve.unwrap_or(true);
        if let Some(text) = &settings.refire_after {
            match wait("refire_after", text) {
                Ok(d) => rules.refire_after = d,
                Err(e) => errors.push(e),
            }
        }
        if let Some(flood) = &settings.flood {
            if let Some(n) = flood.reports {
                rules.flood.reports = n;
            }
            if let Some(m) = flood.organisations {
                rules.flood.organisations = m;
            }
            if rules.flood.reports == 0 || rules.flood.organisations == 0 {
                errors.push((
                    "flood".into(),
                    "reports and organisations must be at least 1".into(),
                ));
            } else if rules.flood.organisations > rules.flood.reports {
                errors.push((
                    "flood.organisations".into(),
                    "cannot exceed flood.reports: each organisation counts with a report".into(),
                ));
            }
            if let Some(text) = &flood.window {
                match wait("flood.window", text) {
                    Ok(d) => rules.flood.window = d,
                    Err(e) => errors.push(e),
                }
            }
        }
        if errors.is_empty() {
            Ok(rules)
        } else {
            Err(errors)
        }
    }

    /// The rules of `service`: its own, or the defaults. Stored catalogs were validated
    /// with [`Rules::from_settings`], so a stored problem falls back to the defaults.
    pub fn of(service: &Service) -> Rules {
        service
            .incidents
            .as_ref()
            .and_then(|s| Rules::from_settings(s).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::FloodSettings;

    #[test]
    fn absent_settings_are_the_defaults_and_given_ones_override_them() {
        assert_eq!(
            Rules::from_settings(&IncidentSettings::default()),
            Ok(Rules::default())
        );
        let rules = Rules::from_settings(&IncidentSettings {
            group_by: vec!["alertname".into()],
            auto_resolve: Some(false),
            refire_after: Some("30m".into()),
            flood: Some(FloodSettings {
                reports: Some(3),
                organisations: None,
                window: Some("1h".into()),
            }),
        })
        .unwrap();
        assert_eq!(rules.group_by, ["alertname"]);
        assert!(!rules.auto_resolve);
        assert_eq!(rules.refire_after, SignedDuration::from_mins(30));
        assert_eq!(
            rules.flood,
            Flood {
                reports: 3,
                organisations: 3,
                window: SignedDuration::from_hours(1)
            }
        );
    }

    #[test]
    fn bad_settings_name_their_field() {
        let errors = Rules::from_settings(&IncidentSettings {
            group_by: vec!["team".into(), "team".into()],
            auto_resolve: None,
            refire_after: Some("soon".into()),
            flood: Some(FloodSettings {
                reports: Some(2),
                organisations: Some(4),
                window: Some("30d".into()),
            }),
        })
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "group_by[1]",
                "refire_after",
                "flood.organisations",
                "flood.window"
            ]
        );
    }

    #[test]
    fn only_incidents_opened_by_an_alert_resolve_themselves() {
        let rules = Rules::default();
        assert!(rules.resolves_itself(OPENED_BY_ALERT));
        assert!(!rules.resolves_itself("flood"));
        assert!(!rules.resolves_itself("dana"));
        let by_hand = Rules {
            auto_resolve: false,
            ..Rules::default()
        };
        assert!(!by_hand.resolves_itself(OPENED_BY_ALERT));
    }
}
