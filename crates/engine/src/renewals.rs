//! Renewal reminders: once a minute of the store's clock (and whenever the catalog
//! changes), every renewable's due reminder goes to its owner team and its buyer team,
//! recorded per expiry so each offset goes out once and missed ones are caught up as
//! one message.

use muster_domain::renewals::Renewable;
use muster_domain::renewals::reminders::{due, message};
use muster_store::Store;
use muster_store::notify::notices;
use muster_store::renewals::Reminder;

pub async fn run(store: Store) {
    // The minute of the clock and the catalog generation of the last pass.
    let mut last: Option<(i64, i64)> = None;
    loop {
        let minute = store.clock().now().as_second().div_euclid(60);
        match store.catalog().await {
            Ok(snapshot) if last != Some((minute, snapshot.generation)) => {
                match remind_once(&store).await {
                    Ok(sent) if sent > 0 => tracing::info!(sent, "sent renewal reminders"),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "sending renewal reminders failed; retrying");
                        tokio::time::sleep(super::TICK).await;
                        continue;
                    }
                }
                last = Some((minute, snapshot.generation));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the catalog for renewal reminders failed")
            }
        }
        tokio::time::sleep(super::TICK).await;
    }
}

/// One pass over every renewable; answers how many reminders were sent.
pub async fn remind_once(store: &Store) -> muster_store::Result<usize> {
    let snapshot = store.catalog().await?;
    let catalog = &snapshot.catalog;
    let now = store.clock().now();
    let sent = store.renewal_reminders_sent().await?;
    let reminders: Vec<Reminder> = Renewable::of_catalog(catalog)
        .iter()
        .filter_map(|r| {
            let expiry = r.expires_at.as_millisecond();
            let already: Vec<i64> = sent
                .get(&(r.id.clone(), expiry))
                .map(|offsets| offsets.keys().copied().collect())
                .unwrap_or_default();
            let due = due(r.expires_at, &r.reminders, &already, now)?;
            let (subject, body) = message(r, &due, now);
            let mut people: Vec<String> = [Some(&r.owner), r.buyer.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|team| catalog.team(team))
                .flat_map(|team| team.members.iter().cloned())
                .collect();
            people.sort();
            people.dedup();
            let key = format!("renewal:{}:{expiry}:{}", r.id, due.offset);
            Some(Reminder {
                renewable: r.id.clone(),
                expires_at: r.expires_at,
                covers: due.covers,
                messages: notices(
                    catalog,
                    &people,
                    &key,
                    &subject,
                    &body,
                    now.as_millisecond(),
                ),
            })
        })
        .collect();
    if reminders.is_empty() {
        return Ok(0);
    }
    store.send_renewal_reminders(&reminders).await
}
