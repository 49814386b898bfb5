//! Renewals' persistence: which reminders went out for which expiry, and the renewal
//! pipeline of each expiry with its history. The registry itself is the catalog's
//! `renewables` section; the rules are the domain's. When a renewal is done, the
//! renewable's expiry in the catalog moves in the same transaction.

use crate::notify::NewNotification;
use crate::{Result, Store, StoreError, dispatch, per_dialect};
use jiff::Timestamp;
use muster_domain::audit::Actor;
use muster_domain::renewals::Renewable;
use muster_domain::renewals::pipeline::{Move, Renewal};
use serde::Serialize;
use std::collections::HashMap;

/// One move of a renewal, as its history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub stage: String,
    pub target: Option<String>,
    pub actor: String,
    pub text: String,
}

/// The renewal of one expiry, with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenewalRecord {
    pub renewal: Renewal,
    pub done_at: Option<Timestamp>,
    pub history: Vec<HistoryEntry>,
}

fn from_ms(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("time {ms}: {e}")))
}

/// A reminder to record and send: the offsets it counts as sent for this expiry, and
/// its messages.
#[derive(Debug, Clone)]
pub struct Reminder {
    pub renewable: String,
    pub expires_at: Timestamp,
    pub covers: Vec<i64>,
    pub messages: Vec<NewNotification>,
}

impl Store {
    /// The reminder offsets already sent and when, by renewable and expiry (Unix ms).
    pub async fn renewal_reminders_sent(
        &self,
    ) -> Result<HashMap<(String, i64), HashMap<i64, Timestamp>>> {
        let rows: Vec<(String, i64, i64, i64)> = dispatch!(self, sent())?;
        let mut sent: HashMap<(String, i64), HashMap<i64, Timestamp>> = HashMap::new();
        for (renewable, expires_at, offset, at) in rows {
            let at = Timestamp::from_millisecond(at)
                .map_err(|e| StoreError::Corrupt(format!("reminder time {at}: {e}")))?;
            sent.entry((renewable, expires_at))
                .or_default()
                .insert(offset, at);
        }
        Ok(sent)
    }

    /// Records reminders as sent and queues their messages in one transaction; a
    /// reminder another server recorded first is not sent again. Answers how many
    /// were sent.
    pub async fn send_renewal_reminders(&self, reminders: &[Reminder]) -> Result<usize> {
        let now = self.clock().now().as_millisecond();
        dispatch!(self, record(reminders, now))
    }
}

impl Store {
    /// The renewal of `renewable`'s expiry `expires_at`, if any move was recorded.
    pub async fn renewal(
        &self,
        renewable: &str,
        expires_at: Timestamp,
    ) -> Result<Option<RenewalRecord>> {
        dispatch!(self, renewal(renewable, expires_at.as_millisecond()))
    }

    /// Moves the renewal of `renewable`'s current expiry (starting it when this is
    /// its first move): refused naming the field when the pipeline does not allow it,
    /// and then nothing changes. When the move makes it done, the renewable's expiry
    /// in the catalog moves to the new one in the same transaction.
    pub async fn move_renewal(
        &self,
        actor: &Actor,
        renewable: &Renewable,
        request: &Move,
    ) -> Result<RenewalRecord> {
        let now = self.clock().now();
        dispatch!(self, move_renewal(actor, renewable, request, now))?;
        self.renewal(&renewable.id, renewable.expires_at)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("renewal of {} vanished", renewable.id)))
    }
}

per_dialect!("renewals/sql.rs");
