//! Webhook payloads from an Alertmanager (version "4") or Grafana (version "1") kept in
//! front of Muster: each alert in a notification updates the alert store as a direct
//! post would.

use super::postable::validate;
use super::{Alert, LabelSet};
use crate::FieldErrors;
use jiff::Timestamp;
use serde_json::Value;

/// Which sender's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Alertmanager,
    Grafana,
}

/// The valid alerts of a notification, and problems naming the invalid ones.
#[derive(Debug, Default)]
pub struct Parsed {
    pub alerts: Vec<Alert>,
    pub errors: FieldErrors,
}

fn string_map(
    value: Option<&Value>,
    path: &str,
    flavour: Flavour,
    errors: &mut FieldErrors,
) -> LabelSet {
    let Some(Value::Object(map)) = value else {
        if value.is_some_and(|v| !v.is_null()) {
            errors.push(path, "must be an object of strings");
        }
        return LabelSet::new();
    };
    let mut out = LabelSet::new();
    for (name, value) in map {
        // Grafana's internal labels (`__alert_rule_uid__` and the like).
        if flavour == Flavour::Grafana && name.starts_with("__") && name.ends_with("__") {
            continue;
        }
        match value {
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => _ = out.insert(name.clone(), s.clone()),
            _ => errors.push(format!("{path}.{name}"), "must be a string"),
        }
    }
    out
}

/// An instant field: absent, null, empty or Go's zero time mean "not set"; anything
/// else must be an RFC 3339 instant.
fn instant(value: Option<&Value>, path: String, errors: &mut FieldErrors) -> Option<Timestamp> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.is_empty() => None,
        Some(Value::String(t)) => match t.parse::<Timestamp>() {
            Ok(t) => (t.as_second() > -62135596800).then_some(t),
            Err(_) => {
                errors.push(path, format!("{t:?} is not an RFC 3339 instant"));
                None
            }
        },
        Some(_) => {
            errors.push(path, "must be an RFC 3339 instant as a string");
            None
        }
    }
}

/// Where a validation message belongs.
fn field_of(message: &str) -> &'static str {
    if message.starts_with("start time") {
        "endsAt"
    } else if message.starts_with("invalid annotations") {
        "annotations"
    } else {
        "labels"
    }
}

/// Parses a notification. Firing alerts stay open until a resolved notification
/// (Alertmanager's `send_resolved`, on by default) ends them.
pub fn parse(body: &[u8], flavour: Flavour, now: Timestamp) -> Result<Parsed, FieldErrors> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        FieldErrors::from(crate::FieldError::new(
            "",
            format!("the body is not JSON: {e}"),
        ))
    })?;
    let Some(items) = value.get("alerts").and_then(Value::as_array) else {
        return Err(crate::FieldError::new("alerts", "is required: an array of alerts").into());
    };
    let mut parsed = Parsed::default();
    for (i, item) in items.iter().enumerate() {
        let path = format!("alerts[{i}]");
        let mut errors = FieldErrors::default();
        let labels = string_map(
            item.get("labels"),
            &format!("{path}.labels"),
            flavour,
            &mut errors,
        );
        let mut annotations = string_map(
            item.get("annotations"),
            &format!("{path}.annotations"),
            flavour,
            &mut errors,
        );
        if flavour == Flavour::Grafana {
            for (field, name) in [("dashboardURL", "dashboard_url"), ("panelURL", "panel_url")] {
                if let Some(url) = item
                    .get(field)
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty())
                {
                    annotations.insert(name.into(), url.into());
                }
            }
        }
        let resolved = match item.get("status").and_then(Value::as_str) {
            Some("firing") => false,
            Some("resolved") => true,
            _ => {
                errors.push(
                    format!("{path}.status"),
                    "must be \"firing\" or \"resolved\"",
                );
                false
            }
        };
        let starts_at = instant(
            item.get("startsAt"),
            format!("{path}.startsAt"),
            &mut errors,
        )
        .unwrap_or(now);
        let ended = instant(item.get("endsAt"), format!("{path}.endsAt"), &mut errors);
        let ends_at = resolved.then(|| ended.unwrap_or(now).max(starts_at));
        let generator_url = match item.get("generatorURL") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(url)) if !url.chars().any(char::is_control) => url.clone(),
            Some(_) => {
                errors.push(
                    format!("{path}.generatorURL"),
                    "must be a URL (a string without control characters)",
                );
                String::new()
            }
        };
        let alert = Alert {
            labels,
            annotations,
            starts_at,
            ends_at,
            timeout: false,
            updated_at: now,
            generator_url,
        };
        if let Err(e) = validate(&alert) {
            errors.push(format!("{path}.{}", field_of(&e)), e);
        }
        if errors.is_empty() {
            parsed.alerts.push(alert);
        } else {
            parsed.errors.0.extend(errors.0);
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn firing_alerts_stay_open_and_resolved_ones_end() {
        let body = br#"{"version":"4","status":"firing","alerts":[
            {"status":"firing","labels":{"alertname":"HighCPU","instance":"a"},"annotations":{"summary":"hot"},
             "startsAt":"2026-11-23T09:50:00.123456789Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"x"},
            {"status":"resolved","labels":{"alertname":"HighCPU","instance":"b"},"annotations":{},
             "startsAt":"2026-11-23T09:00:00Z","endsAt":"2026-11-23T09:30:00Z"}]}"#;
        let parsed = parse(body, Flavour::Alertmanager, now()).unwrap();
        assert!(parsed.errors.is_empty());
        assert_eq!(parsed.alerts[0].ends_at, None);
        assert_eq!(parsed.alerts[0].annotations["summary"], "hot");
        assert_eq!(
            parsed.alerts[1].ends_at,
            Some("2026-11-23T09:30:00Z".parse().unwrap())
        );
    }

    #[test]
    fn grafana_internal_labels_are_dropped_and_links_kept() {
        let body = br#"{"version":"1","state":"alerting","alerts":[{"status":"firing",
            "labels":{"alertname":"Latency","__alert_rule_uid__":"u1","grafana_folder":"svc"},
            "annotations":{"__orgId__":"1","summary":"slow"},"dashboardURL":"https://g/d/1","values":{"B":1.5}}]}"#;
        let alert = &parse(body, Flavour::Grafana, now()).unwrap().alerts[0];
        assert!(!alert.labels.contains_key("__alert_rule_uid__"));
        assert!(!alert.annotations.contains_key("__orgId__"));
        assert_eq!(alert.annotations["dashboard_url"], "https://g/d/1");
    }

    #[test]
    fn invalid_alerts_are_named_and_the_rest_kept() {
        let body = br#"{"alerts":[{"status":"firing","labels":{}},{"status":"odd","labels":{"a":"b"}},{"status":"firing","labels":{"a":"b"}},
            {"status":"firing","labels":{"a":"b"},"annotations":{"bad-name":"x"}},{"status":"firing","labels":{"a":"b"},"startsAt":"soon"}]}"#;
        let parsed = parse(body, Flavour::Alertmanager, now()).unwrap();
        assert_eq!(parsed.alerts.len(), 1);
        let paths: Vec<&str> = parsed.errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "alerts[0].labels",
                "alerts[1].status",
                "alerts[3].annotations",
                "alerts[4].startsAt"
            ]
        );
        assert!(parse(b"{}", Flavour::Grafana, now()).is_err());
    }
}
