//! Grouping: reads the alert event stream (and held alerts due for another look) and
//! places each alert into its incident, with the catalog's rules and the silences in
//! force. One batch is one transaction under the `incidents` lock, so servers sharing
//! a PostgreSQL take turns and never open two incidents for one group; step one of each
//! incident it opens fires in that transaction.

use crate::escalation::Policies;
use muster_store::Store;
use muster_store::incidents::{Grouping, GroupingListener, GroupingPass};

/// Alert events looked at per transaction.
pub const BATCH: usize = 1000;

/// Runs until aborted. Intake in this process wakes it (through `listener`, taken
/// before the task starts so no request slips past it) and waits for the pass that
/// covers its alerts; other servers' alerts and held alerts are seen at the next tick.
pub async fn run(store: Store, listener: GroupingListener, public_url: String) {
    loop {
        let issued = listener.issued();
        match group_once(&store, &public_url).await {
            Ok(pass) => {
                if pass.drained {
                    // Nothing committed before the pass began is left.
                    listener.covered(issued);
                }
                if pass.looked_at > 0 {
                    // Work found: look again at once (more may have come meanwhile).
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "grouping alerts into incidents failed; retrying"),
        }
        tokio::select! {
            _ = listener.woken() => {}
            _ = tokio::time::sleep(super::TICK) => {}
        }
    }
}

/// One batch.
pub async fn group_once(store: &Store, public_url: &str) -> muster_store::Result<GroupingPass> {
    let services = store.grouping_due(BATCH).await?;
    if services.is_empty() {
        return Ok(GroupingPass {
            looked_at: 0,
            drained: true,
        });
    }
    let snapshot = store.catalog().await?;
    let silences = store.silences(None).await?;
    let owners: Vec<String> = services
        .iter()
        .filter_map(|id| snapshot.catalog.service(id))
        .map(|service| service.owner.clone())
        .collect();
    let escalator = Policies::load(store, snapshot.clone(), public_url, owners).await?;
    let grouping = Grouping {
        catalog: &snapshot.catalog,
        silences: &silences,
        escalator: &escalator,
    };
    store.group_alerts(&grouping, BATCH).await
}
