//! The audit trail's rules: each entry commits to the one before it by a SHA-256 hash,
//! so altering, removing or reordering any stored entry breaks the chain.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash the first entry commits to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry as stored. `before` and `after` are JSON text, hashed as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// Who acted: `user:alice`, `token:ci-deploy`, `cli:root` (the OS user), `system:demo`.
    pub actor: String,
    /// The catalog person on whose behalf an admin acted, when not the actor's own.
    pub on_behalf_of: Option<String>,
    /// What was done: `create`, `update`, `delete`, `sign_in`, …
    pub action: String,
    /// What it was done to: `service:forms-printing`, `user:alice`, …
    pub entity: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Who performs an action, as the audit records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `user:alice`, `token:ci-deploy`, `cli:root` (the OS user), `system:demo`.
    pub label: String,
    /// The catalog person behind the actor, when linked.
    pub person: Option<String>,
    /// Set when an admin acts on behalf of another person.
    pub on_behalf_of: Option<String>,
    /// Why, from `X-Muster-Reason` or a form field.
    pub reason: Option<String>,
}

impl Actor {
    pub fn new(label: impl Into<String>) -> Actor {
        Actor {
            label: label.into(),
            person: None,
            on_behalf_of: None,
            reason: None,
        }
    }

    pub fn with_reason(mut self, reason: Option<String>) -> Actor {
        self.reason = reason;
        self
    }

    /// An audit entry by this actor.
    pub fn entry(
        &self,
        action: &str,
        entity: String,
        before: Option<String>,
        after: Option<String>,
    ) -> NewAuditEntry {
        NewAuditEntry {
            actor: self.label.clone(),
            on_behalf_of: self.on_behalf_of.clone(),
            action: action.to_string(),
            entity,
            before,
            after,
            reason: self.reason.clone(),
        }
    }
}

/// An entry before it is chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub actor: String,
    pub on_behalf_of: Option<String>,
    pub action: String,
    pub entity: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub reason: Option<String>,
}

impl NewAuditEntry {
    /// Chains the entry after `prev_hash` as number `seq` at `at` (Unix ms).
    pub fn chain(self, seq: i64, at: i64, prev_hash: &str) -> AuditEntry {
        let mut entry = AuditEntry {
            seq,
            at,
            actor: self.actor,
            on_behalf_of: self.on_behalf_of,
            action: self.action,
            entity: self.entity,
            before: self.before,
            after: self.after,
            reason: self.reason,
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        entry
    }
}

/// The hash of an entry: SHA-256 over the previous hash and every field, in an
/// unambiguous JSON encoding.
pub fn entry_hash(e: &AuditEntry) -> String {
    let fields = serde_json::json!([
        e.prev_hash,
        e.seq,
        e.at,
        e.actor,
        e.on_behalf_of,
        e.action,
        e.entity,
        e.before,
        e.after,
        e.reason
    ]);
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

/// Where a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("audit entry {seq}: its content does not match its hash (altered)")]
    Altered { seq: i64 },
    #[error(
        "audit entry {seq}: it does not follow entry {prev} (an entry before it was altered or removed)"
    )]
    Unlinked { seq: i64, prev: i64 },
    #[error("{}", missing_message(*expected, *found))]
    Missing { expected: i64, found: i64 },
    #[error(
        "the chain ends at {found} but the stored head is {expected} (entries were removed from the end)"
    )]
    HeadMismatch { expected: String, found: String },
    #[error(
        "the recorded head {head} is not in the chain (entries were removed or rewritten since it was recorded)"
    )]
    HeadMissing { head: String },
}

fn missing_message(expected: i64, found: i64) -> String {
    if found == expected + 1 {
        format!("audit entry {expected} is missing (removed)")
    } else {
        format!(
            "audit entries {expected} to {} are missing (removed)",
            found - 1
        )
    }
}

/// Walks entries in `seq` order, checking each against the one before, and whether a
/// head recorded elsewhere (at any earlier time) is still part of the chain.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev_hash: String,
    prev_seq: i64,
    pub count: u64,
    recorded_head: Option<String>,
    recorded_head_seen: bool,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier::expecting(None)
    }
}

impl ChainVerifier {
    /// A verifier that also checks `recorded_head` (a hash kept outside the database)
    /// is still in the chain.
    pub fn expecting(recorded_head: Option<&str>) -> Self {
        Self {
            prev_hash: GENESIS.to_string(),
            prev_seq: 0,
            count: 0,
            recorded_head: recorded_head.map(str::to_owned),
            recorded_head_seen: recorded_head == Some(GENESIS),
        }
    }

    pub fn check(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        if e.seq != self.prev_seq + 1 {
            return Err(ChainBreak::Missing {
                expected: self.prev_seq + 1,
                found: e.seq,
            });
        }
        if entry_hash(e) != e.hash {
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        if e.prev_hash != self.prev_hash {
            return Err(ChainBreak::Unlinked {
                seq: e.seq,
                prev: self.prev_seq,
            });
        }
        self.prev_hash = e.hash.clone();
        self.prev_seq = e.seq;
        self.count += 1;
        if self.recorded_head.as_deref() == Some(e.hash.as_str()) {
            self.recorded_head_seen = true;
        }
        Ok(())
    }

    /// The hash of the last entry checked (the genesis hash when there was none).
    pub fn head(&self) -> &str {
        &self.prev_hash
    }

    /// Once every entry is checked: was the recorded head found?
    pub fn finish(&self) -> Result<(), ChainBreak> {
        match &self.recorded_head {
            Some(head) if !self.recorded_head_seen => {
                Err(ChainBreak::HeadMissing { head: head.clone() })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(n: i64) -> NewAuditEntry {
        NewAuditEntry {
            actor: format!("user:u{n}"),
            on_behalf_of: None,
            action: "update".into(),
            entity: format!("service:s{n}"),
            before: Some("{}".into()),
            after: Some(format!("{{\"n\":{n}}}")),
            reason: None,
        }
    }

    fn chain(len: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        (1..=len)
            .map(|seq| {
                let e = entry(seq).chain(seq, 1_000 * seq, &prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry], head: Option<&str>) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::expecting(head);
        for e in entries {
            v.check(e)?;
        }
        v.finish()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        verify(&c, Some(&c[4].hash)).unwrap();
        verify(&c, Some(&c[1].hash)).unwrap();
        verify(&c, None).unwrap();
    }

    #[test]
    fn truncation_is_caught_against_the_head() {
        let c = chain(5);
        let head = c[4].hash.clone();
        assert!(matches!(
            verify(&c[..4], Some(&head)),
            Err(ChainBreak::HeadMissing { .. })
        ));
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut c = chain(5);
        c.remove(2);
        let broken = verify(&c, None).unwrap_err();
        assert_eq!(broken.to_string(), "audit entry 3 is missing (removed)");
        assert_eq!(
            verify(&c, None),
            Err(ChainBreak::Missing {
                expected: 3,
                found: 4
            })
        );
    }

    proptest! {
        /// Changing any field of any entry breaks the chain at that entry.
        #[test]
        fn any_alteration_is_caught(victim in 0usize..6, field in 0usize..6, text in "[a-z]{1,8}") {
            let mut c = chain(6);
            let e = &mut c[victim];
            match field {
                0 => e.actor.push_str(&text),
                1 => e.action.push_str(&text),
                2 => e.entity.push_str(&text),
                3 => e.after = Some(text.clone()),
                4 => e.reason = Some(text.clone()),
                _ => e.at += 1,
            }
            let seq = e.seq;
            prop_assert_eq!(verify(&c, None), Err(ChainBreak::Altered { seq }));
        }
    }
}
