//! Probes, run by the store's clock: every target verified by `tls` or `http_json` is
//! probed once per `interval` (default 6 hours), at most `concurrency` at a time, each
//! within the prober's timeout. What they find is kept as history and acted on (see
//! `Store::record_probes`): a later expiry verifies the target by itself.

use jiff::{SignedDuration, Timestamp};
use muster_domain::renewals::probes::probed_targets;
use muster_domain::renewals::{Renewable, Verify};
use muster_probe::Prober;
use muster_store::Store;
use std::collections::HashMap;

pub const DEFAULT_INTERVAL: SignedDuration = SignedDuration::from_hours(6);
/// Findings recorded per transaction.
const RECORD_BATCH: usize = 200;

/// How probes run.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub prober: Prober,
    pub interval: SignedDuration,
    pub concurrency: usize,
}

impl ProbeSettings {
    /// Every 6 hours, 32 at a time, 10 s each, trusting the Mozilla roots.
    pub fn defaults() -> Result<ProbeSettings, String> {
        Ok(ProbeSettings {
            prober: Prober::new(&[], muster_probe::DEFAULT_TIMEOUT)?,
            interval: DEFAULT_INTERVAL,
            concurrency: muster_probe::DEFAULT_CONCURRENCY,
        })
    }
}

pub async fn run(store: Store, settings: ProbeSettings) {
    // When each target was last probed: read once, then kept up to date here.
    let mut last: Option<HashMap<(String, String), Timestamp>> = None;
    loop {
        if let Err(e) = pass(&store, &settings, &mut last).await {
            tracing::warn!(error = %e, "probing renewables failed; retrying");
        }
        tokio::time::sleep(super::TICK * 4).await;
    }
}

async fn pass(
    store: &Store,
    settings: &ProbeSettings,
    last: &mut Option<HashMap<(String, String), Timestamp>>,
) -> muster_store::Result<usize> {
    if last.is_none() {
        *last = Some(store.last_probes().await?);
    }
    let last = last.as_mut().expect("loaded above");
    let snapshot = store.catalog().await?;
    let now = store.clock().now();
    let mut due = Vec::new();
    for renewable in Renewable::of_catalog(&snapshot.catalog) {
        let plans: Vec<(String, Verify)> = probed_targets(&renewable)
            .into_iter()
            .filter(|(t, _)| {
                last.get(&(renewable.id.clone(), t.key.clone()))
                    .is_none_or(|at| *at + settings.interval <= now)
            })
            .map(|(t, how)| (t.key.clone(), how))
            .collect();
        if !plans.is_empty() {
            due.push((renewable, plans));
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    let findings = settings
        .prober
        .probe_all(due, settings.concurrency, now)
        .await;
    for chunk in findings.chunks(RECORD_BATCH) {
        store.record_probes(&snapshot.catalog, chunk).await?;
        for (renewable, finding) in chunk {
            last.insert((renewable.id.clone(), finding.target.clone()), now);
        }
    }
    tracing::info!(probed = findings.len(), "probed renewables");
    Ok(findings.len())
}
