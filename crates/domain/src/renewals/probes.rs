//! What a probe saw on one target, and what follows from it: a later expiry than
//! recorded verifies the target by itself at whatever stage (so certificates renewed
//! automatically complete their renewal without anyone typing); a served key that
//! differs from the identity recorded at `received` is a mismatch and verifies
//! nothing; an expired certificate is an outage.

use super::pipeline::{Renewal, Step};
use super::{Renewable, Target, Verify};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One certificate of a served chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub subject: String,
    pub issuer: String,
    /// Hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: the key's identity, which pins
    /// name and which stays the same across renewals that keep the key.
    pub spki_sha256: String,
}

/// What a probe found on a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// It answered: the expiry it serves, the identity (the leaf's SPKI for TLS),
    /// the chain (leaf first, TLS only) and what is wrong with it, if anything
    /// (`expired`, `not yet valid`, `untrusted: …`, `name mismatch: …`).
    Seen {
        expires_at: Timestamp,
        identity: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        chain: Vec<Certificate>,
        #[serde(default)]
        problems: Vec<String>,
    },
    /// It could not be read: no answer, a timeout, garbage.
    Failed { error: String },
}

/// One probe of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub target: String,
    /// `tls` or `http_json`.
    pub method: String,
    pub at: Timestamp,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Finding {
    /// "valid, expires 2027-04-15", "valid, expires 2026-11-30 (in 7 days)", "expired;
    /// untrusted: unknown issuer; expires 2026-11-20", "failed: …".
    pub fn verdict(&self) -> String {
        match &self.outcome {
            Outcome::Seen {
                expires_at,
                problems,
                ..
            } if problems.is_empty() => {
                let days = super::days_left(*expires_at, self.at);
                let soon = match days {
                    0 => " (within a day)".to_string(),
                    1 => " (in 1 day)".to_string(),
                    d if d <= 30 => format!(" (in {d} days)"),
                    _ => String::new(),
                };
                format!("valid, expires {}{soon}", expires_at.strftime("%Y-%m-%d"))
            }
            Outcome::Seen {
                expires_at,
                problems,
                ..
            } => format!(
                "{}; expires {}",
                problems.join("; "),
                expires_at.strftime("%Y-%m-%d")
            ),
            Outcome::Failed { error } => format!("failed: {error}"),
        }
    }
}

/// The targets of `renewable` a probe can read, with how. A host target under a
/// renewable-wide `tls` check is probed at its own host (with its own SNI, else the
/// check's).
pub fn probed_targets(renewable: &Renewable) -> Vec<(&Target, Verify)> {
    renewable
        .targets
        .iter()
        .filter_map(|t| match (renewable.verification(t), &t.host, &t.verify) {
            (Verify::Manual, _, _) => None,
            (Verify::Tls { sni, .. }, Some(host), None) => Some((
                t,
                Verify::Tls {
                    host: host.clone(),
                    sni: t.sni.clone().or(sni),
                },
            )),
            (how, _, _) => Some((t, how)),
        })
        .collect()
}

/// What follows from a finding for the renewal of the current expiry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effect {
    /// The history's words for each step the probe took (received, applied,
    /// verified), in order; empty when it verified nothing.
    pub steps: Vec<(String, String)>,
    /// A served key other than the one recorded at `received`.
    pub mismatch: Option<String>,
    /// The served certificate has expired: an outage on the renewable's services.
    pub expired: bool,
}

/// Who the pipeline records for what a probe did.
pub const PROBE: &str = "probe";

/// Applies `finding` to `renewal` (of `renewable`'s current expiry): a later expiry
/// than the target's recorded one verifies the target by itself — received (the seen
/// expiry and identity, when nobody recorded them), applied and verified, with the
/// finding as evidence — unless it serves another key than the one recorded.
pub fn observe(
    renewable: &Renewable,
    renewal: &mut Renewal,
    finding: &Finding,
    now: Timestamp,
) -> Effect {
    let mut effect = Effect::default();
    let Outcome::Seen {
        expires_at,
        identity,
        problems,
        ..
    } = &finding.outcome
    else {
        return effect;
    };
    effect.expired = *expires_at <= now;
    let Some(target) = renewable.target(&finding.target) else {
        return effect;
    };
    if *expires_at <= target.expires_at {
        return effect;
    }
    // Only a key a person recorded at `received` is a promise; one a probe saw on
    // another target (with its own certificate) is not.
    let recorded_by_person = renewal.received.as_ref().is_some_and(|r| r.by != PROBE);
    if let (Some(recorded), Some(served)) = (&renewal.identity, identity)
        && recorded_by_person
        && recorded != served
    {
        effect.mismatch = Some(format!(
            "{} serves key {served}, not the {recorded} received; it is not verified",
            finding.target
        ));
        return effect;
    }
    let date = expires_at.strftime("%Y-%m-%d");
    let step = Step {
        by: PROBE.to_string(),
        at: now,
    };
    if renewal.received.is_none() {
        renewal.received = Some(step.clone());
        renewal.new_expires_at = Some(*expires_at);
        renewal.identity = identity.clone();
        effect.steps.push((
            "received".into(),
            format!(
                "Received: the probe sees a renewed item on {} expiring {date}",
                finding.target
            ),
        ));
    }
    let Some(progress) = renewal.targets.get_mut(&finding.target) else {
        return effect;
    };
    if progress.applied.is_none() {
        progress.applied = Some(step.clone());
        effect.steps.push((
            "applied".into(),
            format!("Applied on {} (seen by the probe)", finding.target),
        ));
    }
    if progress.verified.is_none() {
        progress.verified = Some(step);
        progress.expires_at = Some(*expires_at);
        let key = identity
            .as_ref()
            .map(|i| format!(", key {i}"))
            .unwrap_or_default();
        let caveat = if problems.is_empty() {
            String::new()
        } else {
            format!(" ({})", problems.join("; "))
        };
        progress.evidence = Some(format!(
            "{} probe: serves an item expiring {date}{key}{caveat}",
            finding.method
        ));
        let (all, _, verified) = renewal.progress();
        effect.steps.push((
            "verified".into(),
            format!(
                "Verified on {} by the probe: expires {date}; verified {verified} of {all}",
                finding.target
            ),
        ));
    }
    effect
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn certificate() -> Renewable {
        Renewable::read(&json!({
            "id": "edge", "name": "Edge certificate", "kind": "certificate", "owner": "platform",
            "expires_at": "2027-01-15T00:00:00Z",
            "targets": [{"host": "a.test:443"}, {"host": "b.test:443"}],
            "verify": {"tls": "a.test:443"},
        }))
        .unwrap()
    }

    fn seen(target: &str, expires: &str, key: &str) -> Finding {
        Finding {
            target: target.into(),
            method: "tls".into(),
            at: at("2027-01-01T00:00:00Z"),
            outcome: Outcome::Seen {
                expires_at: at(expires),
                identity: Some(key.into()),
                chain: vec![],
                problems: vec![],
            },
        }
    }

    #[test]
    fn a_later_expiry_verifies_the_target_at_whatever_stage() {
        let renewable = certificate();
        let now = at("2027-01-01T00:00:00Z");
        let mut renewal = Renewal::start(&renewable, now);
        let same = observe(
            &renewable,
            &mut renewal,
            &seen("a.test:443", "2027-01-15T00:00:00Z", "sha256:aa"),
            now,
        );
        assert!(same.steps.is_empty(), "not renewed yet");
        let renewed = observe(
            &renewable,
            &mut renewal,
            &seen("a.test:443", "2027-04-15T00:00:00Z", "sha256:bb"),
            now,
        );
        let stages: Vec<&str> = renewed.steps.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(stages, ["received", "applied", "verified"]);
        assert_eq!(renewal.identity.as_deref(), Some("sha256:bb"));
        assert_eq!(renewal.progress(), (2, 1, 1));
        assert!(!renewal.is_done());
        // The second host serves its own new certificate: no mismatch, done.
        let second = observe(
            &renewable,
            &mut renewal,
            &seen("b.test:443", "2027-04-16T00:00:00Z", "sha256:cc"),
            now,
        );
        assert_eq!(second.steps.len(), 2);
        assert!(renewal.is_done());
        assert_eq!(
            renewal.targets["b.test:443"].expires_at,
            Some(at("2027-04-16T00:00:00Z"))
        );
    }

    #[test]
    fn host_targets_are_probed_at_their_own_host() {
        let renewable = certificate();
        let plans: Vec<Verify> = probed_targets(&renewable)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            plans,
            [
                Verify::Tls {
                    host: "a.test:443".into(),
                    sni: None
                },
                Verify::Tls {
                    host: "b.test:443".into(),
                    sni: None
                },
            ]
        );
        let licence = Renewable::of_catalog(&crate::catalog::seed_world()).remove(0);
        assert!(probed_targets(&licence).is_empty(), "attested by hand");
    }

    #[test]
    fn another_key_than_received_is_a_mismatch_and_verifies_nothing() {
        let renewable = certificate();
        let now = at("2027-01-01T00:00:00Z");
        let mut renewal = Renewal::start(&renewable, now);
        renewal.identity = Some("sha256:new".into());
        renewal.received = Some(Step {
            by: "pia".into(),
            at: now,
        });
        let effect = observe(
            &renewable,
            &mut renewal,
            &seen("a.test:443", "2027-04-15T00:00:00Z", "sha256:other"),
            now,
        );
        assert!(effect.steps.is_empty());
        assert!(
            effect
                .mismatch
                .unwrap()
                .contains("serves key sha256:other, not the sha256:new received")
        );
        assert_eq!(renewal.progress(), (2, 0, 0));
    }

    #[test]
    fn an_expired_certificate_is_an_outage_and_a_failure_is_nothing() {
        let renewable = certificate();
        let now = at("2027-01-20T00:00:00Z");
        let mut renewal = Renewal::start(&renewable, now);
        let expired = observe(
            &renewable,
            &mut renewal,
            &seen("a.test:443", "2027-01-15T00:00:00Z", "sha256:aa"),
            now,
        );
        assert!(expired.expired);
        let failed = Finding {
            outcome: Outcome::Failed {
                error: "connection refused".into(),
            },
            ..seen("a.test:443", "2027-01-15T00:00:00Z", "")
        };
        assert_eq!(
            observe(&renewable, &mut renewal, &failed, now),
            Effect::default()
        );
        assert_eq!(failed.verdict(), "failed: connection refused");
    }
}
