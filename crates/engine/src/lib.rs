//! The engine: time-driven modules, each one loop that claims its work inside the
//! database (so several servers on PostgreSQL never do one piece twice) and reads time
//! from the store's clock: delivery of the outbox, alert expiry, grouping alerts into
//! incidents, escalation, renewal reminders and stalls, and probes.

pub mod alert_expiry;
pub mod delivery;
pub mod escalation;
pub mod incidents;
pub mod probes;
pub mod renewals;

use muster_store::Store;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often each module looks for due work.
pub const TICK: Duration = Duration::from_millis(250);

/// What the modules are configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub throttles: Vec<muster_domain::notify::Throttle>,
    /// How long resolved alerts are kept.
    pub alert_retention: jiff::SignedDuration,
    /// Base of links in pages, e.g. `https://muster.example.test`.
    pub public_url: String,
    /// How renewables' targets are probed.
    pub probes: probes::ProbeSettings,
}

/// Resolved alerts are kept this long unless configured otherwise.
pub const DEFAULT_ALERT_RETENTION: jiff::SignedDuration = jiff::SignedDuration::from_hours(90 * 24);

/// Starts every module; they run until the returned tasks are aborted.
pub fn start(
    store: Store,
    senders: muster_notify::Senders,
    settings: Settings,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(delivery::run(store.clone(), senders, settings.throttles)),
        tokio::spawn(alert_expiry::run(store.clone(), settings.alert_retention)),
        tokio::spawn(incidents::run(
            store.clone(),
            store.grouping_listener(),
            settings.public_url.clone(),
        )),
        tokio::spawn(escalation::run(store.clone(), settings.public_url)),
        tokio::spawn(probes::run(store.clone(), settings.probes)),
        tokio::spawn(renewals::run(store)),
    ]
}
