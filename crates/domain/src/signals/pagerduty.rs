//! PagerDuty Events API v2: alert events (`/v2/enqueue`) and change events
//! (`/v2/change/enqueue`), validated as PagerDuty does, errors in its words.

use super::{Alert, LabelSet, fingerprint};
use jiff::Timestamp;
use serde_json::{Map, Value};

pub const MAX_BODY_BYTES: usize = 512 * 1024;
pub const KEY_LENGTH: usize = 32;
const MAX_DEDUP_KEY: usize = 255;
const MAX_SUMMARY: usize = 1024;
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

/// A valid alert event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub routing_key: String,
    pub action: Action,
    /// Absent only on a trigger, which then gets a generated one.
    pub dedup_key: Option<String>,
    /// The alert a trigger raises (labels from the payload, summary and details as
    /// annotations); `None` for acknowledge and resolve.
    pub alert: Option<Alert>,
}

/// A valid change event, kept for the changes domain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub routing_key: String,
    pub summary: String,
    pub source: Option<String>,
    pub timestamp: Timestamp,
    pub custom_details: Option<Value>,
    pub links: Vec<Value>,
}

/// Why an event was refused: PagerDuty's `status` and `message`, and its `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: &'static str,
    pub message: &'static str,
    pub errors: Vec<String>,
}

impl Refusal {
    fn unrecognized() -> Refusal {
        Refusal {
            status: "Unrecognized object",
            message: "Event object format is unrecognized",
            errors: vec!["JSON parse error".into()],
        }
    }

    pub fn invalid(errors: Vec<String>) -> Refusal {
        Refusal {
            status: "invalid event",
            message: "Event object is invalid",
            errors,
        }
    }
}

/// Alerts raised by PagerDuty events are identified by their dedup key on their
/// routing key (as PagerDuty scopes it), so a later trigger with another severity or
/// summary updates the same alert, and another key's events never touch it.
pub fn dedup_fingerprint(routing_key_id: &str, dedup_key: &str) -> String {
    fingerprint(&LabelSet::from([
        ("dedup_key".into(), dedup_key.into()),
        ("routing_key".into(), routing_key_id.into()),
    ]))
}

/// The body as a JSON object, within PagerDuty's size limit.
fn object(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::invalid(vec![format!(
            "Event object is too large: {} bytes (the limit is {} KB)",
            body.len(),
            MAX_BODY_BYTES / 1024
        )]));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Refusal::unrecognized()),
    }
}

fn text<'a>(
    map: &'a Map<String, Value>,
    field: &str,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<&'a str> {
    match map.get(field) {
        None | Some(Value::Null) => None,
        // No database keeps a NUL character in text.
        Some(Value::String(s)) if s.contains('\0') => {
            errors.push(format!("'{path}' must not contain NUL characters"));
            None
        }
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            errors.push(format!("'{path}' must be a string"));
            None
        }
    }
}

fn routing_key(map: &Map<String, Value>, errors: &mut Vec<String>) -> String {
    match text(map, "routing_key", "routing_key", errors) {
        None | Some("") => {
            errors.push("'routing_key' is missing or blank".into());
            String::new()
        }
        Some(key) if key.chars().count() != KEY_LENGTH => {
            errors.push(format!(
                "Length of 'routing_key' is incorrect (should be {KEY_LENGTH} characters)"
            ));
            key.to_string()
        }
        Some(key) => key.to_string(),
    }
}

fn timestamp(map: &Map<String, Value>, path: &str, errors: &mut Vec<String>) -> Option<Timestamp> {
    let t = text(map, "timestamp", path, errors)?;
    t.parse()
        .map_err(|_| errors.push(format!("'{path}' is not a valid ISO 8601 timestamp")))
        .ok()
}

fn summary(map: &Map<String, Value>, path: &str, errors: &mut Vec<String>) -> String {
    match text(map, "summary", path, errors) {
        None | Some("") => {
            errors.push(format!("'{path}' is missing or blank"));
            String::new()
        }
        Some(s) if s.chars().count() > MAX_SUMMARY => {
            errors.push(format!(
                "Length of '{path}' is too long (maximum is {MAX_SUMMARY} characters)"
            ));
            String::new()
        }
        Some(s) => s.to_string(),
    }
}

fn json_text(value: Option<&Value>) -> Option<String> {
    value
        .filter(|v| !v.is_null())
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
}

/// Parses and validates a `/v2/enqueue` body.
pub fn event(body: &[u8], now: Timestamp) -> Result<Event, Refusal> {
    let map = object(body)?;
    let mut errors = Vec::new();
    let routing_key = routing_key(&map, &mut errors);
    let action = match text(&map, "event_action", "event_action", &mut errors) {
        Some("trigger") => Some(Action::Trigger),
        Some("acknowledge") => Some(Action::Acknowledge),
        Some("resolve") => Some(Action::Resolve),
        Some(_) => {
            errors.push(
                "'event_action' is invalid (must be one of trigger, acknowledge, resolve)".into(),
            );
            None
        }
        None => {
            errors.push("'event_action' is missing".into());
            None
        }
    };
    let dedup_key = text(&map, "dedup_key", "dedup_key", &mut errors)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    if dedup_key
        .as_ref()
        .is_some_and(|k| k.chars().count() > MAX_DEDUP_KEY)
    {
        errors.push(format!(
            "Length of 'dedup_key' is too long (maximum is {MAX_DEDUP_KEY} characters)"
        ));
    }
    if matches!(action, Some(Action::Acknowledge | Action::Resolve)) && dedup_key.is_none() {
        errors
            .push("'dedup_key' is missing or blank (required for acknowledge and resolve)".into());
    }
    let alert = match action {
        Some(Action::Trigger) => trigger_alert(&map, now, &mut errors),
        _ => None,
    };
    match action {
        Some(action) if errors.is_empty() => Ok(Event {
            routing_key,
            action,
            dedup_key,
            alert,
        }),
        _ => Err(Refusal::invalid(errors)),
    }
}

fn trigger_alert(
    map: &Map<String, Value>,
    now: Timestamp,
    errors: &mut Vec<String>,
) -> Option<Alert> {
    let Some(Value::Object(payload)) = map.get("payload") else {
        errors.push("'payload' is missing or not an object".into());
        return None;
    };
    let summary = summary(payload, "payload.summary", errors);
    let mut labels = LabelSet::new();
    match text(payload, "source", "payload.source", errors) {
        None | Some("") => errors.push("'payload.source' is missing or blank".into()),
        Some(s) => _ = labels.insert("source".into(), s.into()),
    }
    match text(payload, "severity", "payload.severity", errors) {
        Some(s) if SEVERITIES.contains(&s) => _ = labels.insert("severity".into(), s.into()),
        Some(_) => errors.push(
            "'payload.severity' is invalid (must be one of critical, error, warning, info)".into(),
        ),
        None => errors.push("'payload.severity' is missing".into()),
    }
    for field in ["component", "group", "class"] {
        if let Some(v) =
            text(payload, field, &format!("payload.{field}"), errors).filter(|v| !v.is_empty())
        {
            labels.insert(field.into(), v.into());
        }
    }
    let starts_at = timestamp(payload, "payload.timestamp", errors).unwrap_or(now);
    let mut annotations = LabelSet::from([("summary".to_string(), summary)]);
    let extras = [
        ("custom_details", payload.get("custom_details")),
        ("client", map.get("client")),
        ("client_url", map.get("client_url")),
        ("links", map.get("links")),
        ("images", map.get("images")),
    ];
    for (name, value) in extras {
        if let Some(text) = json_text(value) {
            annotations.insert(name.into(), text);
        }
    }
    Some(Alert {
        labels,
        annotations,
        starts_at: starts_at.min(now),
        ends_at: None,
        timeout: false,
        updated_at: now,
        generator_url: text(map, "client_url", "client_url", errors)
            .unwrap_or_default()
            .to_string(),
    })
}

/// Parses and validates a `/v2/change/enqueue` body.
pub fn change_event(body: &[u8], now: Timestamp) -> Result<ChangeEvent, Refusal> {
    let map = object(body)?;
    let mut errors = Vec::new();
    let routing_key = routing_key(&map, &mut errors);
    let Some(Value::Object(payload)) = map.get("payload") else {
        errors.push("'payload' is missing or not an object".into());
        return Err(Refusal::invalid(errors));
    };
    let summary = summary(payload, "payload.summary", &mut errors);
    let source = text(payload, "source", "payload.source", &mut errors).map(str::to_owned);
    let timestamp = timestamp(payload, "payload.timestamp", &mut errors).unwrap_or(now);
    let links = match map.get("links") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(links)) => links.clone(),
        Some(_) => {
            errors.push("'links' must be an array".into());
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(Refusal::invalid(errors));
    }
    Ok(ChangeEvent {
        routing_key,
        summary,
        source,
        timestamp,
        custom_details: payload
            .get("custom_details")
            .filter(|v| !v.is_null())
            .cloned(),
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz012345";

    fn now() -> Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_trigger_becomes_an_open_ended_alert() {
        let body = format!(
            r#"{{"routing_key":"{KEY}","event_action":"trigger","payload":{{"summary":"DB down","source":"db-1","severity":"critical","component":"postgres","custom_details":{{"free":"0%"}}}}}}"#
        );
        let event = event(body.as_bytes(), now()).unwrap();
        assert_eq!(event.action, Action::Trigger);
        assert!(event.dedup_key.is_none());
        let alert = event.alert.unwrap();
        assert_eq!(alert.labels["severity"], "critical");
        assert_eq!(alert.labels["component"], "postgres");
        assert_eq!(alert.annotations["summary"], "DB down");
        assert_eq!(alert.annotations["custom_details"], r#"{"free":"0%"}"#);
        assert_eq!(alert.ends_at, None);
    }

    #[test]
    fn refusals_list_every_problem() {
        let refusal = event(
            br#"{"routing_key":"short","event_action":"trigger","payload":{"severity":"bad"}}"#,
            now(),
        )
        .unwrap_err();
        assert_eq!(refusal.status, "invalid event");
        let all = refusal.errors.join("\n");
        for expected in [
            "Length of 'routing_key'",
            "payload.summary",
            "payload.source",
            "payload.severity",
        ] {
            assert!(all.contains(expected), "{all}");
        }
        let ack = format!(r#"{{"routing_key":"{KEY}","event_action":"acknowledge"}}"#);
        assert!(event(ack.as_bytes(), now()).unwrap_err().errors[0].contains("dedup_key"));
        assert_eq!(
            event(b"[1]", now()).unwrap_err().status,
            "Unrecognized object"
        );
        assert_eq!(event(b"{", now()).unwrap_err().errors, ["JSON parse error"]);
        let huge = format!(
            r#"{{"routing_key":"{KEY}","pad":"{}"}}"#,
            "x".repeat(MAX_BODY_BYTES)
        );
        assert!(change_event(huge.as_bytes(), now()).unwrap_err().errors[0].contains("too large"));
    }

    #[test]
    fn change_events_need_a_summary() {
        let ok = format!(
            r#"{{"routing_key":"{KEY}","payload":{{"summary":"Deployed v42","source":"ci"}},"links":[{{"href":"https://ci/42"}}]}}"#
        );
        let change = change_event(ok.as_bytes(), now()).unwrap();
        assert_eq!(
            (change.summary.as_str(), change.links.len()),
            ("Deployed v42", 1)
        );
        let bad = format!(r#"{{"routing_key":"{KEY}","payload":{{}}}}"#);
        assert!(
            change_event(bad.as_bytes(), now()).unwrap_err().errors[0].contains("payload.summary")
        );
    }
}
