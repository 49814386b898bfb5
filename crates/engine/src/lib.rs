//! The engine: time-driven modules, each one loop that claims its work inside the
//! database (so several servers on PostgreSQL never do one piece twice) and reads time
//! from the store's clock. Delivery of the outbox is the first module.

pub mod delivery;

use muster_store::Store;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often each module looks for due work.
pub const TICK: Duration = Duration::from_millis(250);

/// Starts every module; they run until the returned tasks are aborted.
pub fn start(
    store: Store,
    senders: muster_notify::Senders,
    throttles: Vec<muster_domain::notify::Throttle>,
) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(delivery::run(store, senders, throttles))]
}
