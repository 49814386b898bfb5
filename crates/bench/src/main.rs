//! `muster-bench`: generates a synthetic catalog (10,000 services, 30,000 dependency
//! edges, 2,000 people, 500 organisations by default) and measures, on SQLite and on
//! PostgreSQL: import time, `impact` latency over HTTP, and service page render time.
//! Run in release: `cargo run --release -p muster-bench -- --postgres URL`.

use anyhow::Context;
use clap::Parser;
use muster_domain::audit::Actor;
use muster_domain::auth::Role;
use muster_domain::catalog::apply::plan_import;
use muster_domain::catalog::{Catalog, Organisation, Person, Service, Team};
use muster_domain::clock::Clock;
use muster_store::auth::NewGrant;
use muster_store::secrets::SecretBox;
use muster_store::{DatabaseUrl, Store};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Benchmark Muster's catalog at scale on SQLite and PostgreSQL")]
struct Args {
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
    /// A PostgreSQL server to also measure (a fresh database is created on it), e.g.
    /// postgres://postgres:pg@127.0.0.1/postgres. Without it only SQLite is measured.
    #[arg(long, env = "MUSTER_TEST_POSTGRES_URL")]
    postgres: Option<String>,
}

/// A small deterministic generator (xorshift), so every run measures the same catalog.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A synthetic catalog: edges only point from a service to one with a lower number, so
/// the graph is acyclic, and early services are popular (long dependent chains).
fn synthetic(args: &Args) -> Catalog {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let team_count = (args.people / 10).max(1);
    let people: Vec<Person> = (0..args.people)
        .map(|i| Person {
            id: format!("p{i}"),
            name: format!("Person {i}"),
            email: Some(format!("p{i}@example.test")),
            timezone: "Europe/London".into(),
            contacts: vec![],
            notification_rules: vec![],
        })
        .collect();
    let teams: Vec<Team> = (0..team_count)
        .map(|t| Team {
            id: format!("team-{t}"),
            name: format!("Team {t}"),
            members: (0..10)
                .map(|m| format!("p{}", (t * 10 + m) % args.people))
                .collect(),
            escalation_policy: None,
            description: None,
        })
        .collect();
    let mut services: Vec<Service> = (0..args.services)
        .map(|i| Service {
            id: format!("svc-{i}"),
            name: format!("Service {i}"),
            owner: format!("team-{}", i % team_count),
            tier: Some((i % 3 + 1) as u8),
            depends_on: vec![],
            public: i % 10 == 0,
            external: false,
            runbook: None,
            description: None,
        })
        .collect();
    let mut placed = 0;
    while placed < args.edges {
        let from = 1 + rng.below(args.services - 1);
        // Skewed towards low numbers: popular shared services.
        let to = rng.below(from).min(rng.below(from));
        let dep = format!("svc-{to}");
        if !services[from].depends_on.contains(&dep) {
            services[from].depends_on.push(dep);
            placed += 1;
        }
    }
    let organisations = (0..args.organisations)
        .map(|o| Organisation {
            id: format!("org-{o}"),
            name: format!("Organisation {o}"),
            uses: (0..5)
                .map(|_| format!("svc-{}", rng.below(args.services)))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
        .collect();
    Catalog {
        teams,
        people,
        services,
        organisations,
        ..Catalog::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn progress(label: &str, done: usize, total: usize) {
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

struct Figures {
    backend: &'static str,
    import: Duration,
    reimport: Duration,
    impact: (Duration, Duration),
    page: (Duration, Duration),
}

async fn measure(
    backend: &'static str,
    url: DatabaseUrl,
    catalog: &Catalog,
    args: &Args,
) -> anyhow::Result<Figures> {
    eprintln!("{backend}:");
    let store = Store::open(&url, SecretBox::from_key([1; 32]), Clock::System).await?;
    let actor = Actor::new("bench");
    let import = |document: Catalog| {
        let store = store.clone();
        let actor = actor.clone();
        async move {
            let sealer = store.sealer().clone();
            let start = Instant::now();
            store
                .change_catalog(&actor, "import", move |current| {
                    Ok(plan_import(current, document, false, &sealer)?)
                })
                .await?;
            anyhow::Ok(start.elapsed())
        }
    };
    let first = import(catalog.clone()).await?;
    eprintln!(
        "  import                       {:.2} s",
        first.as_secs_f64()
    );
    let again = import(catalog.clone()).await?;
    eprintln!(
        "  re-import (nothing changes)  {:.2} s",
        again.as_secs_f64()
    );

    let password = "benchmark-password".to_string();
    store
        .create_user(
            &actor,
            "bench",
            password,
            NewGrant {
                role: Role::Admin,
                team: None,
                person: None,
            },
        )
        .await?;
    let session = store.create_session("bench").await?;
    let (token, _) = store
        .create_token(
            &actor,
            "bench",
            NewGrant {
                role: Role::Viewer,
                team: None,
                person: None,
            },
        )
        .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = muster_web::router(muster_web::AppState::new(
        store.clone(),
        format!("http://{address}"),
    ));
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let client = reqwest::Client::new();
    let base = format!("http://{address}");
    let mut rng = Rng(42);

    let mut timed =
        |label: &'static str,
         path_of: &dyn Fn(usize) -> String,
         auth: &dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder| {
            let requests: Vec<reqwest::RequestBuilder> = (0..args.requests)
                .map(|_| auth(client.get(format!("{base}{}", path_of(rng.below(args.services))))))
                .collect();
            async move {
                let mut times = Vec::with_capacity(requests.len());
                let total = requests.len();
                for (i, request) in requests.into_iter().enumerate() {
                    let start = Instant::now();
                    let response = request.send().await?;
                    anyhow::ensure!(
                        response.status().is_success(),
                        "{label}: {}",
                        response.status()
                    );
                    response.bytes().await?;
                    times.push(start.elapsed());
                    if i % 100 == 99 || i + 1 == total {
                        progress(label, i + 1, total);
                    }
                }
                times.sort();
                anyhow::Ok((percentile(&times, 0.50), percentile(&times, 0.99)))
            }
        };
    let impact = timed(
        "impact",
        &|i| format!("/api/v1/services/svc-{i}/impact"),
        &|r| r.bearer_auth(&token),
    )
    .await?;
    let cookie = format!("muster_session={}", session.id);
    let page = timed("service page", &|i| format!("/services/svc-{i}"), &|r| {
        r.header("cookie", &cookie)
    })
    .await?;
    server.abort();
    store.close().await;
    Ok(Figures {
        backend,
        import: first,
        reimport: again,
        impact,
        page,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let catalog = synthetic(&args);
    let edges: usize = catalog.services.iter().map(|s| s.depends_on.len()).sum();
    eprintln!(
        "synthetic catalog: {} services, {edges} dependency edges, {} people, {} teams, {} organisations",
        catalog.services.len(),
        catalog.people.len(),
        catalog.teams.len(),
        catalog.organisations.len()
    );
    let dir = std::env::temp_dir().join(format!("muster-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut results = vec![
        measure(
            "SQLite",
            format!("sqlite://{}", dir.join("bench.db").display())
                .parse()
                .map_err(anyhow::Error::msg)?,
            &catalog,
            &args,
        )
        .await?,
    ];
    if let Some(admin) = &args.postgres {
        let name = format!("muster_bench_{}", std::process::id());
        let pool = sqlx::PgPool::connect(admin)
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await?;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
        results.push(
            measure(
                "PostgreSQL",
                format!("{base}/{name}")
                    .parse()
                    .map_err(anyhow::Error::msg)?,
                &catalog,
                &args,
            )
            .await?,
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await?;
    }
    std::fs::remove_dir_all(&dir)?;

    println!(
        "\n| backend | import | re-import | impact p50 | impact p99 | service page p50 | service page p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for f in &results {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            f.backend,
            f.import.as_secs_f64(),
            f.reimport.as_secs_f64(),
            ms(f.impact.0),
            ms(f.impact.1),
            ms(f.page.0),
            ms(f.page.1)
        );
    }
    println!("\nAgainst the targets (figure / target; below 1.00 meets it):");
    for f in &results {
        println!(
            "  {:<10} import {:.2} (target 10 s), impact p99 {:.2} (target 20 ms), page p99 {:.2} (target 50 ms)",
            f.backend,
            f.import.as_secs_f64() / 10.0,
            ms(f.impact.1) / 20.0,
            ms(f.page.1) / 50.0
        );
    }
    Ok(())
}
