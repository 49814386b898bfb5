//! The outbox's senders. Each turns one queued message into one delivery attempt and
//! judges the outcome; the engine decides about retries from it.

mod email;

pub use email::{Mailer, SmtpSettings, SmtpTls};

use muster_domain::notify::{
    Channel, Outcome, http_outcome, slack_payload, teams_payload, webhook_payload,
    webhook_signature,
};
use muster_store::notify::Notification;
use std::time::Duration;

/// How long one attempt may take before it counts as a failure worth retrying.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Senders {
    http: reqwest::Client,
    /// None when no `[smtp]` section is configured.
    mailer: Option<Mailer>,
}

impl Senders {
    pub fn new(smtp: Option<&SmtpSettings>) -> Result<Senders, String> {
        // One crypto provider for the whole process (rustls panics on two).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("muster/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mailer = smtp.map(Mailer::new).transpose()?;
        Ok(Senders { http, mailer })
    }

    /// Sends one message. `destination` and `secret` are already opened (unsealed).
    pub async fn send(
        &self,
        message: &Notification,
        destination: &str,
        secret: Option<&str>,
        now_seconds: i64,
    ) -> Outcome {
        match Channel::parse(&message.channel) {
            Some(Channel::Webhook) => {
                let body = webhook_payload(
                    &message.delivery_id,
                    &message.recipient,
                    &message.subject,
                    &message.body,
                )
                .to_string();
                let mut request = self
                    .http
                    .post(destination)
                    .header("content-type", "application/json")
                    .header("x-muster-delivery", &message.delivery_id)
                    .header("x-muster-timestamp", now_seconds.to_string());
                if let Some(secret) = secret {
                    request = request.header(
                        "x-muster-signature",
                        webhook_signature(secret, now_seconds, &body),
                    );
                }
                self.post(request.body(body)).await
            }
            Some(Channel::Slack) => {
                self.post(
                    self.http
                        .post(destination)
                        .json(&slack_payload(&message.subject, &message.body)),
                )
                .await
            }
            Some(Channel::Teams) => {
                self.post(
                    self.http
                        .post(destination)
                        .json(&teams_payload(&message.subject, &message.body)),
                )
                .await
            }
            Some(Channel::Email) => match &self.mailer {
                Some(mailer) => mailer.send(message, destination).await,
                None => Outcome::Reject(
                    "email delivery is not configured on this server (no [smtp] section)".into(),
                ),
            },
            None => Outcome::Reject(format!("unknown channel {:?}", message.channel)),
        }
    }

    async fn post(&self, request: reqwest::RequestBuilder) -> Outcome {
        match request.send().await {
            Ok(response) => http_outcome(response.status().as_u16()),
            // Refused connections, timeouts, TLS failures: the receiver may come back.
            Err(e) if e.is_builder() => {
                Outcome::Reject(format!("bad destination: {}", describe(e)))
            }
            Err(e) => Outcome::Retry(describe(e)),
        }
    }
}

/// A request error without its URL (a Slack or Teams URL is a credential, and the log
/// is readable by every role), with its causes, e.g. "… : Connection refused".
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_say_why_without_the_secret_url() {
        // Nothing listens on port 1: the connection is refused.
        let senders = Senders::new(None).unwrap();
        let request = senders
            .http
            .post("http://127.0.0.1:1/services/T000/B000/SECRET")
            .body("{}");
        match senders.post(request).await {
            Outcome::Retry(why) => {
                assert!(!why.contains("SECRET"), "{why}");
                assert!(why.to_lowercase().contains("refused"), "{why}");
            }
            other => panic!("a refused connection is retried, got {other:?}"),
        }
    }
}
