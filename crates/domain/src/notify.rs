//! Notification rules: what a message looks like on each channel, how a delivery
//! outcome is judged, and when to try again. The outbox (store) and the senders
//! (notify crate) follow these.

use crate::catalog::secret::Secret;
use crate::catalog::{Contact, NotificationRule, Person};
use crate::clock::parse_duration;
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Webhook,
    Slack,
    Teams,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
            Channel::Slack => "slack",
            Channel::Teams => "teams",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        [
            Channel::Email,
            Channel::Webhook,
            Channel::Slack,
            Channel::Teams,
        ]
        .into_iter()
        .find(|c| c.as_str() == text)
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Worth trying again (5xx, timeouts, refused connections, 408, 429).
    Retry(String),
    /// Trying again will not help (other 4xx, malformed destination).
    Reject(String),
}

/// Judges an HTTP status from a webhook receiver.
pub fn http_outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 425 | 429 | 500..=599 => Outcome::Retry(format!("HTTP {status}")),
        _ => Outcome::Reject(format!("HTTP {status}")),
    }
}

/// The wait before retry number `attempt` (1 = the first retry): 2 s, 4 s, 8 s, …,
/// at most 10 minutes.
pub fn backoff(attempt: u32) -> SignedDuration {
    let seconds = 2i64.saturating_pow(attempt.clamp(1, 30)).min(600);
    SignedDuration::from_secs(seconds)
}

/// How long a message is retried before it is marked failed, by default.
pub const DEFAULT_RETRY_HORIZON: SignedDuration = SignedDuration::from_hours(24);

/// `X-Muster-Signature` of a webhook body: `sha256=` + hex HMAC-SHA256 of
/// `"<timestamp>.<body>"` under the contact's secret.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A message as each channel carries it.
pub fn webhook_payload(delivery_id: &str, recipient: &str, subject: &str, body: &str) -> Value {
    json!({ "delivery_id": delivery_id, "recipient": recipient, "subject": subject, "body": body })
}

/// Slack incoming-webhook format.
pub fn slack_payload(subject: &str, body: &str) -> Value {
    json!({
        "text": format!("{subject}\n{body}"),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": subject}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body}}
        ]
    })
}

/// Microsoft Teams incoming-webhook format (MessageCard).
pub fn teams_payload(subject: &str, body: &str) -> Value {
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": subject,
        "title": subject,
        "text": body
    })
}

/// One contact method, ready to queue: where a message goes and the sealed secret
/// (a webhook's signing key; a Slack or Teams URL is its own credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub channel: Channel,
    pub destination: String,
    pub secret: Option<String>,
}

/// Every contact method of `person`, without repeats: the person's `email` first, then
/// `contacts` in order. A Slack or Teams URL not yet sealed (never the case once
/// stored) is left out rather than sent in the clear.
pub fn contact_targets(person: &Person) -> Vec<Target> {
    let sealed = |s: &Secret| match s {
        Secret::Sealed(v) => Some(v.clone()),
        _ => None,
    };
    let email = |to: &str| Target {
        channel: Channel::Email,
        destination: to.to_string(),
        secret: None,
    };
    let mut targets: Vec<Target> = person.email.iter().map(|to| email(to)).collect();
    for contact in &person.contacts {
        let target = match contact {
            Contact::Email { to } => Some(email(to)),
            Contact::Webhook { url, secret } => Some(Target {
                channel: Channel::Webhook,
                destination: url.clone(),
                secret: secret.as_ref().and_then(sealed),
            }),
            Contact::Slack { url } => sealed(url).map(|destination| Target {
                channel: Channel::Slack,
                destination,
                secret: None,
            }),
            Contact::Teams { url } => sealed(url).map(|destination| Target {
                channel: Channel::Teams,
                destination,
                secret: None,
            }),
        };
        targets.extend(target.filter(|t| !targets.contains(t)));
    }
    targets
}

/// How long after a page each of `person`'s contact methods is used: by their
/// notification rules in order (a rule reaches every method of its kind), or every
/// method at once when they have none. A method named twice at one delay is used once.
pub fn paging_plan(person: &Person) -> Vec<(SignedDuration, Target)> {
    let targets = contact_targets(person);
    if person.notification_rules.is_empty() {
        return targets
            .into_iter()
            .map(|t| (SignedDuration::ZERO, t))
            .collect();
    }
    let mut plan: Vec<(SignedDuration, Target)> = Vec::new();
    for rule in &person.notification_rules {
        // Validated with the catalog; an unreadable rule reaches nobody.
        let (Some(channel), Ok(after)) = (Channel::parse(&rule.contact), rule_delay(rule)) else {
            continue;
        };
        for target in targets.iter().filter(|t| t.channel == channel) {
            let step = (after, target.clone());
            if !plan.contains(&step) {
                plan.push(step);
            }
        }
    }
    plan.sort_by_key(|(after, _)| *after);
    plan
}

/// The longest a notification rule may wait.
pub const MAX_RULE_DELAY: SignedDuration = SignedDuration::from_hours(24);

/// A rule's `after`: zero when absent; at most [`MAX_RULE_DELAY`], never negative.
pub fn rule_delay(rule: &NotificationRule) -> Result<SignedDuration, String> {
    let Some(text) = &rule.after else {
        return Ok(SignedDuration::ZERO);
    };
    let after = parse_duration(text)?;
    if after.is_negative() || after > MAX_RULE_DELAY {
        return Err(format!(
            "{text:?} is out of range: use 0m (at once) up to 24h"
        ));
    }
    Ok(after)
}

/// A limit on how many messages one contact method receives: at most `max` per `per`
/// (for one channel, or every channel when `channel` is none). Messages over the limit
/// are bundled into one, never dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    pub channel: Option<Channel>,
    pub max: u32,
    pub per: SignedDuration,
}

impl Throttle {
    /// Without configured throttles: 10 messages per 10 minutes per contact method.
    pub fn defaults() -> Vec<Throttle> {
        vec![Throttle {
            channel: None,
            max: 10,
            per: SignedDuration::from_mins(10),
        }]
    }

    /// The throttle for `channel`: one naming it wins over one for every channel.
    pub fn for_channel(throttles: &[Throttle], channel: Channel) -> Option<&Throttle> {
        throttles
            .iter()
            .find(|t| t.channel == Some(channel))
            .or_else(|| throttles.iter().find(|t| t.channel.is_none()))
    }
}

/// What to do with the messages waiting for one contact method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottlePlan {
    /// Send the first `singles` one by one and, when `bundle`, the rest as one message.
    Send { singles: usize, bundle: bool },
    /// The limit is reached: wait until a slot frees.
    WaitUntil(Timestamp),
}

/// Plans `waiting` messages for a contact method that received messages at `sent`
/// (oldest first) within the throttle's window before `now`.
pub fn throttle_plan(
    waiting: usize,
    sent: &[Timestamp],
    throttle: &Throttle,
    now: Timestamp,
) -> ThrottlePlan {
    let window_start = now - throttle.per;
    let in_window: Vec<Timestamp> = sent.iter().copied().filter(|t| *t > window_start).collect();
    let max = throttle.max as usize;
    let allowance = max.saturating_sub(in_window.len());
    if allowance == 0 {
        // The slot frees when the oldest message that keeps the count at max leaves.
        let oldest = in_window[in_window.len() - max];
        return ThrottlePlan::WaitUntil(oldest + throttle.per);
    }
    if waiting <= allowance {
        ThrottlePlan::Send {
            singles: waiting,
            bundle: false,
        }
    } else {
        ThrottlePlan::Send {
            singles: allowance - 1,
            bundle: true,
        }
    }
}

/// One message carrying several: the subject says how many, the body holds each.
pub fn bundle(messages: &[(&str, &str)]) -> (String, String) {
    let first = messages.first().map(|m| m.0).unwrap_or("");
    let subject = format!(
        "{} messages: {first} (and {} more)",
        messages.len(),
        messages.len().saturating_sub(1)
    );
    let mut body = format!(
        "Muster bundled {} messages to stay within this contact method's limit.\n",
        messages.len()
    );
    for (i, (subject, text)) in messages.iter().enumerate() {
        body.push_str(&format!("\n[{}] {subject}\n{text}\n", i + 1));
    }
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(rules: &[(&str, Option<&str>)]) -> Person {
        Person {
            id: "dana".into(),
            name: "Dana".into(),
            email: Some("dana@example.test".into()),
            timezone: "UTC".into(),
            contacts: vec![
                Contact::Webhook {
                    url: "https://phone.example.test/dana".into(),
                    secret: None,
                },
                Contact::Email {
                    to: "dana@example.test".into(),
                },
                Contact::Slack {
                    url: Secret::Sealed("sealed-url".into()),
                },
            ],
            notification_rules: rules
                .iter()
                .map(|(contact, after)| NotificationRule {
                    contact: contact.to_string(),
                    after: after.map(str::to_owned),
                })
                .collect(),
        }
    }

    #[test]
    fn without_rules_every_method_is_used_at_once() {
        let plan = paging_plan(&person(&[]));
        let got: Vec<(i64, Channel)> = plan
            .iter()
            .map(|(after, t)| (after.as_secs(), t.channel))
            .collect();
        // The repeated email address is one method.
        assert_eq!(
            got,
            [
                (0, Channel::Email),
                (0, Channel::Webhook),
                (0, Channel::Slack)
            ]
        );
        assert_eq!(plan[2].1.destination, "sealed-url");
    }

    #[test]
    fn rules_choose_methods_and_delays() {
        let plan = paging_plan(&person(&[
            ("webhook", Some("5m")),
            ("email", None),
            ("email", Some("0s")),
            ("slack", Some("15m")),
        ]));
        let got: Vec<(i64, Channel)> = plan
            .iter()
            .map(|(after, t)| (after.as_secs(), t.channel))
            .collect();
        assert_eq!(
            got,
            [
                (0, Channel::Email),
                (300, Channel::Webhook),
                (900, Channel::Slack)
            ],
            "ordered by delay; email once though named twice at zero"
        );
    }

    #[test]
    fn outcomes_follow_http_semantics() {
        assert_eq!(http_outcome(204), Outcome::Delivered);
        assert!(matches!(http_outcome(503), Outcome::Retry(_)));
        assert!(matches!(http_outcome(429), Outcome::Retry(_)));
        assert!(matches!(http_outcome(404), Outcome::Reject(_)));
    }

    #[test]
    fn backoff_starts_within_seconds_and_is_capped() {
        assert_eq!(backoff(1).as_secs(), 2);
        assert_eq!(backoff(2).as_secs(), 4);
        assert_eq!(backoff(10).as_secs(), 600);
        assert_eq!(backoff(1000).as_secs(), 600);
    }

    #[test]
    fn signature_matches_openssl() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            webhook_signature("s3cret", 1_700_000_000, "{\"a\":1}"),
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minute * 60).unwrap()
    }

    #[test]
    fn throttles_bundle_what_is_over_the_limit_and_wait_when_full() {
        let limit = Throttle {
            channel: None,
            max: 3,
            per: SignedDuration::from_mins(10),
        };
        let plan = |waiting, sent: &[Timestamp]| throttle_plan(waiting, sent, &limit, at(20));
        assert_eq!(
            plan(2, &[]),
            ThrottlePlan::Send {
                singles: 2,
                bundle: false
            }
        );
        assert_eq!(
            plan(3, &[]),
            ThrottlePlan::Send {
                singles: 3,
                bundle: false
            }
        );
        // Four waiting, room for three: two alone and the other two as one.
        assert_eq!(
            plan(4, &[]),
            ThrottlePlan::Send {
                singles: 2,
                bundle: true
            }
        );
        // Old messages are outside the window.
        assert_eq!(
            plan(3, &[at(1), at(5)]),
            ThrottlePlan::Send {
                singles: 3,
                bundle: false
            }
        );
        assert_eq!(
            plan(5, &[at(12)]),
            ThrottlePlan::Send {
                singles: 1,
                bundle: true
            }
        );
        assert_eq!(
            plan(5, &[at(12), at(15)]),
            ThrottlePlan::Send {
                singles: 0,
                bundle: true
            }
        );
        // Full: wait until the oldest of the last three leaves the window.
        assert_eq!(
            plan(1, &[at(11), at(12), at(15)]),
            ThrottlePlan::WaitUntil(at(21))
        );
        assert_eq!(
            plan(1, &[at(11), at(12), at(13), at(15)]),
            ThrottlePlan::WaitUntil(at(22))
        );
    }

    #[test]
    fn a_channel_throttle_wins_over_the_general_one() {
        let general = Throttle {
            channel: None,
            max: 10,
            per: SignedDuration::from_mins(10),
        };
        let email = Throttle {
            channel: Some(Channel::Email),
            max: 2,
            per: SignedDuration::from_mins(5),
        };
        let set = [general.clone(), email.clone()];
        assert_eq!(Throttle::for_channel(&set, Channel::Email), Some(&email));
        assert_eq!(Throttle::for_channel(&set, Channel::Slack), Some(&general));
        assert_eq!(Throttle::for_channel(&[], Channel::Slack), None);
    }

    #[test]
    fn a_bundle_keeps_every_message() {
        let (subject, body) = bundle(&[("Disk full", "db-1 at 95%"), ("CPU", "web-2 busy")]);
        assert_eq!(subject, "2 messages: Disk full (and 1 more)");
        assert!(
            body.contains("[1] Disk full\ndb-1 at 95%") && body.contains("[2] CPU\nweb-2 busy")
        );
    }
}
