//! Escalation: fires each due step of each triggered incident's policy (its service
//! owner's), once, with its messages queued in the outbox in the same transaction;
//! stops at acknowledgement (nothing due is left) and after the last pass.

use jiff::{SignedDuration, Timestamp};
use muster_domain::catalog::Catalog;
use muster_domain::incidents::pages::{PageFacts, page_dedup_key, page_message};
use muster_domain::notify::{DEFAULT_RETRY_HORIZON, paging_plan};
use muster_domain::oncall::escalation::resolve;
use muster_domain::oncall::{Cursor, Page, Policy, Schedule};
use muster_store::Store;
use muster_store::incidents::{Escalator, Incident};
use muster_store::notify::NewNotification;
use std::collections::HashMap;

/// Escalations looked at per transaction.
const BATCH: usize = 1000;

pub async fn run(store: Store, public_url: String) {
    loop {
        let looked = store.clock().now();
        match escalate_once(&store, &public_url).await {
            // Work found: look again at once (more may have fallen due meanwhile);
            // only an idle look waits.
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "escalating incidents failed; retrying"),
        }
        tokio::time::sleep(pause(&store, looked).await).await;
    }
}

/// Until the next step falls due, at most a tick (new incidents bring earlier steps);
/// at once for a step that fell due while the pass `looked` ran. A step that was due
/// when it looked and still did not fire (a policy that would not load, a failed pass,
/// another server holding it) waits the whole tick: no spinning.
async fn pause(store: &Store, looked: Timestamp) -> std::time::Duration {
    match store.next_escalation_at().await {
        Ok(Some(due)) if due > looked => {
            std::time::Duration::try_from(store.clock().now().duration_until(due))
                .unwrap_or(std::time::Duration::ZERO)
                .min(super::TICK)
        }
        _ => super::TICK,
    }
}

/// The policies of the teams with due steps and the schedules they name.
pub(crate) struct Policies {
    catalog: std::sync::Arc<muster_store::catalog::CatalogSnapshot>,
    policies: HashMap<String, Policy>,
    schedules: HashMap<String, Schedule>,
    public_url: String,
    now: Timestamp,
    /// Organisations hit per service, counted once per pass: a team page asks per person.
    affected: std::sync::Mutex<HashMap<String, usize>>,
}

impl Escalator for Policies {
    fn fire(&self, team: &str, cursor: Cursor) -> Option<(Option<Page>, Option<Cursor>)> {
        let policy = self.policies.get(team)?;
        let catalog = &self.catalog.catalog;
        let oncall = |schedule: &str, at| {
            self.schedules
                .get(schedule)
                .and_then(|s| s.oncall_at(at))
                .map(|on| on.person)
        };
        Some(policy.fire(cursor, |target, at| resolve(target, at, catalog, oncall)))
    }

    fn messages(
        &self,
        incident: &Incident,
        reported: usize,
        page: &Page,
        person: &str,
        ack_token: &str,
    ) -> Vec<NewNotification> {
        let catalog: &Catalog = &self.catalog.catalog;
        let Some(who) = catalog.person(person) else {
            return Vec::new();
        };
        let service = catalog
            .service(&incident.service)
            .map(|s| s.name.as_str())
            .unwrap_or(&incident.service);
        let incident_url = format!("{}/incidents/{}", self.public_url, incident.number);
        let ack_url = format!("{}/ack/{ack_token}", self.public_url);
        let facts = PageFacts {
            number: &incident.number,
            title: &incident.title,
            summary: &incident.summary,
            service,
            severity: incident.severity.as_str(),
            reported,
            using: self.organisations_affected(&incident.service),
            incident_url: &incident_url,
            ack_url: &ack_url,
        };
        let (subject, body) = page_message(&facts, page);
        let now = self.now.as_millisecond();
        paging_plan(who)
            .into_iter()
            .enumerate()
            .map(|(n, (after, target))| {
                let not_before = now + after.as_millis() as i64;
                NewNotification {
                    dedup_key: page_dedup_key(incident.id, page, person, n),
                    recipient: person.to_string(),
                    channel: target.channel,
                    destination: target.destination,
                    secret: target.secret,
                    subject: subject.clone(),
                    body: body.clone(),
                    not_before,
                    give_up_at: not_before + DEFAULT_RETRY_HORIZON.as_millis() as i64,
                }
            })
            .collect()
    }
}

/// Fires what is due; returns the steps fired.
pub async fn escalate_once(store: &Store, public_url: &str) -> muster_store::Result<usize> {
    let teams = store.due_escalation_teams(BATCH).await?;
    if teams.is_empty() {
        return Ok(0);
    }
    let catalog = store.catalog().await?;
    let escalator = Policies::load(store, catalog, public_url, teams).await?;
    store.fire_escalations(&escalator, BATCH).await
}

impl Policies {
    /// The policies of `teams` and the schedules they name, as in force now; a team
    /// whose policy cannot be read is left out (its steps wait, and the error is logged).
    pub(crate) async fn load(
        store: &Store,
        catalog: std::sync::Arc<muster_store::catalog::CatalogSnapshot>,
        public_url: &str,
        teams: impl IntoIterator<Item = String>,
    ) -> muster_store::Result<Policies> {
        let now = store.clock().now();
        let mut policies = HashMap::new();
        let mut schedules = HashMap::new();
        for team in teams {
            if policies.contains_key(&team) {
                continue;
            }
            let policy = match Policy::of_team(&catalog.catalog, &team) {
                Ok(policy) => policy,
                Err(e) => {
                    tracing::error!(team, error = %e, "cannot read the team's escalation policy");
                    continue;
                }
            };
            for id in policy.schedules() {
                if !schedules.contains_key(id) {
                    // Overrides from a day back cover every step of a caught-up escalation.
                    let since = now - SignedDuration::from_hours(24);
                    if let Some(schedule) =
                        store.schedule_in_force(&catalog.catalog, id, since).await?
                    {
                        schedules.insert(id.to_string(), schedule);
                    }
                }
            }
            policies.insert(team, policy);
        }
        Ok(Policies {
            catalog,
            policies,
            schedules,
            public_url: public_url.to_string(),
            now,
            affected: Default::default(),
        })
    }

    /// How many organisations use `service` or anything that depends on it, as the
    /// incident itself counts them.
    fn organisations_affected(&self, service: &str) -> usize {
        let mut counted = self.affected.lock().unwrap_or_else(|e| e.into_inner());
        *counted
            .entry(service.to_string())
            .or_insert_with(|| self.catalog.graph.organisations_affected(&[service]).len())
    }
}
