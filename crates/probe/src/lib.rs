//! Probes: what a target serves live.
//! - **TLS**: the chain a server presents, read even when it is expired or untrusted —
//!   the handshake records the verifier's verdict instead of failing on it — with each
//!   certificate's subject, issuer, serial, validity and SPKI SHA-256, and the verdict
//!   (expired, not yet valid, untrusted, name mismatch) judged at the caller's `now`.
//! - **HTTP JSON**: the expiry date at a JSON pointer of a URL's answer.
//!
//! - **Scanning** (`scan`): certificates and pins inside shipped builds.
//!
//! Probes are bounded by a timeout and answer a `Finding` whatever happens; a probe that
//! cannot read its target says why (`Outcome::Failed`).

pub mod certificates;
pub mod scan;

pub use certificates::certificate_of;
use jiff::Timestamp;
use muster_domain::renewals::probes::{Finding, Outcome};
use muster_domain::renewals::{Renewable, Verify};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long one probe may take, connection and answer together.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Probes running at once.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// The most of an HTTP JSON answer read.
const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Shared probing state: the roots certificates are judged against and the HTTP
/// client.
#[derive(Debug, Clone)]
pub struct Prober {
    verifier: Arc<WebPkiServerVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    http: reqwest::Client,
    timeout: Duration,
}

impl Prober {
    /// A prober trusting the Mozilla roots plus the PEM certificates in `extra_roots`
    /// (an internal CA), with a `timeout` per probe.
    pub fn new(extra_roots: &[u8], timeout: Duration) -> Result<Prober, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for found in certificates::find(extra_roots) {
            roots
                .add(CertificateDer::from(found.der))
                .map_err(|e| format!("extra root at byte {}: {e}", found.offset))?;
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("muster-probe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Prober {
            verifier,
            provider,
            http,
            timeout,
        })
    }

    /// Probes every planned target (key, how) of every renewable, at most
    /// `concurrency` at a time; answers the findings in the order given.
    pub async fn probe_all(
        &self,
        plans: Vec<(Renewable, Vec<(String, Verify)>)>,
        concurrency: usize,
        now: Timestamp,
    ) -> Vec<(Renewable, Finding)> {
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut n = 0;
        for (renewable, targets) in plans {
            let renewable = Arc::new(renewable);
            for (key, how) in targets {
                let (prober, permits, renewable) =
                    (self.clone(), permits.clone(), renewable.clone());
                let index = n;
                n += 1;
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await.expect("never closed");
                    (index, renewable, prober.probe(&key, &how, now).await)
                });
            }
        }
        let mut findings = Vec::with_capacity(n);
        while let Some(done) = tasks.join_next().await {
            if let Ok(found) = done {
                findings.push(found);
            }
        }
        findings.sort_by_key(|(index, _, _)| *index);
        findings
            .into_iter()
            .map(|(_, renewable, finding)| ((*renewable).clone(), finding))
            .collect()
    }

    /// One probe of one target; a target verified by attestation is not probed.
    pub async fn probe(&self, target: &str, how: &Verify, now: Timestamp) -> Finding {
        match how {
            Verify::Tls { host, sni } => self.tls(target, host, sni.as_deref(), now).await,
            Verify::HttpJson { url, pointer } => self.http_json(target, url, pointer, now).await,
            Verify::Manual => Finding {
                target: target.to_string(),
                method: "manual".into(),
                at: now,
                outcome: Outcome::Failed {
                    error: "verified by attestation, not probed".into(),
                },
            },
        }
    }

    /// The certificate served at `host` (`name:port`), presenting `sni` (else the
    /// host's name), judged at `now`.
    pub async fn tls(
        &self,
        target: &str,
        host: &str,
        sni: Option<&str>,
        now: Timestamp,
    ) -> Finding {
        let outcome = match tokio::time::timeout(self.timeout, self.handshake(host, sni, now)).await
        {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => Outcome::Failed { error },
            Err(_) => Outcome::Failed {
                error: format!("no answer within {} s", self.timeout.as_secs()),
            },
        };
        Finding {
            target: target.to_string(),
            method: "tls".into(),
            at: now,
            outcome,
        }
    }

    async fn handshake(
        &self,
        host: &str,
        sni: Option<&str>,
        now: Timestamp,
    ) -> Result<Outcome, String> {
        let name = sni.unwrap_or_else(|| host.rsplit_once(':').map_or(host, |(n, _)| n));
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("{name:?} is not a server name: {e}"))?;
        let recorder = Arc::new(Recorder {
            inner: self.verifier.clone(),
            now: UnixTime::since_unix_epoch(Duration::from_secs(now.as_second().max(0) as u64)),
            verdict: Mutex::new(None),
        });
        let config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
        let tcp = TcpStream::connect(host)
            .await
            .map_err(|e| format!("cannot connect to {host}: {e}"))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host} failed: {e}"))?;
        let (_, session) = tls.get_ref();
        let chain: Vec<_> = session
            .peer_certificates()
            .ok_or_else(|| format!("{host} presented no certificate"))?
            .iter()
            .map(|der| certificate_of(der.as_ref()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{host} presented a certificate that does not parse: {e}"))?;
        let leaf: &muster_domain::renewals::probes::Certificate = chain
            .first()
            .ok_or_else(|| format!("{host} presented an empty chain"))?;
        let mut problems = Vec::new();
        if leaf.not_after <= now {
            problems.push("expired".to_string());
        } else if leaf.not_before > now {
            problems.push("not yet valid".to_string());
        }
        if let Some(error) = recorder.verdict.lock().expect("verdict lock").take() {
            match error {
                rustls::Error::InvalidCertificate(
                    CertificateError::Expired
                    | CertificateError::ExpiredContext { .. }
                    | CertificateError::NotValidYet
                    | CertificateError::NotValidYetContext { .. },
                ) => {}
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ) => problems.push(format!("name mismatch: not valid for {name}")),
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                    problems.push("untrusted: unknown issuer".to_string())
                }
                other => problems.push(format!("untrusted: {other}")),
            }
        }
        Ok(Outcome::Seen {
            expires_at: leaf.not_after,
            identity: Some(leaf.spki_sha256.clone()),
            problems,
            chain,
        })
    }

    /// The expiry at `pointer` of the JSON `url` answers: an RFC 3339 instant, a date
    /// (`2027-02-01`, midnight UTC) or Unix seconds.
    pub async fn http_json(
        &self,
        target: &str,
        url: &str,
        pointer: &str,
        now: Timestamp,
    ) -> Finding {
        let outcome = match self.read_json(url, pointer).await {
            Ok(expires_at) => Outcome::Seen {
                expires_at,
                identity: None,
                chain: Vec::new(),
                problems: if expires_at <= now {
                    vec!["expired".to_string()]
                } else {
                    Vec::new()
                },
            },
            Err(error) => Outcome::Failed { error },
        };
        Finding {
            target: target.to_string(),
            method: "http_json".into(),
            at: now,
            outcome,
        }
    }

    async fn read_json(&self, url: &str, pointer: &str) -> Result<Timestamp, String> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url} failed: {}", error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {url} answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading {url} failed: {}", error_chain(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JSON_BYTES {
                return Err(format!("{url} answered more than {MAX_JSON_BYTES} bytes"));
            }
        }
        let json: Value =
            serde_json::from_slice(&body).map_err(|e| format!("{url} did not answer JSON: {e}"))?;
        let value = json
            .pointer(pointer)
            .ok_or_else(|| format!("{url} has nothing at {pointer}"))?;
        // The value itself is not repeated: the URL may answer more than an expiry.
        expiry_of(value).ok_or_else(|| {
            format!(
                "the value at {pointer} of {url} is not a date (an RFC 3339 instant, a date or Unix seconds)"
            )
        })
    }
}

/// A date as services write them: an RFC 3339 instant, a date (midnight UTC), or Unix
/// seconds.
fn expiry_of(value: &Value) -> Option<Timestamp> {
    match value {
        Value::Number(n) => Timestamp::from_second(n.as_i64()?).ok(),
        Value::String(text) => text.parse::<Timestamp>().ok().or_else(|| {
            let date: jiff::civil::Date = text.parse().ok()?;
            date.to_zoned(jiff::tz::TimeZone::UTC)
                .ok()
                .map(|z| z.timestamp())
        }),
        _ => None,
    }
}

/// An error with its causes, as people need to read it (reqwest's top line alone says
/// only "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Accepts every certificate so the chain can be read, recording what the real
/// verifier (judging at the probe's `now`) said; handshake signatures are still checked.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    now: UnixTime,
    verdict: Mutex<Option<rustls::Error>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Err(error) = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            self.now,
        ) {
            *self.verdict.lock().expect("verdict lock") = Some(error);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expiries_read_as_services_write_them() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            expiry_of(&json!("2027-02-01T00:00:00Z")),
            Some(at("2027-02-01T00:00:00Z"))
        );
        assert_eq!(
            expiry_of(&json!("2027-02-01")),
            Some(at("2027-02-01T00:00:00Z"))
        );
        assert_eq!(
            expiry_of(&json!(1801440000)),
            Some(at("2027-02-01T00:00:00Z"))
        );
        assert_eq!(expiry_of(&json!("soon")), None);
        assert_eq!(expiry_of(&json!(null)), None);
    }
}
