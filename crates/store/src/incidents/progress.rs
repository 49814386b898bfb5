//! Lets intake answer only once the alerts it stored are in their incidents, so a
//! burst is slowed to the pace grouping keeps instead of piling up ahead of it. Each
//! commit of alert events takes a ticket and wakes the grouping engine; the engine
//! says which tickets a pass that left nothing behind has covered.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The longest intake waits for grouping: the alerts are stored already, so past
/// this it answers anyway and grouping catches up by itself.
const LONGEST_WAIT: Duration = Duration::from_secs(5);

pub(crate) struct GroupingProgress {
    issued: AtomicU64,
    covered: watch::Sender<u64>,
    wake: Notify,
    /// Grouping engines running in this process; with none, nobody waits.
    listeners: AtomicUsize,
}

impl Default for GroupingProgress {
    fn default() -> Self {
        GroupingProgress {
            issued: AtomicU64::new(0),
            covered: watch::channel(0).0,
            wake: Notify::new(),
            listeners: AtomicUsize::new(0),
        }
    }
}

impl GroupingProgress {
    /// After a commit of alert events: a ticket that any pass started from now on covers.
    pub(crate) fn committed(&self) -> u64 {
        let ticket = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        ticket
    }

    /// Every ticket up to `ticket` is grouped.
    fn cover(&self, ticket: u64) {
        self.covered.send_modify(|c| *c = (*c).max(ticket));
    }

    /// Until a pass covers `ticket` (at most [`LONGEST_WAIT`]); at once when no
    /// grouping engine runs here.
    pub(crate) async fn grouped(&self, ticket: u64) {
        if self.listeners.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut covered = self.covered.subscribe();
        let _ = tokio::time::timeout(LONGEST_WAIT, covered.wait_for(|c| *c >= ticket)).await;
    }
}

/// The grouping engine's side, while it runs.
pub struct GroupingListener {
    store: crate::Store,
}

impl GroupingListener {
    pub(crate) fn new(store: crate::Store) -> Self {
        store.progress().listeners.fetch_add(1, Ordering::SeqCst);
        GroupingListener { store }
    }

    /// The last ticket issued: read before a pass, it is what the pass covers once it
    /// leaves nothing behind.
    pub fn issued(&self) -> u64 {
        self.store.progress().issued.load(Ordering::SeqCst)
    }

    /// Every ticket up to `ticket` is grouped.
    pub fn covered(&self, ticket: u64) {
        self.store.progress().cover(ticket);
    }

    /// Returns when alert events were committed since the last call (at once if some
    /// were meanwhile).
    pub async fn woken(&self) {
        self.store.progress().wake.notified().await
    }
}

impl Drop for GroupingListener {
    fn drop(&mut self) {
        self.store
            .progress()
            .listeners
            .fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn waits(progress: &GroupingProgress, ticket: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(50), progress.grouped(ticket))
            .await
            .is_err()
    }

    #[tokio::test]
    async fn a_ticket_waits_only_for_an_engine_and_until_a_pass_covers_it() {
        let progress = GroupingProgress::default();
        assert!(
            !waits(&progress, progress.committed()).await,
            "no engine here"
        );

        progress.listeners.fetch_add(1, Ordering::SeqCst);
        let (first, second) = (progress.committed(), progress.committed());
        assert!(second > first);
        assert!(waits(&progress, first).await);
        progress.cover(first);
        assert!(!waits(&progress, first).await);
        assert!(
            waits(&progress, second).await,
            "a later ticket is not covered"
        );
        progress.cover(second);
        progress.cover(first);
        assert!(!waits(&progress, second).await, "coverage never goes back");
    }
}
