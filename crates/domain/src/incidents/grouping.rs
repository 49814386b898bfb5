//! Where a firing alert goes: Alertmanager-style groups per service, one open incident
//! per group, silenced alerts held until their silences end, and alerts of an incident
//! resolved by hand held for `refire_after` before they may open a new one.

use crate::signals::LabelSet;
use crate::signals::silences::Silence;
use jiff::Timestamp;

/// What happens to a firing alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// It is in an open incident already.
    Stay,
    /// Silenced: joined to nothing, looked at again when the last silence muting it
    /// ends (`until`).
    Hold { until: Timestamp },
    /// Joins its group's open incident.
    Join(i64),
    /// Opens a new incident for its group.
    Open,
}

/// Places a firing alert: `in_open_incident` whether it is in one already; `muted_until`
/// the end of the latest silence muting it now; `open_in_group` its group's open incident.
pub fn place(
    in_open_incident: bool,
    muted_until: Option<Timestamp>,
    open_in_group: Option<i64>,
) -> Placement {
    match (in_open_incident, muted_until, open_in_group) {
        (true, ..) => Placement::Stay,
        (false, Some(until), _) => Placement::Hold { until },
        (false, None, Some(incident)) => Placement::Join(incident),
        (false, None, None) => Placement::Open,
    }
}

/// When the latest silence muting an alert ends, if any mutes it at `now`.
pub fn muted_until(
    silences: &[Silence],
    service: &str,
    labels: &LabelSet,
    now: Timestamp,
) -> Option<Timestamp> {
    silences
        .iter()
        .filter(|s| s.mutes(service, labels, now))
        .map(|s| s.ends_at)
        .max()
}

/// Longest incident title kept.
pub const MAX_TITLE: usize = 200;

/// A title from an alert: its `summary` annotation, else its `alertname` on the
/// service, else "Alert on <service>".
pub fn alert_title(labels: &LabelSet, annotations: &LabelSet, service: &str) -> String {
    let title = match (annotations.get("summary"), labels.get("alertname")) {
        (Some(summary), _) if !summary.trim().is_empty() => summary.trim().to_string(),
        (_, Some(name)) => format!("{name} on {service}"),
        _ => format!("Alert on {service}"),
    };
    truncate(&title, MAX_TITLE)
}

/// `text` cut to at most `max` characters (on a character boundary) with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::matchers::Matcher;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn placement_prefers_staying_then_silence_then_the_open_incident() {
        let until = at("2026-11-24T12:00:00Z");
        assert_eq!(place(true, Some(until), None), Placement::Stay);
        assert_eq!(
            place(false, Some(until), Some(7)),
            Placement::Hold { until }
        );
        assert_eq!(place(false, None, Some(7)), Placement::Join(7));
        assert_eq!(place(false, None, None), Placement::Open);
    }

    #[test]
    fn an_alert_is_held_until_the_latest_silence_muting_it_ends() {
        let labels: LabelSet = [("alertname".to_string(), "Down".to_string())].into();
        let silence = |id: &str, ends: &str, value: &str| Silence {
            id: id.into(),
            service: None,
            matchers: vec![Matcher::parse(&format!("alertname={value}")).unwrap()],
            starts_at: at("2026-11-24T09:00:00Z"),
            ends_at: at(ends),
            created_by: "t".into(),
            comment: "c".into(),
            updated_at: at("2026-11-24T09:00:00Z"),
        };
        let silences = [
            silence("a", "2026-11-24T11:00:00Z", "Down"),
            silence("b", "2026-11-24T12:00:00Z", "Down"),
            silence("c", "2026-11-24T13:00:00Z", "Other"),
        ];
        let now = at("2026-11-24T10:00:00Z");
        assert_eq!(
            muted_until(&silences, "svc", &labels, now),
            Some(at("2026-11-24T12:00:00Z"))
        );
        assert_eq!(
            muted_until(&silences, "svc", &labels, at("2026-11-24T12:30:00Z")),
            None
        );
    }

    #[test]
    fn titles_come_from_the_summary_or_the_alert_name() {
        let service = "Forms printing";
        let labels: LabelSet = [("alertname".to_string(), "PrintQueueStuck".to_string())].into();
        let mut annotations = LabelSet::new();
        assert_eq!(
            alert_title(&labels, &annotations, service),
            "PrintQueueStuck on Forms printing"
        );
        annotations.insert("summary".into(), " Queue stuck ".into());
        assert_eq!(alert_title(&labels, &annotations, service), "Queue stuck");
        assert_eq!(
            alert_title(&LabelSet::new(), &LabelSet::new(), service),
            "Alert on Forms printing"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
