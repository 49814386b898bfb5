//! `muster-bench`: measures Muster at scale on SQLite and on PostgreSQL, and prints
//! each figure against its target.
//!
//! - `catalog`: a synthetic catalog (10,000 services, 30,000 dependency edges, 2,000
//!   people, 500 organisations by default): import time, `impact` latency over HTTP,
//!   service page render time.
//! - `oncall`: a schedule of 5 layers, 50 members and 100 overrides: `oncall?at=`
//!   latency and one year of final shifts over HTTP; 10,000 queued messages delivered
//!   to a webhook receiver on loopback.
//! - `intake`: a load generator posting Alertmanager batches (64 alerts, many
//!   connections, realistic label sets) to Debian's Alertmanager 0.25 and to Muster on
//!   SQLite and PostgreSQL in one run: alerts/s, p50 and p99 latency, memory with
//!   100,000 more active alerts, and the ratios. `--target URL` points the load
//!   generator at any Alertmanager-compatible server instead.
//! - `incidents`: a burst of 100,000 alerts over 1,000 services and 5,000 reports to
//!   `muster serve`, then every one of the 10,000 incidents' escalations run to the
//!   end: arrival-to-joined time per alert and lateness per fired step, against the
//!   1 s targets.
//! - `changes`: the conflict check of one change against 100,000 stored changes on the
//!   synthetic graph, p50 and p99 against the 10 ms target.
//! - `renewals`: a reminder pass over 1,000,000 renewables (2 s target), 1,000 TLS
//!   probes of loopback servers (10 s target), and `muster scan` throughput in MB/s
//!   on a tree of mixed binaries beside `grep`.
//!
//! Run in release: `cargo run --release -p muster-bench -- --postgres URL`.

mod catalog;
mod changes;
mod direct;
mod incidents;
mod intake;
mod oncall;
mod renewals;
mod server;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use muster_domain::clock::Clock;
use muster_store::secrets::SecretBox;
use muster_store::{DatabaseUrl, Store};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Suite {
    Catalog,
    Oncall,
    Intake,
    Incidents,
    Changes,
    Renewals,
    All,
}

#[derive(Parser)]
#[command(about = "Benchmark Muster at scale on SQLite and PostgreSQL")]
struct Args {
    /// Which benchmarks to run.
    #[arg(long, value_enum, default_value_t = Suite::All)]
    suite: Suite,
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    #[arg(long, default_value_t = 30_000)]
    edges: usize,
    #[arg(long, default_value_t = 2_000)]
    people: usize,
    #[arg(long, default_value_t = 500)]
    organisations: usize,
    /// Requests per latency measurement.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Messages the outbox benchmark queues.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// A PostgreSQL server to also measure (a fresh database is created on it per
    /// benchmark), e.g. postgres://postgres:pg@127.0.0.1/postgres. Without it only
    /// SQLite is measured.
    #[arg(long, env = "MUSTER_TEST_POSTGRES_URL")]
    postgres: Option<String>,
    /// Intake: concurrent connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Intake: distinct alerts the throughput phase cycles through.
    #[arg(long, default_value_t = 20_000)]
    cardinality: usize,
    /// Intake: seconds the throughput phase runs per server.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Intake: distinct alerts posted once each before memory is read.
    #[arg(long, default_value_t = 100_000)]
    active: usize,
    /// Intake: run only the load generator against this Alertmanager-compatible URL.
    #[arg(long)]
    target: Option<String>,
    /// Intake: a key sent as `Authorization: Bearer` to `--target`.
    #[arg(long)]
    key: Option<String>,
    /// Incidents: distinct alerts in the burst.
    #[arg(long, default_value_t = 100_000)]
    alerts: usize,
    /// Incidents: reports in the burst.
    #[arg(long, default_value_t = 5_000)]
    reports: usize,
    /// Changes: changes stored before the conflict checks.
    #[arg(long, default_value_t = 100_000)]
    changes: usize,
    /// Renewals: renewables the reminder pass goes over.
    #[arg(long, default_value_t = 1_000_000)]
    renewables: usize,
    /// Renewals: TLS probes of loopback servers.
    #[arg(long, default_value_t = 1_000)]
    probes: usize,
}

/// A small deterministic generator (xorshift), so every run measures the same data.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Redraws a progress bar on a terminal; elsewhere (a log, CI) prints only the finished bar.
fn progress(label: &str, done: usize, total: usize) {
    if done != total && !std::io::stderr().is_terminal() {
        return;
    }
    let width = 30;
    let filled = done * width / total.max(1);
    eprint!(
        "\r  {label:<28} [{}{}] {done}/{total}",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    if done == total {
        eprintln!();
    }
    let _ = std::io::stderr().flush();
}

/// Serves the real router for `store` on a loopback port; returns its base URL.
async fn serve(store: &Store) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = muster_web::router(muster_web::AppState::new(store.clone(), base.clone()));
    let server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    Ok((base, server))
}

/// A token for reading the API.
async fn viewer_token(store: &Store) -> anyhow::Result<String> {
    let grant = muster_store::auth::NewGrant {
        role: muster_domain::auth::Role::Viewer,
        team: None,
        person: None,
    };
    let actor = muster_domain::audit::Actor::new("bench");
    Ok(store.create_token(&actor, "bench-reader", grant).await?.0)
}

/// Fresh databases, one per benchmark and backend, removed at the end.
struct Databases {
    dir: PathBuf,
    postgres: Option<(String, sqlx::PgPool)>,
    created: Vec<String>,
}

impl Databases {
    async fn new(postgres: Option<&str>) -> anyhow::Result<Databases> {
        let dir = std::env::temp_dir().join(format!("muster-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let postgres = match postgres {
            None => None,
            Some(admin) => {
                let pool = sqlx::PgPool::connect(admin)
                    .await
                    .context("connecting to PostgreSQL")?;
                Some((admin.to_string(), pool))
            }
        };
        Ok(Databases {
            dir,
            postgres,
            created: Vec::new(),
        })
    }

    /// A fresh database of each backend, named after `purpose`: (backend, URL, the
    /// SQLite file).
    async fn urls(
        &mut self,
        purpose: &str,
    ) -> anyhow::Result<Vec<(&'static str, String, PathBuf)>> {
        let file = self.dir.join(format!("{purpose}.db"));
        let mut urls = vec![(
            "SQLite",
            format!("sqlite://{}", file.display()),
            file.clone(),
        )];
        if let Some(url) = self.postgres_url(purpose).await? {
            urls.push(("PostgreSQL", url, file));
        }
        Ok(urls)
    }

    /// A store on a fresh database of each backend, named after `purpose`.
    async fn stores(&mut self, purpose: &str) -> anyhow::Result<Vec<(&'static str, Store)>> {
        let mut stores = Vec::new();
        for (backend, url, _) in self.urls(purpose).await? {
            let url: DatabaseUrl = url.parse().map_err(anyhow::Error::msg)?;
            let store = Store::open(&url, SecretBox::from_key([1; 32]), Clock::System).await?;
            stores.push((backend, store));
        }
        Ok(stores)
    }

    /// A fresh PostgreSQL database's URL, when a server was given.
    async fn postgres_url(&mut self, purpose: &str) -> anyhow::Result<Option<String>> {
        let Some((admin, pool)) = &self.postgres else {
            return Ok(None);
        };
        let name = format!("muster_bench_{purpose}_{}", std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(pool)
            .await?;
        self.created.push(name.clone());
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
        Ok(Some(format!("{base}/{name}")))
    }

    async fn remove(self) -> anyhow::Result<()> {
        if let Some((_, pool)) = &self.postgres {
            for name in &self.created {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE {name} WITH (FORCE)"
                )))
                .execute(pool)
                .await?;
            }
        }
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut databases = Databases::new(args.postgres.as_deref()).await?;
    if let Some(url) = &args.target {
        let load = intake::Load {
            url: url.clone(),
            key: args.key.clone(),
            connections: args.connections,
            batch: 64,
            cardinality: args.cardinality,
            duration: Duration::from_secs(args.seconds),
        };
        let bodies = std::sync::Arc::new(intake::bodies(load.cardinality, load.batch, "load"));
        let result = intake::run(&load, bodies).await?;
        println!(
            "{} alerts/s, p50 {:.1} ms, p99 {:.1} ms, {} acknowledged, {} refused",
            result.rate() as u64,
            ms(percentile(&result.latencies, 0.5)),
            ms(percentile(&result.latencies, 0.99)),
            result.acknowledged,
            result.failed
        );
        return databases.remove().await;
    }
    if matches!(args.suite, Suite::Catalog | Suite::All) {
        let world = catalog::synthetic(&args);
        let edges: usize = world.services.iter().map(|s| s.depends_on.len()).sum();
        eprintln!(
            "synthetic catalog: {} services, {edges} dependency edges, {} people, {} teams, {} organisations",
            world.services.len(),
            world.people.len(),
            world.teams.len(),
            world.organisations.len()
        );
        let mut results = Vec::new();
        for (backend, store) in databases.stores("catalog").await? {
            results.push(catalog::measure(backend, store.clone(), &world, &args).await?);
            store.close().await;
        }
        catalog::report(&results);
    }
    if matches!(args.suite, Suite::Intake | Suite::All) {
        let figures = intake::benchmark(&args, &mut databases).await?;
        intake::report(&figures, &args);
    }
    if matches!(args.suite, Suite::Incidents | Suite::All) {
        let figures = incidents::benchmark(&args, &mut databases).await?;
        incidents::report(&figures, &args);
    }
    if matches!(args.suite, Suite::Changes | Suite::All) {
        let figures = changes::benchmark(&args, &mut databases).await?;
        changes::report(&figures, &args);
    }
    if matches!(args.suite, Suite::Renewals | Suite::All) {
        let figures = renewals::benchmark(&args, &mut databases).await?;
        renewals::report(&figures);
    }
    if matches!(args.suite, Suite::Oncall | Suite::All) {
        let mut results = Vec::new();
        for (backend, store) in databases.stores("oncall").await? {
            results.push(oncall::measure(backend, store.clone(), &args).await?);
            store.close().await;
        }
        oncall::report(&results);
    }
    databases.remove().await
}
