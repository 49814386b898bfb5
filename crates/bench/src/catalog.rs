//! The catalog at scale: import, `impact` latency over HTTP and service page renders.

use crate::{Args, Rng, ms, percentile, progress, serve, viewer_token};
use muster_domain::audit::Actor;
use muster_domain::auth::Role;
use muster_domain::catalog::apply::plan_import;
use muster_domain::catalog::{Catalog, Organisation, Person, Service, Team};
use muster_store::Store;
use muster_store::auth::NewGrant;
use std::time::{Duration, Instant};

/// A synthetic catalog: edges only point from a service to one with a lower number, so
/// the graph is acyclic, and early services are popular (long dependent chains).
pub fn synthetic(args: &Args) -> Catalog {
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
            incidents: None,
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

pub struct Figures {
    backend: &'static str,
    import: Duration,
    reimport: Duration,
    impact: (Duration, Duration),
    page: (Duration, Duration),
}

pub async fn measure(
    backend: &'static str,
    store: Store,
    catalog: &Catalog,
    args: &Args,
) -> anyhow::Result<Figures> {
    eprintln!("{backend}, catalog:");
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
    let token = viewer_token(&store).await?;

    let (base, server) = serve(&store).await?;
    let client = reqwest::Client::new();
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
    Ok(Figures {
        backend,
        import: first,
        reimport: again,
        impact,
        page,
    })
}

/// Prints the catalog figures and their ratios to the targets.
pub fn report(results: &[Figures]) {
    println!(
        "\n| backend | import | re-import | impact p50 | impact p99 | service page p50 | service page p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for f in results {
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
    for f in results {
        println!(
            "  {:<10} import {:.2} (target 10 s), impact p99 {:.2} (target 20 ms), page p99 {:.2} (target 50 ms)",
            f.backend,
            f.import.as_secs_f64() / 10.0,
            ms(f.impact.1) / 20.0,
            ms(f.page.1) / 50.0
        );
    }
}
