//! Notification rules: what a message looks like on each channel, how a delivery
//! outcome is judged, and when to try again. The outbox (store) and the senders
//! (notify crate) follow these.

use hmac::{Hmac, Mac};
use jiff::SignedDuration;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
