//! The audit trail: appended inside the transaction of the change it records, chained
//! under a lock on the head row, read back by entity, actor and time, and verified.

use crate::{Result, Store, dispatch, per_dialect};
use muster_domain::audit::{AuditEntry, ChainBreak, ChainVerifier, NewAuditEntry};

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub entity: Option<String>,
    pub actor: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Only entries with `seq` below this (the cursor of the previous page).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// The outcome of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    pub head: String,
}

type AuditRow = (
    i64,
    i64,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
);

fn from_row(r: AuditRow) -> AuditEntry {
    AuditEntry {
        seq: r.0,
        at: r.1,
        actor: r.2,
        on_behalf_of: r.3,
        action: r.4,
        entity: r.5,
        before: r.6,
        after: r.7,
        reason: r.8,
        prev_hash: r.9,
        hash: r.10,
    }
}

const COLUMNS: &str = "seq, at, actor, on_behalf_of, action, entity, before_state, after_state, reason, prev_hash, hash";

impl Store {
    pub async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        dispatch!(self, list(filter))
    }

    /// The newest entry's number and hash (`0` and the genesis hash when empty).
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        dispatch!(self, head())
    }

    /// Appends entries in a transaction of their own (for actions that change nothing
    /// else, such as a sign-in).
    pub async fn audit_append(&self, entries: Vec<NewAuditEntry>) -> Result<()> {
        let now = self.now_ms();
        dispatch!(self, append_alone(now, entries))
    }

    /// Checks every stored entry against the one before it and against the stored head,
    /// and, when given, that a head recorded elsewhere (at any time) is still in the chain.
    pub async fn audit_verify(
        &self,
        recorded_head: Option<&str>,
    ) -> Result<Result<Verified, ChainBreak>> {
        let mut verifier = ChainVerifier::expecting(recorded_head);
        let mut after = 0i64;
        loop {
            let page: Vec<AuditEntry> = dispatch!(self, page_after(after, 1000))?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for entry in &page {
                if let Err(broken) = verifier.check(entry) {
                    return Ok(Err(broken));
                }
            }
        }
        let (head_seq, head_hash) = self.audit_head().await?;
        if head_hash != verifier.head() {
            return Ok(Err(ChainBreak::HeadMismatch {
                expected: format!("{head_hash} (entry {head_seq})"),
                found: verifier.head().to_string(),
            }));
        }
        if let Err(broken) = verifier.finish() {
            return Ok(Err(broken));
        }
        Ok(Ok(Verified {
            entries: verifier.count,
            head: verifier.head().to_string(),
        }))
    }
}

per_dialect!("audit/sql.rs");
