//! Renewals, run by the store's clock:
//! - **Reminders**, once a minute (and whenever the catalog changes): every
//!   renewable's due reminder goes to its owner team and, until it is ordered, its
//!   buyer team, recorded per expiry so each offset goes out once and missed ones are
//!   caught up as one message. Inside the last offset, while not verified everywhere,
//!   the owner team's escalation policy is paged. The first reminder starts the renewal.
//! - **Stalls**, every tick: renewals whose next deadline came are looked at; a stage
//!   past its deadline notifies the team holding it, then pages it (see
//!   `muster_domain::renewals::pipeline::alarms`).

use muster_domain::catalog::Catalog;
use muster_domain::renewals::reminders::{due, expiry_page, message};
use muster_domain::renewals::{Renewable, days};
use muster_store::Store;
use muster_store::notify::notices;
use muster_store::renewals::{Reminder, RenewalPage};
use std::collections::HashMap;
use std::sync::Arc;

/// Renewals looked at per stall transaction.
const CHECK_BATCH: usize = 200;

pub async fn run(store: Store) {
    let mut reminders = Reminders::default();
    // The minute of the clock and the catalog generation of the last reminder pass.
    let mut last: Option<(i64, i64)> = None;
    loop {
        let minute = store.clock().now().as_second().div_euclid(60);
        match store.catalog().await {
            Ok(snapshot) => {
                if last != Some((minute, snapshot.generation)) {
                    match reminders.pass(&store).await {
                        Ok(sent) => {
                            if sent > 0 {
                                tracing::info!(sent, "sent renewal reminders");
                            }
                            last = Some((minute, snapshot.generation));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "sending renewal reminders failed; retrying")
                        }
                    }
                }
                if let Err(e) = reminders.check_stalls(&store).await {
                    tracing::warn!(error = %e, "checking renewal deadlines failed; retrying");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the catalog for renewals failed")
            }
        }
        tokio::time::sleep(super::TICK).await;
    }
}

/// The reminder engine's memory: the catalog's renewables as read at one generation,
/// and per renewable and expiry the smallest offset already handled (read once from
/// the store, then kept up to date), so a pass only asks the store about renewables
/// with a newer offset passed. Another server's reminders are found when asking (and
/// its record wins), so this is a cache, never the truth.
#[derive(Default)]
pub struct Reminders {
    generation: Option<i64>,
    renewables: Arc<Vec<Renewable>>,
    handled: Option<HashMap<(String, i64), i64>>,
}

impl Reminders {
    /// The catalog's renewables, read again when the catalog changed.
    async fn renewables(&mut self, store: &Store) -> muster_store::Result<Arc<Vec<Renewable>>> {
        let snapshot = store.catalog().await?;
        if self.generation != Some(snapshot.generation) {
            self.renewables = Arc::new(Renewable::of_catalog(&snapshot.catalog));
            self.generation = Some(snapshot.generation);
        }
        Ok(self.renewables.clone())
    }

    /// One pass over every renewable; answers how many reminders were sent.
    pub async fn pass(&mut self, store: &Store) -> muster_store::Result<usize> {
        let renewables = self.renewables(store).await?;
        if self.handled.is_none() {
            self.handled = Some(store.smallest_offsets_sent().await?);
        }
        let handled = self.handled.as_mut().expect("loaded above");
        let snapshot = store.catalog().await?;
        let now = store.clock().now();
        // Those with an offset passed that this server has not handled.
        let candidates: Vec<&Renewable> = renewables
            .iter()
            .filter(|r| {
                let passed = r
                    .reminders
                    .iter()
                    .copied()
                    .filter(|d| r.expires_at - days(*d) <= now)
                    .min();
                let done = handled.get(&(r.id.clone(), r.expires_at.as_millisecond()));
                passed.is_some_and(|p| done.is_none_or(|h| p < *h))
            })
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let states = store.reminder_states(&candidates).await?;
        let mut reminders = Vec::new();
        for renewable in candidates {
            let key = (renewable.id.clone(), renewable.expires_at.as_millisecond());
            let state = states.get(&renewable.id).cloned().unwrap_or_default();
            let sent: Vec<i64> = state.sent.keys().copied().collect();
            match due(renewable.expires_at, &renewable.reminders, &sent, now) {
                Some(due) => {
                    handled.insert(key, due.offset);
                    reminders.push(reminder(&snapshot.catalog, renewable, &due, &state, now));
                }
                None => {
                    if let Some(smallest) = sent.iter().min() {
                        handled.insert(key, *smallest);
                    }
                }
            }
        }
        if reminders.is_empty() {
            return Ok(0);
        }
        let sent = store.send_renewal_reminders(&reminders).await;
        if sent.is_err() {
            // Nothing was recorded: ask the store again next pass.
            for r in &reminders {
                handled.remove(&(
                    r.renewable.id.clone(),
                    r.renewable.expires_at.as_millisecond(),
                ));
            }
        }
        sent
    }
}

/// The reminder of one renewable: to its owner team, and its buyer team until it is
/// ordered; inside the last offset, with a page for the owner team.
fn reminder(
    catalog: &Catalog,
    renewable: &Renewable,
    due: &muster_domain::renewals::reminders::Due,
    state: &muster_store::renewals::ReminderState,
    now: jiff::Timestamp,
) -> Reminder {
    let renewal = state.renewal.as_ref();
    let ordered = renewal.is_some_and(|r| r.ordered.is_some());
    let buyer = renewable.buyer.as_ref().filter(|_| !ordered);
    let mut people: Vec<String> = [Some(&renewable.owner), buyer]
        .into_iter()
        .flatten()
        .filter_map(|team| catalog.team(team))
        .flat_map(|team| team.members.iter().cloned())
        .collect();
    people.sort();
    people.dedup();
    let (subject, body) = message(renewable, due, renewal, now);
    let expiry = renewable.expires_at.as_millisecond();
    let key = format!("renewal:{}:{expiry}:{}", renewable.id, due.offset);
    let page = (due.last && !renewal.is_some_and(|r| r.is_done())).then(|| {
        let (title, summary, targets) = expiry_page(renewable, renewal, now);
        RenewalPage {
            team: renewable.owner.clone(),
            targets,
            title,
            summary,
        }
    });
    Reminder {
        renewable: renewable.clone(),
        covers: due.covers.clone(),
        messages: notices(
            catalog,
            &people,
            &key,
            &subject,
            &body,
            now.as_millisecond(),
        ),
        page,
    }
}

impl Reminders {
    /// Looks at every renewal whose next deadline came, in batches.
    pub async fn check_stalls(&mut self, store: &Store) -> muster_store::Result<usize> {
        let renewables = self.renewables(store).await?;
        let snapshot = store.catalog().await?;
        let by_id: HashMap<&str, &Renewable> =
            renewables.iter().map(|r| (r.id.as_str(), r)).collect();
        let mut looked = 0;
        loop {
            let n = store
                .check_renewals(&snapshot.catalog, &by_id, CHECK_BATCH)
                .await?;
            looked += n;
            if n < CHECK_BATCH {
                return Ok(looked);
            }
        }
    }
}
