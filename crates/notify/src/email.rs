//! Email over SMTP: one pooled connection to the configured relay, plain-text
//! messages whose Message-ID carries the delivery id so mail clients and filters can
//! drop repeats.

use crate::ATTEMPT_TIMEOUT;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use muster_domain::notify::Outcome;
use muster_store::notify::Notification;
use serde::Deserialize;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on the same host or network only).
    None,
    /// Plain text upgraded with STARTTLS, which is required: no fallback.
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", implicit TLS).
    Tls,
}

impl SmtpTls {
    /// The customary port: 25, 587 (submission) or 465 (submissions).
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

/// The `[smtp]` settings, with the password already read from its variable or file.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: Option<u16>,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    /// Extra trusted root certificates (PEM), for relays with a private CA.
    pub ca_pem: Option<Vec<u8>>,
}

/// Sends email through one relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The right-hand side of Message-IDs: the sender's domain.
    id_domain: String,
}

impl Mailer {
    /// Checks the settings and prepares the transport; connects only when sending.
    /// Errors name the `[smtp]` key at fault.
    pub fn new(settings: &SmtpSettings) -> Result<Mailer, String> {
        let from: Mailbox = settings.from.parse().map_err(|e| {
            format!(
                "[smtp] from: {:?} is not an email address: {e}",
                settings.from
            )
        })?;
        if settings.host.trim().is_empty() {
            return Err("[smtp] host: must not be empty".into());
        }
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(
                    "[smtp] username is set: give password_env or password_file too".into(),
                );
            }
            (None, Some(_)) => return Err("[smtp] a password is set: give username too".into()),
        };
        if credentials.is_some() && settings.tls == SmtpTls::None && !is_loopback(&settings.host) {
            return Err(format!(
                "[smtp] tls = \"none\" would send the password in clear text to {}: use \"starttls\" or \"tls\"",
                settings.host
            ));
        }
        let tls = match settings.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters(settings)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(settings)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port.unwrap_or(settings.tls.default_port()))
            .tls(tls)
            .timeout(Some(ATTEMPT_TIMEOUT));
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        let id_domain = from.email.domain().to_string();
        Ok(Mailer {
            transport: builder.build(),
            from,
            id_domain,
        })
    }

    pub async fn send(&self, message: &Notification, address: &str) -> Outcome {
        let to: Mailbox = match address.parse() {
            Ok(to) => to,
            Err(e) => return Outcome::Reject(format!("{address:?} is not an email address: {e}")),
        };
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&message.subject)
            .message_id(Some(format!(
                "<{}@{}>",
                message.delivery_id, self.id_domain
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone());
        let email = match email {
            Ok(email) => email,
            Err(e) => return Outcome::Reject(format!("cannot build the message: {e}")),
        };
        match self.transport.send(email).await {
            Ok(_) => Outcome::Delivered,
            // A 5xx reply: the relay refuses this message for good (unknown mailbox, …).
            Err(e) if e.is_permanent() => Outcome::Reject(format!("SMTP: {e}")),
            // 4xx replies, refused connections, timeouts, TLS failures: try again.
            Err(e) => Outcome::Retry(format!("SMTP: {e}")),
        }
    }
}

fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(pem) = &settings.ca_pem {
        // An empty list of certificates parses; a CA file without one is a mistake.
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(
                "[smtp] ca_file: no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
            );
        }
        let certificate = Certificate::from_pem(pem)
            .map_err(|e| format!("[smtp] ca_file: not a PEM certificate: {e}"))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| format!("[smtp] tls: cannot set up TLS: {e}"))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SmtpSettings {
        SmtpSettings {
            host: "mail.example.com".into(),
            port: None,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            from: "Muster <muster@example.com>".into(),
            ca_pem: None,
        }
    }

    // The connection pool starts a task: a runtime is needed even to build the mailer.
    #[tokio::test]
    async fn refuses_settings_that_cannot_work_or_leak_the_password() {
        let bad_from = Mailer::new(&SmtpSettings {
            from: "not an address".into(),
            ..settings()
        });
        assert!(bad_from.err().unwrap().starts_with("[smtp] from:"));
        let half_credentials = Mailer::new(&SmtpSettings {
            username: Some("u".into()),
            ..settings()
        });
        assert!(half_credentials.err().unwrap().contains("password_env"));
        let clear_text = Mailer::new(&SmtpSettings {
            username: Some("u".into()),
            password: Some("p".into()),
            tls: SmtpTls::None,
            ..settings()
        });
        assert!(clear_text.err().unwrap().contains("clear text"));
        let local_relay = Mailer::new(&SmtpSettings {
            host: "127.0.0.1".into(),
            username: Some("u".into()),
            password: Some("p".into()),
            tls: SmtpTls::None,
            ..settings()
        });
        assert!(local_relay.is_ok());
        let bad_ca = Mailer::new(&SmtpSettings {
            ca_pem: Some(b"garbage".to_vec()),
            ..settings()
        });
        assert!(bad_ca.err().unwrap().starts_with("[smtp] ca_file:"));
    }

    #[test]
    fn ports_follow_the_tls_mode() {
        assert_eq!(SmtpTls::None.default_port(), 25);
        assert_eq!(SmtpTls::Starttls.default_port(), 587);
        assert_eq!(SmtpTls::Tls.default_port(), 465);
    }
}
