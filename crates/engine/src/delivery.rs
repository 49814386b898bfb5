//! Delivery: claims due messages from the outbox with a lease, sends them concurrently
//! (an unreachable receiver never holds up the others), and records every attempt.

use jiff::Timestamp;
use muster_domain::catalog::apply::Sealer;
use muster_domain::notify::{Channel, Outcome, Throttle, ThrottlePlan, bundle, throttle_plan};
use muster_store::Store;
use muster_store::notify::Notification;
use std::time::Duration;

/// Messages claimed per round.
pub const BATCH: i64 = 256;
/// A claim outlives the slowest attempt (timeout) with room to record it.
pub const LEASE_MS: i64 = 60_000;

pub async fn run(store: Store, senders: muster_notify::Senders, throttles: Vec<Throttle>) {
    let worker = Store::worker_id();
    loop {
        match round(&store, &senders, &throttles, &worker).await {
            Ok(0) => tokio::time::sleep(super::TICK).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "notification delivery round failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One round: claim, send, record. Messages for one contact method go together
/// through its throttle; contact methods are served concurrently (an unreachable
/// receiver never holds up the others). Returns how many messages were claimed.
pub async fn round(
    store: &Store,
    senders: &muster_notify::Senders,
    throttles: &[Throttle],
    worker: &str,
) -> muster_store::Result<usize> {
    let claimed = store.claim_due(worker, LEASE_MS, BATCH).await?;
    let count = claimed.len();
    let mut groups: Vec<Vec<Notification>> = Vec::new();
    for message in claimed {
        let same = |g: &&mut Vec<Notification>| {
            let first = &g[0];
            (&first.recipient, &first.channel, &first.destination)
                == (&message.recipient, &message.channel, &message.destination)
        };
        match groups.iter_mut().find(same) {
            Some(group) => group.push(message),
            None => groups.push(vec![message]),
        }
    }
    // What every contact method of the round was sent within the longest throttle
    // window, read at once; each group keeps what its own throttle counts.
    let now = store.clock().now();
    let longest = throttles.iter().map(|t| t.per).max().unwrap_or_default();
    let firsts: Vec<&Notification> = groups.iter().map(|g| &g[0]).collect();
    let mut sent = if throttles.is_empty() {
        Default::default()
    } else {
        store
            .delivered_since(&firsts, (now - longest).as_millisecond())
            .await?
    };
    let tasks: Vec<_> = groups
        .into_iter()
        .map(|group| {
            let first = &group[0];
            let key = (
                first.recipient.clone(),
                first.channel.clone(),
                first.destination.clone(),
            );
            let sent = sent.remove(&key).unwrap_or_default();
            let (store, senders) = (store.clone(), senders.clone());
            let (throttles, worker) = (throttles.to_vec(), worker.to_string());
            tokio::spawn(async move {
                deliver_group(&store, &senders, &throttles, &worker, group, now, &sent).await
            })
        })
        .collect();
    let mut waiting = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(full))) => waiting.push(full),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot record a delivery attempt"),
            Err(e) => tracing::warn!(error = %e, "a delivery task failed"),
        }
    }
    // Every full throttle's messages go back in one statement, not one per contact.
    let waits: Vec<(&Notification, i64)> = waiting
        .iter()
        .flat_map(|(group, until)| group.iter().map(move |m| (m, *until)))
        .collect();
    if !waits.is_empty() {
        store.defer(worker, &waits).await?;
    }
    Ok(count)
}

/// Messages for one contact method, oldest first, given when it was last sent to
/// (`sent`, unix ms, oldest first): within the throttle one by one, the rest bundled
/// into one message; or, when the throttle is full, the group and when it has room
/// again, for the round to put back.
async fn deliver_group(
    store: &Store,
    senders: &muster_notify::Senders,
    throttles: &[Throttle],
    worker: &str,
    group: Vec<Notification>,
    now: Timestamp,
    sent: &[i64],
) -> muster_store::Result<Option<(Vec<Notification>, i64)>> {
    let throttle =
        Channel::parse(&group[0].channel).and_then(|c| Throttle::for_channel(throttles, c));
    let plan = match throttle {
        None => ThrottlePlan::Send {
            singles: group.len(),
            bundle: false,
        },
        Some(throttle) => {
            let since = (now - throttle.per).as_millisecond();
            let sent: Vec<Timestamp> = sent
                .iter()
                .filter(|&&ms| ms > since)
                .filter_map(|&ms| Timestamp::from_millisecond(ms).ok())
                .collect();
            throttle_plan(group.len(), &sent, throttle, now)
        }
    };
    let singles = match plan {
        ThrottlePlan::WaitUntil(until) => return Ok(Some((group, until.as_millisecond()))),
        ThrottlePlan::Send { singles, .. } => singles,
    };
    let (alone, bundled) = group.split_at(singles.min(group.len()));
    for message in alone {
        let outcome = attempt(store, senders, message).await;
        log_failure(message, &outcome);
        store
            .complete(worker, std::slice::from_ref(message), &outcome, None)
            .await?;
    }
    if bundled.is_empty() {
        return Ok(None);
    }
    let parts: Vec<(&str, &str)> = bundled
        .iter()
        .map(|m| (m.subject.as_str(), m.body.as_str()))
        .collect();
    let (subject, body) = bundle(&parts);
    let carrier = Notification {
        // Stable for the same messages, so a retried bundle keeps its delivery id.
        delivery_id: bundle_id(bundled),
        subject,
        body,
        ..bundled[0].clone()
    };
    let outcome = attempt(store, senders, &carrier).await;
    log_failure(&carrier, &outcome);
    let carried_by = matches!(outcome, Outcome::Delivered).then_some(carrier.delivery_id.as_str());
    store
        .complete(worker, bundled, &outcome, carried_by)
        .await?;
    Ok(None)
}

fn bundle_id(messages: &[Notification]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for m in messages {
        hash.update(m.delivery_id.as_bytes());
        hash.update(b"|");
    }
    format!("bundle-{}", &hex::encode(hash.finalize())[..24])
}

fn log_failure(message: &Notification, outcome: &Outcome) {
    if let Outcome::Retry(why) | Outcome::Reject(why) = outcome {
        tracing::info!(id = message.id, delivery = %message.delivery_id, channel = %message.channel, %why, "delivery attempt failed");
    }
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
