//! Changes at scale: the conflict check of one change against 100,000 stored changes
//! on the synthetic 10,000-service graph (the check `POST /api/v1/changes/check` and
//! every change write run), p99 against the 10 ms target.
//!
//! The stored changes are loaded as rows (the API would run 100,000 checks first):
//! spread over a year around now, one to three services each, windows of one to eight
//! hours; past ones completed, current ones in progress, future ones planned.

use crate::direct::Direct;
use crate::{Args, Databases, Rng, catalog, ms, percentile, progress};
use jiff::Timestamp;
use muster_domain::audit::Actor;
use muster_domain::catalog::apply::plan_import;
use muster_domain::changes::conflicts::Planned;
use muster_domain::changes::{ChangeType, Settings, State, Window};
use muster_domain::clock::Clock;
use muster_store::Store;
use muster_store::changes::Policy;
use muster_store::secrets::SecretBox;
use std::time::{Duration, Instant};

pub struct Figures {
    backend: &'static str,
    load: Duration,
    p50: Duration,
    p99: Duration,
    /// Conflicts found per check, on average.
    found: f64,
}

const HOUR_MS: i64 = 3_600_000;
const YEAR_HOURS: usize = 365 * 24;
/// Rows per INSERT statement.
const CHUNK: usize = 1_000;

/// A random window within a year centred on `now`: (start, end) in milliseconds.
fn window(rng: &mut Rng, now: i64) -> (i64, i64) {
    let start = now - 182 * 24 * HOUR_MS + rng.below(YEAR_HOURS) as i64 * HOUR_MS;
    (start, start + (1 + rng.below(8)) as i64 * HOUR_MS)
}

/// 1–3 distinct services.
fn services(rng: &mut Rng, count: usize) -> Vec<usize> {
    let mut picked: Vec<usize> = (0..1 + rng.below(3)).map(|_| rng.below(count)).collect();
    picked.sort_unstable();
    picked.dedup();
    picked
}

/// Loads `args.changes` changes and their services as rows.
async fn load(direct: &Direct, args: &Args, now: i64) -> anyhow::Result<()> {
    let mut rng = Rng(0xC0FF_EE00_D15E_A5E5);
    let mut changes = Vec::with_capacity(CHUNK);
    let mut rows = Vec::with_capacity(3 * CHUNK);
    for id in 1..=args.changes {
        let (start, end) = window(&mut rng, now);
        let (state, started, ended) = if end <= now {
            ("completed", start.to_string(), end.to_string())
        } else if start <= now {
            ("in_progress", start.to_string(), "NULL".to_string())
        } else {
            let planned = ["draft", "submitted", "approved"][rng.below(3)];
            (planned, "NULL".to_string(), "NULL".to_string())
        };
        let implementer = rng.below(args.people);
        let launch = i64::from(rng.below(50) == 0);
        changes.push(format!(
            "({id}, 'Change {id}', '', 'normal', 'low', '{state}', {start}, {end}, '', 'p{implementer}', NULL, '', 0, {launch}, 1, NULL, 'bench', {now}, {now}, {started}, {ended})"
        ));
        for service in services(&mut rng, args.services) {
            rows.push(format!("({id}, 'svc-{service}', {start}, {end})"));
        }
        if changes.len() == CHUNK || id == args.changes {
            direct
                .execute(format!(
                    "INSERT INTO changes (id, title, description, change_type, declared_risk, state, start_at, end_at, requested_by, \
                     implementer, test_evidence, rollback_plan, public, launch, suppress_alerts, template, created_by, created_at, \
                     updated_at, started_at, ended_at) VALUES {}",
                    changes.join(", ")
                ))
                .await?;
            direct
                .execute(format!(
                    "INSERT INTO change_services (change_id, service_id, start_at, end_at) VALUES {}",
                    rows.join(", ")
                ))
                .await?;
            changes.clear();
            rows.clear();
            progress("stored changes", id, args.changes);
        }
    }
    eprintln!();
    Ok(())
}

async fn measure(
    backend: &'static str,
    url: &str,
    sqlite_file: &std::path::Path,
    args: &Args,
    world: &muster_domain::catalog::Catalog,
) -> anyhow::Result<Figures> {
    eprintln!("{backend}, changes:");
    let store = Store::open(
        &url.parse().map_err(anyhow::Error::msg)?,
        SecretBox::from_key([1; 32]),
        Clock::System,
    )
    .await?;
    let sealer = store.sealer().clone();
    let document = world.clone();
    store
        .change_catalog(&Actor::new("bench"), "import", move |current| {
            Ok(plan_import(current, document, false, &sealer)?)
        })
        .await?;
    let direct = Direct::open(url, sqlite_file, false).await?;
    let now = Timestamp::now();
    let started = Instant::now();
    load(&direct, args, now.as_millisecond()).await?;
    if let Direct::Postgres(_) = direct {
        // As autovacuum would soon after such a load in production.
        direct.execute("ANALYZE".to_string()).await?;
    }
    let loaded = started.elapsed();
    eprintln!("  loaded in {:.1} s", loaded.as_secs_f64());

    let snapshot = store.catalog().await?;
    let settings = Settings::default();
    let policy = Policy {
        catalog: &snapshot.catalog,
        graph: &snapshot.graph,
        freezes: &[],
        settings: &settings,
    };
    let mut rng = Rng(0x0005_EED0_FC4A_76E5);
    let mut times = Vec::with_capacity(args.requests);
    let mut found = 0;
    for i in 0..args.requests {
        let (start, end) = window(&mut rng, now.as_millisecond());
        let planned = Planned {
            id: None,
            title: format!("Probe {i}"),
            state: State::Draft,
            change_type: ChangeType::Normal,
            services: services(&mut rng, args.services)
                .into_iter()
                .map(|s| format!("svc-{s}"))
                .collect(),
            window: Window {
                start: Timestamp::from_millisecond(start)?,
                end: Timestamp::from_millisecond(end)?,
            },
            implementer: Some(format!("p{}", rng.below(args.people))),
            launch: i % 10 == 0,
        };
        let began = Instant::now();
        found += store.change_conflicts(&policy, &planned).await?.len();
        times.push(began.elapsed());
        if i % 100 == 99 || i + 1 == args.requests {
            progress("conflict checks", i + 1, args.requests);
        }
    }
    eprintln!();
    times.sort();
    store.close().await;
    Ok(Figures {
        backend,
        load: loaded,
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        found: found as f64 / args.requests.max(1) as f64,
    })
}

pub async fn benchmark(args: &Args, databases: &mut Databases) -> anyhow::Result<Vec<Figures>> {
    let world = catalog::synthetic(args);
    let mut figures = Vec::new();
    for (backend, url, sqlite_file) in databases.urls("changes").await? {
        figures.push(measure(backend, &url, &sqlite_file, args, &world).await?);
    }
    Ok(figures)
}

/// Prints the conflict-check figures against the 10 ms target.
pub fn report(figures: &[Figures], args: &Args) {
    println!(
        "\nConflict check: one change against {} stored changes on {} services",
        args.changes, args.services
    );
    println!("| backend | load | check p50 | check p99 | conflicts per check |");
    println!("|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {:.1} s | {:.2} ms | {:.2} ms | {:.2} |",
            f.backend,
            f.load.as_secs_f64(),
            ms(f.p50),
            ms(f.p99),
            f.found
        );
    }
    println!("\nAgainst the target (figure / target; below 1.00 meets it):");
    for f in figures {
        println!(
            "  {:<10} conflict check p99 {:.2} (target 10 ms)",
            f.backend,
            ms(f.p99) / 10.0
        );
    }
}
