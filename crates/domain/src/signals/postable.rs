//! Alertmanager API v2 request bodies (`postableAlerts`, `postableSilence`) parsed
//! with Alertmanager's checks, in its order and with its words: type errors first (the
//! whole request is refused), then required fields and formats (refused too), then
//! each alert on its own (the valid ones are kept).

use super::matchers::{Matcher, MatcherBody};
use super::silences::Silence;
use super::{Alert, LabelSet, labels::valid_name};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

/// Most alerts one `POST /api/v2/alerts` may carry (Prometheus sends 64 or 256), so one
/// request cannot hold the writer for long.
pub const MAX_ALERTS_PER_REQUEST: usize = 10_000;

/// A refusal in Alertmanager's shape; the HTTP layer maps each kind to its status and
/// body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmError {
    /// 400 `{"code":400,"message":…}`: the body does not decode.
    Parse(String),
    /// 422 `{"code":602,"message":"0.labels in body is required"}`.
    Required(String),
    /// 422 `{"code":601,"message":…}`: a field in the wrong format.
    Format(String),
    /// 400 with a JSON string: semantic validation.
    Invalid(String),
    /// 404 with a JSON string.
    NotFound(String),
    /// 500 with a JSON string (Alertmanager answers this for expiring an expired
    /// silence).
    Internal(String),
}

impl AmError {
    /// The message, for people (pages).
    pub fn message(&self) -> &str {
        match self {
            AmError::Parse(m)
            | AmError::Required(m)
            | AmError::Format(m)
            | AmError::Invalid(m)
            | AmError::NotFound(m)
            | AmError::Internal(m) => m,
        }
    }
}

/// The alerts that passed and the messages of those that did not.
#[derive(Debug, Default)]
pub struct Batch {
    pub alerts: Vec<Alert>,
    pub errors: Vec<String>,
}

impl Batch {
    /// Alertmanager's answer when some alerts were invalid: one string, "; "-joined.
    pub fn error(&self) -> Option<String> {
        (!self.errors.is_empty()).then(|| self.errors.join("; "))
    }
}

fn parse_failed(what: &str, reason: String) -> AmError {
    AmError::Parse(format!(
        "parsing {what} body from \"\" failed, because json: {reason}"
    ))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong_type(value: &Value, field: &str, go_type: &str) -> String {
    format!(
        "cannot unmarshal {} into Go struct field {field} of type {go_type}",
        kind(value)
    )
}

/// A zero Go time (`0001-01-01T00:00:00Z`) means "not set", as in Alertmanager.
fn instant(value: Option<&Value>, field: &str) -> Result<Option<Timestamp>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let t: Timestamp = text.parse().map_err(|_| {
                format!(
                    "parsing time \"{text}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse {field}"
                )
            })?;
            Ok((t.as_second() > ZERO_GO_TIME).then_some(t))
        }
        Some(other) => Err(wrong_type(other, field, "strfmt.DateTime")),
    }
}

/// `0001-01-01T00:00:00Z` in Unix seconds.
const ZERO_GO_TIME: i64 = -62135596800;

fn label_set(value: Option<&Value>, field: &str) -> Result<Option<LabelSet>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(wrong_type(other, field, "string")),
            })
            .collect::<Result<LabelSet, _>>()
            .map(Some),
        Some(other) => Err(wrong_type(other, field, "models.LabelSet")),
    }
}

/// Roughly Go's `url.Parse`: refuses control characters, spaces, bad `%` escapes and
/// a missing scheme before a colon.
fn is_uri(text: &str) -> bool {
    let bytes = text.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    escapes_ok && !text.starts_with(':') && !text.chars().any(|c| c.is_control() || c == ' ')
}

struct Decoded {
    labels: Option<LabelSet>,
    annotations: LabelSet,
    starts_at: Option<Timestamp>,
    ends_at: Option<Timestamp>,
    generator_url: String,
}

fn decode_alert(value: &Value) -> Result<Decoded, String> {
    let Value::Object(map) = value else {
        return Err(format!(
            "cannot unmarshal {} into Go value of type models.PostableAlert",
            kind(value)
        ));
    };
    let generator_url = match map.get("generatorURL") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(wrong_type(other, "generatorURL", "strfmt.URI")),
    };
    Ok(Decoded {
        labels: label_set(map.get("labels"), "labels")?,
        annotations: label_set(map.get("annotations"), "annotations")?.unwrap_or_default(),
        starts_at: instant(map.get("startsAt"), "startsAt")?,
        ends_at: instant(map.get("endsAt"), "endsAt")?,
        generator_url,
    })
}

/// Parses `POST /api/v2/alerts`, filling defaults as Alertmanager does: no start means
/// the end if given, else now; no end means `now + resolve_timeout`, marked as a
/// timeout; empty label values are dropped.
pub fn alerts(
    body: &[u8],
    now: Timestamp,
    resolve_timeout: SignedDuration,
) -> Result<Batch, AmError> {
    // The common case decodes straight into typed alerts; a body that does not is
    // decoded again generically, to name what is wrong as Alertmanager does.
    let decoded = match serde_json::from_slice::<Vec<Typed>>(body) {
        Ok(typed) => typed
            .into_iter()
            .map(Typed::decoded)
            .collect::<Result<Vec<_>, _>>(),
        Err(e) => Err(e.to_string()),
    };
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(typed_error) => match decode_generic(body) {
            Err(e) => return Err(e),
            Ok(_) => return Err(parse_failed("alerts", typed_error)),
        },
    };
    check_and_fill(decoded, now, resolve_timeout)
}

/// A `postableAlert` as it usually comes.
#[derive(serde::Deserialize)]
struct Typed {
    labels: Option<LabelSet>,
    annotations: Option<LabelSet>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
}

impl Typed {
    fn decoded(self) -> Result<Decoded, String> {
        let time = |t: Option<String>, field: &str| instant(t.map(Value::String).as_ref(), field);
        Ok(Decoded {
            labels: self.labels,
            annotations: self.annotations.unwrap_or_default(),
            starts_at: time(self.starts_at, "startsAt")?,
            ends_at: time(self.ends_at, "endsAt")?,
            generator_url: self.generator_url.unwrap_or_default(),
        })
    }
}

fn decode_generic(body: &[u8]) -> Result<Vec<Decoded>, AmError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| parse_failed("alerts", e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(parse_failed(
            "alerts",
            format!(
                "cannot unmarshal {} into Go value of type models.PostableAlerts",
                kind(&value)
            ),
        ));
    };
    items
        .iter()
        .map(decode_alert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_failed("alerts", e))
}

/// Alertmanager's required-field and format checks over the whole request, then its
/// defaults and validation per alert.
fn check_and_fill(
    decoded: Vec<Decoded>,
    now: Timestamp,
    resolve_timeout: SignedDuration,
) -> Result<Batch, AmError> {
    if decoded.len() > MAX_ALERTS_PER_REQUEST {
        return Err(AmError::Invalid(format!(
            "too many alerts in one request: {} (at most {MAX_ALERTS_PER_REQUEST}); send them in batches",
            decoded.len()
        )));
    }
    for (i, d) in decoded.iter().enumerate() {
        if d.labels.is_none() {
            return Err(AmError::Required(format!("{i}.labels in body is required")));
        }
        if !d.generator_url.is_empty() && !is_uri(&d.generator_url) {
            return Err(AmError::Format(format!(
                "{i}.generatorURL in body must be of type uri: \"{}\"",
                d.generator_url
            )));
        }
    }
    let mut batch = Batch::default();
    for d in decoded {
        let mut labels = d.labels.unwrap_or_default();
        labels.retain(|_, v| !v.is_empty());
        let starts_at = d.starts_at.or(d.ends_at).unwrap_or(now);
        let (ends_at, timeout) = match d.ends_at {
            Some(end) => (end, false),
            None => (now + resolve_timeout, true),
        };
        let alert = Alert {
            labels,
            annotations: d.annotations,
            starts_at,
            ends_at: Some(ends_at),
            timeout,
            updated_at: now,
            generator_url: d.generator_url,
        };
        match validate(&alert) {
            Ok(()) => batch.alerts.push(alert),
            Err(e) => batch.errors.push(e),
        }
    }
    Ok(batch)
}

/// Alertmanager's `Alert.Validate`.
pub fn validate(alert: &Alert) -> Result<(), String> {
    if alert.ends_at.is_some_and(|end| end < alert.starts_at) {
        return Err("start time must be before end time".into());
    }
    if let Some(name) = alert.labels.keys().find(|n| !valid_name(n)) {
        return Err(format!("invalid label set: invalid name \"{name}\""));
    }
    if alert.labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    if let Some(name) = alert.annotations.keys().find(|n| !valid_name(n)) {
        return Err(format!("invalid annotations: invalid name \"{name}\""));
    }
    Ok(())
}

fn required_string(map: &Map<String, Value>, field: &str) -> Result<String, AmError> {
    match map.get(field) {
        Some(Value::String(s)) if s.contains('\0') => Err(AmError::Invalid(format!(
            "silence invalid: {field} must not contain NUL characters"
        ))),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(AmError::Required(format!("{field} in body is required"))),
    }
}

/// Each matcher's required fields, named as Alertmanager's spec check names them.
fn check_matchers(matchers: &Value) -> Result<(), AmError> {
    let Value::Array(items) = matchers else {
        return Ok(());
    };
    for (i, item) in items.iter().enumerate() {
        for field in ["name", "value", "isRegex"] {
            if item.get(field).is_none_or(Value::is_null) {
                return Err(AmError::Required(format!(
                    "matchers.{i}.{field} in body is required"
                )));
            }
        }
    }
    Ok(())
}

/// Parses `POST /api/v2/silences` into a silence (id empty for a new one), before the
/// lifecycle checks of [`super::silences::validate`].
pub fn silence(body: &[u8], now: Timestamp) -> Result<Silence, AmError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| parse_failed("silence", e.to_string()))?;
    let Value::Object(map) = &value else {
        return Err(parse_failed(
            "silence",
            format!(
                "cannot unmarshal {} into Go value of type models.PostableSilence",
                kind(&value)
            ),
        ));
    };
    let matchers: Vec<MatcherBody> = match map.get("matchers") {
        None | Some(Value::Null) => {
            return Err(AmError::Required("matchers in body is required".into()));
        }
        Some(m) => {
            check_matchers(m)?;
            serde_json::from_value(m.clone())
                .map_err(|e| parse_failed("silence", format!("matchers: {e}")))?
        }
    };
    let starts_at =
        instant(map.get("startsAt"), "startsAt").map_err(|e| parse_failed("silence", e))?;
    let ends_at = instant(map.get("endsAt"), "endsAt").map_err(|e| parse_failed("silence", e))?;
    let id = match map.get("id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(parse_failed("silence", wrong_type(other, "id", "string"))),
    };
    if matchers.is_empty() {
        return Err(AmError::Format(
            "matchers in body should have at least 1 items".into(),
        ));
    }
    let created_by = required_string(map, "createdBy")?;
    let comment = required_string(map, "comment")?;
    let (Some(starts_at), Some(ends_at)) = (starts_at, ends_at) else {
        let missing = if starts_at.is_none() {
            "startsAt"
        } else {
            "endsAt"
        };
        return Err(AmError::Required(format!("{missing} in body is required")));
    };
    let matchers = matchers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Matcher::try_from(m).map_err(|e| {
                AmError::Invalid(format!("silence invalid: invalid label matcher {i}: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Silence {
        id,
        service: None,
        matchers,
        starts_at,
        ends_at,
        created_by,
        comment,
        updated_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn parse(body: &str) -> Result<Batch, AmError> {
        alerts(body.as_bytes(), now(), SignedDuration::from_mins(5))
    }

    #[test]
    fn defaults_follow_alertmanager() {
        let batch = parse(r#"[{"labels":{"alertname":"x","foo":""}}]"#).unwrap();
        let alert = &batch.alerts[0];
        assert_eq!(alert.labels.len(), 1, "empty values are dropped");
        assert_eq!(alert.starts_at, now());
        assert_eq!(alert.ends_at, Some(now() + SignedDuration::from_mins(5)));
        assert!(alert.timeout);
        let ended = parse(r#"[{"labels":{"a":"b"},"endsAt":"2026-11-23T09:00:00Z"}]"#).unwrap();
        assert_eq!(ended.alerts[0].starts_at, ended.alerts[0].ends_at.unwrap());
        assert!(!ended.alerts[0].timeout);
    }

    #[test]
    fn whole_request_refusals_use_alertmanagers_codes() {
        assert!(
            matches!(parse(r#"{"labels":{}}"#), Err(AmError::Parse(m)) if m.contains("models.PostableAlerts"))
        );
        assert!(matches!(
            parse(r#"[{"labels":{"a":1}}]"#),
            Err(AmError::Parse(_))
        ));
        assert!(
            matches!(parse(r#"[{"labels":{"a":"b"},"startsAt":"yesterday"}]"#), Err(AmError::Parse(m)) if m.contains("parsing time"))
        );
        assert_eq!(
            parse(r#"[{"labels":{"a":"b"}},{"annotations":{}}]"#).unwrap_err(),
            AmError::Required("1.labels in body is required".into())
        );
        assert!(
            matches!(parse(r#"[{"labels":{"a":"b"},"generatorURL":"::bad"}]"#), Err(AmError::Format(m)) if m.starts_with("0.generatorURL"))
        );
        assert!(matches!(parse("not json"), Err(AmError::Parse(_))));
    }

    #[test]
    fn a_mixed_batch_keeps_the_valid_alerts() {
        let batch = parse(
            r#"[{"labels":{"alertname":"ok"}},{"labels":{}},{"labels":{"1bad":"x"}},
                {"labels":{"a":"b"},"startsAt":"2026-11-23T10:00:00Z","endsAt":"2026-11-23T09:00:00Z"}]"#,
        )
        .unwrap();
        assert_eq!(batch.alerts.len(), 1);
        assert_eq!(
            batch.error().unwrap(),
            "at least one label pair required; invalid label set: invalid name \"1bad\"; start time must be before end time"
        );
        assert!(parse("[]").unwrap().error().is_none());
    }

    #[test]
    fn silences_need_matchers_author_comment_and_times() {
        let ok = r#"{"matchers":[{"name":"alertname","value":"x","isRegex":false}],
            "startsAt":"2026-11-23T10:00:00Z","endsAt":"2026-11-23T11:00:00Z","createdBy":"ana","comment":"deploy"}"#;
        let s = silence(ok.as_bytes(), now()).unwrap();
        assert_eq!(s.matchers[0].to_string(), "alertname=\"x\"");
        let no_comment = ok.replace(r#""comment":"deploy""#, r#""comment":"""#);
        assert_eq!(
            silence(no_comment.as_bytes(), now()).unwrap_err(),
            AmError::Required("comment in body is required".into())
        );
        let no_regex_flag = ok.replace(r#","isRegex":false"#, "");
        assert_eq!(
            silence(no_regex_flag.as_bytes(), now()).unwrap_err(),
            AmError::Required("matchers.0.isRegex in body is required".into())
        );
        let no_matchers = ok.replace(
            r#"[{"name":"alertname","value":"x","isRegex":false}]"#,
            "[]",
        );
        assert!(matches!(
            silence(no_matchers.as_bytes(), now()),
            Err(AmError::Format(_))
        ));
        let bad_regex = ok
            .replace(r#""isRegex":false"#, r##""isRegex":true,"value":"(""##)
            .replace(r#""value":"x","#, "");
        let err = silence(bad_regex.as_bytes(), now()).unwrap_err();
        assert!(
            matches!(&err, AmError::Invalid(m) if m.contains("invalid label matcher 0")),
            "{err:?}"
        );
    }
}
