//! Alert expiry: records alerts whose end time has passed as resolved (the `resolved`
//! event the incidents engine reads), and deletes resolved alerts and expired silences
//! once their retention is over.

use jiff::SignedDuration;
use muster_store::Store;
use std::time::Duration;

/// Alerts resolved per transaction.
const BATCH: usize = 500;
/// How often retention is applied.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// Expired silences are kept as long as Alertmanager keeps them (`--data.retention`).
pub const SILENCE_RETENTION: SignedDuration = SignedDuration::from_hours(120);

pub async fn run(store: Store, retention: SignedDuration) {
    let mut last_purge: Option<std::time::Instant> = None;
    loop {
        match store.resolve_expired_alerts(BATCH).await {
            Ok(n) if n == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "resolving expired alerts failed; retrying"),
        }
        if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
            let now = store.clock().now();
            match store
                .purge_signals(now - retention, now - SILENCE_RETENTION)
                .await
            {
                Ok(n) if n > 0 => {
                    tracing::info!(removed = n, "applied alert and silence retention")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "applying alert retention failed"),
            }
            last_purge = Some(std::time::Instant::now());
        }
        tokio::time::sleep(super::TICK).await;
    }
}
