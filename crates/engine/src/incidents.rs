//! Grouping: reads the alert event stream (and held alerts due for another look) and
//! places each alert into its incident, with the catalog's rules and the silences in
//! force. One batch is one transaction under the `incidents` lock, so servers sharing
//! a PostgreSQL take turns and never open two incidents for one group; step one of each
//! incident it opens fires in that transaction.

use crate::escalation::Policies;
use muster_store::Store;
use muster_store::incidents::Grouping;

/// Alert events looked at per transaction.
pub const BATCH: usize = 1000;

pub async fn run(store: Store, public_url: String) {
    loop {
        match group_once(&store, &public_url).await {
            // Work found: look again at once (more may have fallen due meanwhile);
            // only an idle look waits for the next tick.
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "grouping alerts into incidents failed; retrying"),
        }
        tokio::time::sleep(super::TICK).await;
    }
}

/// One batch; returns how many events and held alerts it looked at.
pub async fn group_once(store: &Store, public_url: &str) -> muster_store::Result<usize> {
    let services = store.grouping_due(BATCH).await?;
    if services.is_empty() {
        return Ok(0);
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
