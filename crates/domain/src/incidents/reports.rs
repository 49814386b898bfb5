//! Customer and helpdesk reports: what a report must say, which open incident a report
//! without a service resembles, and the flood rule that opens an incident from reports
//! alone.

use super::rules::Flood;
use crate::problem::FieldErrors;
use jiff::Timestamp;
use serde::Deserialize;
use std::collections::HashSet;

/// How a report reached the helpdesk.
pub const CHANNELS: [&str; 6] = ["phone", "email", "portal", "social", "chat", "other"];
const MAX_SUMMARY: usize = 500;
const MAX_DETAILS: usize = 20_000;
const MAX_NAME: usize = 200;

/// A report as posted to `POST /api/v1/reports`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    pub organisation: String,
    #[serde(default)]
    pub service: Option<String>,
    pub summary: String,
    #[serde(default)]
    pub details: String,
    #[serde(default)]
    pub reporter: String,
    #[serde(default = "default_channel", deserialize_with = "channel_or_default")]
    pub channel: String,
}

fn default_channel() -> String {
    "other".into()
}

/// `null` reads as an absent channel does.
fn channel_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_else(default_channel))
}

impl NewReport {
    /// Checks lengths and the channel, naming each field at fault. Whether the
    /// organisation and service exist is the catalog's to say.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut bounded = |field: &str, text: &str, max: usize, required: bool| {
            if required && text.trim().is_empty() {
                errors.push(field, "is required");
            } else if text.chars().count() > max {
                errors.push(field, format!("must be at most {max} characters"));
            } else if text.contains('\0') {
                errors.push(field, "must not contain NUL characters");
            }
        };
        bounded("organisation", &self.organisation, MAX_NAME, true);
        bounded("summary", &self.summary, MAX_SUMMARY, true);
        bounded("details", &self.details, MAX_DETAILS, false);
        bounded("reporter", &self.reporter, MAX_NAME, false);
        if let Some(service) = &self.service {
            bounded("service", service, MAX_NAME, true);
        }
        if !CHANNELS.contains(&self.channel.as_str()) {
            errors.push(
                "channel",
                format!(
                    "{:?} is not a channel: use {}",
                    self.channel,
                    CHANNELS.join(", ")
                ),
            );
        }
        errors.into_result(())
    }
}

/// Words reduced to a crude stem (lowercase, at most five letters), so "printing",
/// "prints" and "print" meet; short and common words are left out.
pub fn stems(text: &str) -> HashSet<String> {
    const COMMON: [&str; 14] = [
        "the", "and", "for", "not", "our", "you", "are", "was", "with", "this", "that", "from",
        "have", "cannot",
    ];
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 3 && !COMMON.contains(&w.as_str()))
        .map(|w| w.chars().take(5).collect())
        .collect()
}

/// An open incident a report might belong to.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub incident: i64,
    /// Its title, summary and the summaries of reports already in it.
    pub text: String,
    pub services: Vec<String>,
}

/// How alike a report must be to an incident to join it by itself.
pub const MATCH_THRESHOLD: f64 = 0.3;
/// What using one of the incident's services adds to the likeness.
const USES_SERVICE_BONUS: f64 = 0.2;

/// The open incident a report without a service resembles most: the share of the
/// report's words the incident also uses, plus a bonus when the reporting organisation
/// uses one of its services; `None` below [`MATCH_THRESHOLD`] or with no word in
/// common (the report waits in triage for a person).
pub fn resemble(report: &str, org_uses: &[String], candidates: &[Candidate]) -> Option<i64> {
    let words = stems(report);
    if words.is_empty() {
        return None;
    }
    candidates
        .iter()
        .filter_map(|c| {
            let shared = words.intersection(&stems(&c.text)).count();
            if shared == 0 {
                return None;
            }
            let mut score = shared as f64 / words.len() as f64;
            if c.services.iter().any(|s| org_uses.contains(s)) {
                score += USES_SERVICE_BONUS;
            }
            (score >= MATCH_THRESHOLD).then_some((score, c.incident))
        })
        // Ties go to the newest incident (the highest id).
        .max_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(_, incident)| incident)
}

/// Whether the reports about one service not yet in an incident (`(organisation, at)`)
/// reach the flood rule at `now`; when they do, the ones that counted (inside the
/// window), by index.
pub fn flood(rule: &Flood, reports: &[(String, Timestamp)], now: Timestamp) -> Option<Vec<usize>> {
    let since = now - rule.window;
    let counted: Vec<usize> = (0..reports.len())
        .filter(|&i| reports[i].1 > since && reports[i].1 <= now)
        .collect();
    let organisations: HashSet<&str> = counted.iter().map(|&i| reports[i].0.as_str()).collect();
    (counted.len() >= rule.reports as usize && organisations.len() >= rule.organisations as usize)
        .then_some(counted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::rules::DEFAULT_FLOOD;
    use jiff::SignedDuration;

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minute * 60).unwrap()
    }

    #[test]
    fn the_flood_rule_needs_enough_reports_and_organisations_inside_the_window() {
        let reports = |list: &[(&str, i64)]| -> Vec<(String, Timestamp)> {
            list.iter().map(|(o, m)| (o.to_string(), at(*m))).collect()
        };
        // Five reports but only two organisations: not yet.
        let two_orgs = reports(&[("a", 0), ("b", 1), ("a", 2), ("b", 3), ("a", 4)]);
        assert_eq!(flood(&DEFAULT_FLOOD, &two_orgs, at(5)), None);
        // A third organisation's report makes it.
        let mut three = two_orgs.clone();
        three.push(("c".into(), at(6)));
        assert_eq!(
            flood(&DEFAULT_FLOOD, &three, at(6)),
            Some(vec![0, 1, 2, 3, 4, 5])
        );
        // Reports older than the window do not count.
        assert_eq!(
            flood(
                &DEFAULT_FLOOD,
                &three,
                at(6) + SignedDuration::from_mins(13)
            ),
            None
        );
    }

    #[test]
    fn a_report_joins_the_incident_it_resembles_or_none() {
        let candidates = vec![
            Candidate {
                incident: 1,
                text: "Helpdesk portal login fails after launch".into(),
                services: vec!["helpdesk-portal".into()],
            },
            Candidate {
                incident: 2,
                text: "Forms printing fails: cannot print invoices".into(),
                services: vec!["forms-printing".into()],
            },
        ];
        let uses = vec!["forms-printing".to_string()];
        assert_eq!(
            resemble(
                "We cannot print any forms since this morning",
                &uses,
                &candidates
            ),
            Some(2)
        );
        assert_eq!(
            resemble("Login to the portal fails", &[], &candidates),
            Some(1)
        );
        assert_eq!(
            resemble("The coffee machine is empty", &uses, &candidates),
            None
        );
        assert_eq!(resemble("", &uses, &candidates), None);
    }

    #[test]
    fn bad_reports_name_their_fields() {
        let report = NewReport {
            organisation: " ".into(),
            service: Some(String::new()),
            summary: "x".repeat(501),
            details: String::new(),
            reporter: "r".into(),
            channel: "pigeon".into(),
        };
        let fields: Vec<String> = report
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(fields, ["organisation", "summary", "service", "channel"]);
    }

    #[test]
    fn an_absent_or_null_channel_is_other() {
        for body in [
            r#"{"organisation": "org-01", "summary": "Down"}"#,
            r#"{"organisation": "org-01", "summary": "Down", "channel": null}"#,
        ] {
            let report: NewReport = serde_json::from_str(body).unwrap();
            assert_eq!(report.channel, "other", "{body}");
        }
        let report: NewReport =
            serde_json::from_str(r#"{"organisation": "o", "summary": "s", "channel": "phone"}"#)
                .unwrap();
        assert_eq!(report.channel, "phone");
    }
}
