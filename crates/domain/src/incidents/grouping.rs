//! Where a firing alert goes: Alertmanager-style groups per service, one open incident
//! per group, silenced alerts held until their silences end, and alerts of an incident
//! resolved by hand held for `refire_after` before they may open a new one; alerts
//! during maintenance (an in-progress change on their service) recorded against the
//! change instead of paging.

use crate::signals::LabelSet;
use crate::signals::silences::Silence;
use jiff::{SignedDuration, Timestamp};

/// What happens to a firing alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// It is in an open incident already.
    Stay,
    /// Silenced: joined to nothing, looked at again when the last silence muting it
    /// ends (`until`).
    Hold { until: Timestamp },
    /// During maintenance: recorded against `change`, paging nobody, looked at again
    /// at `until` (or as soon as the change ends).
    Maintenance { change: i64, until: Timestamp },
    /// Joins its group's open incident.
    Join(i64),
    /// Opens a new incident for its group.
    Open,
}

/// Places a firing alert: `in_open_incident` whether it is in one already; `muted_until`
/// the end of the latest silence muting it now; `maintenance` the change it fired
/// during (see [`maintenance`]); `open_in_group` its group's open incident.
pub fn place(
    in_open_incident: bool,
    muted_until: Option<Timestamp>,
    maintenance: Option<(i64, Timestamp)>,
    open_in_group: Option<i64>,
) -> Placement {
    match (in_open_incident, muted_until, maintenance, open_in_group) {
        (true, ..) => Placement::Stay,
        (false, Some(until), ..) => Placement::Hold { until },
        (false, None, Some((change, until)), _) => Placement::Maintenance { change, until },
        (false, None, None, Some(incident)) => Placement::Join(incident),
        (false, None, None, None) => Placement::Open,
    }
}

/// How soon an alert held for a change still in progress after its planned end is
/// looked at again (the change's end wakes it at once; this bounds a missed wake).
pub const OVERRUN_RECHECK: SignedDuration = SignedDuration::from_mins(5);

/// The change an alert on a service fires during, and when to look at it again:
/// `in_progress` holds (change, planned end) of each in-progress change that suppresses
/// alerts on the service. The change planned to end last wins; past its planned end
/// the alert is looked at again every [`OVERRUN_RECHECK`].
pub fn maintenance(in_progress: &[(i64, Timestamp)], now: Timestamp) -> Option<(i64, Timestamp)> {
    let (change, end) = in_progress
        .iter()
        .copied()
        .max_by_key(|(id, end)| (*end, *id))?;
    Some((change, end.max(now + OVERRUN_RECHECK)))
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
        (Some(summary), _) if !one_line(summary).is_empty() => one_line(summary),
        (_, Some(name)) => format!("{name} on {service}"),
        _ => format!("Alert on {service}"),
    };
    truncate(&title, MAX_TITLE)
}

/// `text` on one line: line breaks, tabs and other control characters become single
/// spaces, so a title cannot add lines to the pages and mails that carry it.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
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
    fn placement_prefers_staying_then_silence_then_maintenance_then_the_open_incident() {
        let until = at("2026-11-24T12:00:00Z");
        let change = Some((3, until));
        assert_eq!(place(true, Some(until), change, None), Placement::Stay);
        assert_eq!(
            place(false, Some(until), change, Some(7)),
            Placement::Hold { until }
        );
        assert_eq!(
            place(false, None, change, Some(7)),
            Placement::Maintenance { change: 3, until }
        );
        assert_eq!(place(false, None, None, Some(7)), Placement::Join(7));
        assert_eq!(place(false, None, None, None), Placement::Open);
    }

    #[test]
    fn maintenance_waits_for_the_change_planned_to_end_last_then_rechecks_an_overrun() {
        let now = at("2026-11-24T10:00:00Z");
        assert_eq!(maintenance(&[], now), None);
        let changes = [
            (1, at("2026-11-24T11:00:00Z")),
            (2, at("2026-11-24T13:00:00Z")),
        ];
        assert_eq!(
            maintenance(&changes, now),
            Some((2, at("2026-11-24T13:00:00Z")))
        );
        let overrun = [(4, at("2026-11-24T09:00:00Z"))];
        assert_eq!(
            maintenance(&overrun, now),
            Some((4, at("2026-11-24T10:05:00Z")))
        );
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

    #[test]
    fn alert_titles_are_one_line() {
        let annotations: LabelSet = [(
            "summary".to_string(),
            "Queue stuck\r\nAcknowledge: http://evil.test\t\u{7}now".to_string(),
        )]
        .into_iter()
        .collect();
        assert_eq!(
            alert_title(&LabelSet::default(), &annotations, "Forms"),
            "Queue stuck Acknowledge: http://evil.test now"
        );
        assert_eq!(one_line(" \n "), "");
    }
}
