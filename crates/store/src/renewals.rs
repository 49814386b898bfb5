//! Renewals' persistence: which reminders went out for which expiry. The registry
//! itself is the catalog's `renewables` section; the rules are the domain's.

use crate::notify::NewNotification;
use crate::{Result, Store, StoreError, dispatch, per_dialect};
use jiff::Timestamp;
use std::collections::HashMap;

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

per_dialect!("renewals/sql.rs");
