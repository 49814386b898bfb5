//! Delivery: claims due messages from the outbox with a lease, sends them concurrently
//! (an unreachable receiver never holds up the others), and records every attempt.

use muster_domain::catalog::apply::Sealer;
use muster_domain::notify::Outcome;
use muster_store::Store;
use muster_store::notify::Notification;
use std::time::Duration;

/// Messages claimed per round.
pub const BATCH: i64 = 64;
/// A claim outlives the slowest attempt (timeout) with room to record it.
pub const LEASE_MS: i64 = 60_000;

pub async fn run(store: Store, senders: muster_notify::Senders) {
    let worker = Store::worker_id();
    loop {
        match round(&store, &senders, &worker).await {
            Ok(0) => tokio::time::sleep(super::TICK).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "notification delivery round failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One round: claim, send, record. Returns how many messages were attempted.
pub async fn round(
    store: &Store,
    senders: &muster_notify::Senders,
    worker: &str,
) -> muster_store::Result<usize> {
    let claimed = store.claim_due(worker, LEASE_MS, BATCH).await?;
    let count = claimed.len();
    let attempts = claimed.into_iter().map(|message| {
        let store = store.clone();
        let senders = senders.clone();
        let worker = worker.to_string();
        tokio::spawn(async move {
            let outcome = attempt(&store, &senders, &message).await;
            if let Outcome::Retry(why) | Outcome::Reject(why) = &outcome {
                tracing::info!(id = message.id, delivery = %message.delivery_id, channel = %message.channel, %why, "delivery attempt failed");
            }
            store.complete(&worker, &message, &outcome).await
        })
    });
    let handles: Vec<_> = attempts.collect();
    for handle in handles {
        match handle.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot record a delivery attempt"),
            Err(e) => tracing::warn!(error = %e, "a delivery task failed"),
        }
    }
    Ok(count)
}

async fn attempt(
    store: &Store,
    senders: &muster_notify::Senders,
    message: &Notification,
) -> Outcome {
    let sealer = store.sealer();
    // Chat webhook URLs and signing secrets are stored sealed; open them only to send.
    let destination = if message
        .destination
        .starts_with(muster_domain::catalog::secret::SEALED_PREFIX)
    {
        match sealer.open(&message.destination) {
            Some(url) => url,
            None => {
                return Outcome::Reject(
                    "the destination cannot be unsealed with this server's key".into(),
                );
            }
        }
    } else {
        message.destination.clone()
    };
    let secret = match &message.secret {
        Some(sealed) => match sealer.open(sealed) {
            Some(secret) => Some(secret),
            None => {
                return Outcome::Reject(
                    "the signing secret cannot be unsealed with this server's key".into(),
                );
            }
        },
        None => None,
    };
    senders
        .send(
            message,
            &destination,
            secret.as_deref(),
            store.clock().now().as_second(),
        )
        .await
}
