//! Incidents at the scale, against `muster serve` (release) on SQLite and on
//! PostgreSQL. 1,000 alerting services owned by 100 teams group their alerts by
//! `alertname` (10 names: 10,000 incidents); 100 more services hear only from
//! reports. A burst of 100,000 distinct alerts (Alertmanager API v2, one global key
//! routing by the `service` label) and 5,000 reports arrive together; then every
//! incident's escalation — two steps 30 s apart and one repeat — runs to its end
//! with all of them open, paging 500 people by webhook to a receiver on loopback.
//!
//! The figures come from the database afterwards: each alert's `joined_at -
//! received_at` (its request reaching intake to `alert_joined`), each fired step's
//! `fired_at - due_at`. Intake answers only once its alerts are grouped, so each alert
//! POST's time (sent to answered) is shown too: it adds the client's side and the
//! answer's wait for the grouping transaction to commit.

use super::direct::Direct;
use super::intake::{self, Load, NAMES};
use super::server::{self, Receiver};
use super::{Args, Databases, ms, percentile};
use anyhow::Context;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Services that alert; their alerts spread evenly over them.
const ALERTING: usize = 1_000;
/// Services that hear only from reports, so floods open their incidents.
const QUIET: usize = 100;
const TEAMS: usize = 100;
const TEAM_SIZE: usize = 5;
const ORGANISATIONS: usize = 500;
const ESCALATE_AFTER: &str = "30s";
/// Steps per escalation: two, then the one repeat's two.
const STEPS: i64 = 4;
/// Connections the reports are posted on, beside the alerts' connections.
const REPORT_CONNECTIONS: usize = 4;
/// The target for both latencies.
const TARGET: Duration = Duration::from_secs(1);

fn service(i: usize) -> String {
    format!("svc-{i}")
}

/// The catalog as JSON (which the YAML import reads): every person has a webhook
/// contact at `hooks`.
fn world(hooks: &str) -> String {
    let people: Vec<Value> = (0..TEAMS * TEAM_SIZE)
        .map(|i| {
            json!({"id": format!("p{i}"), "name": format!("Person {i}"), "timezone": "Europe/London",
                   "contacts": [{"type": "webhook", "url": format!("{hooks}/p{i}")}]})
        })
        .collect();
    let teams: Vec<Value> = (0..TEAMS)
        .map(|t| {
            let members: Vec<String> = (0..TEAM_SIZE)
                .map(|m| format!("p{}", t * TEAM_SIZE + m))
                .collect();
            json!({"id": format!("team-{t}"), "name": format!("Team {t}"), "members": members,
                   "escalation_policy": format!("team-{t}")})
        })
        .collect();
    let policies: Vec<Value> = (0..TEAMS)
        .map(|t| {
            json!({"id": format!("team-{t}"), "repeat": 1, "steps": [
                {"targets": [format!("person:p{}", t * TEAM_SIZE)], "escalate_after": ESCALATE_AFTER},
                {"targets": [format!("team:team-{t}")], "escalate_after": ESCALATE_AFTER}]})
        })
        .collect();
    let services: Vec<Value> = (0..ALERTING + QUIET)
        .map(|i| {
            json!({"id": service(i), "name": format!("Service {i}"), "owner": format!("team-{}", i % TEAMS),
                   "tier": i % 3 + 1, "incidents": {"group_by": ["alertname"]}})
        })
        .collect();
    // Five distinct services each (197 * k mod 1,100 differs for k < 5).
    let organisations: Vec<Value> = (0..ORGANISATIONS)
        .map(|o| {
            let uses: Vec<String> = (0..5)
                .map(|k| service((o * 7 + k * 197) % (ALERTING + QUIET)))
                .collect();
            json!({"id": format!("org-{o}"), "name": format!("Organisation {o}"), "uses": uses})
        })
        .collect();
    json!({"people": people, "teams": teams, "escalation_policies": policies,
           "services": services, "organisations": organisations})
    .to_string()
}

/// `count` distinct alerts: alert `i` is service `i mod 1,000`'s, named by `i / 1,000`,
/// so every (service, alertname) group receives alerts throughout the burst.
fn alert_bodies(count: usize) -> Vec<bytes::Bytes> {
    let mut alerts = intake::alerts(count, "incidents");
    for (i, alert) in alerts.iter_mut().enumerate() {
        let (s, name) = (i % ALERTING, NAMES[(i / ALERTING) % NAMES.len()]);
        alert["labels"]["service"] = json!(service(s));
        alert["labels"]["alertname"] = json!(name);
        alert["annotations"]["summary"] = json!(format!("{name} on Service {s}"));
    }
    intake::batches(&alerts, 64)
}

/// Report `j`: three in five name an alerting service, one in five a quiet service
/// (ten per quiet service, from five organisations: a flood), one in five no service
/// (matched by resemblance, or left in triage).
fn report_body(j: usize) -> Value {
    let organisation = format!("org-{}", (j / 5) % ORGANISATIONS);
    let channel = muster_domain::incidents::reports::CHANNELS[j % 6];
    let (service, summary) = match j % 5 {
        0..=2 => {
            let s = (j * 7) % ALERTING;
            (Some(service(s)), format!("Service {s} fails for us"))
        }
        3 => {
            let s = ALERTING + (j / 5) % QUIET;
            (Some(service(s)), format!("Service {s} fails for us"))
        }
        _ => {
            let s = (j * 13) % ALERTING;
            let name = NAMES[(j / 5) % NAMES.len()];
            (None, format!("{name} on Service {s}"))
        }
    };
    json!({"organisation": organisation, "service": service, "summary": summary,
           "details": "Seen by our staff since this morning", "reporter": "helpdesk", "channel": channel})
}

/// What posting the reports gave.
struct Reports {
    /// Per request, sorted.
    latencies: Vec<Duration>,
    /// Answered with an incident: joined in the request itself.
    joined_at_once: usize,
    refused: usize,
}

async fn post_reports(base: &str, token: &str, count: usize) -> anyhow::Result<Reports> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..REPORT_CONNECTIONS {
        let (url, token, next) = (
            format!("{base}/api/v1/reports"),
            token.to_string(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut latencies, mut joined, mut refused) = (Vec::new(), 0, 0);
            loop {
                let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if j >= count {
                    break;
                }
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&report_body(j))
                    .send()
                    .await?;
                if response.status() != reqwest::StatusCode::CREATED {
                    refused += 1;
                    continue;
                }
                let body: Value = response.json().await?;
                latencies.push(sent.elapsed());
                joined += usize::from(body["incident"].is_string());
            }
            anyhow::Ok((latencies, joined, refused))
        }));
    }
    let mut reports = Reports {
        latencies: Vec::new(),
        joined_at_once: 0,
        refused: 0,
    };
    for task in tasks {
        let (latencies, joined, refused) = task.await??;
        reports.latencies.extend(latencies);
        reports.joined_at_once += joined;
        reports.refused += refused;
    }
    reports.latencies.sort();
    Ok(reports)
}

/// The later steps, each as (name, lateness query, due-span query).
const LATER_STEPS: [(&str, &str, &str); 3] = [
    (
        "pass 1 step 2 (team)",
        "SELECT fired_at - due_at FROM incident_pages WHERE pass = 0 AND step = 1",
        "SELECT MAX(due_at) - MIN(due_at) FROM incident_pages WHERE pass = 0 AND step = 1",
    ),
    (
        "pass 2 step 1 (person)",
        "SELECT fired_at - due_at FROM incident_pages WHERE pass = 1 AND step = 0",
        "SELECT MAX(due_at) - MIN(due_at) FROM incident_pages WHERE pass = 1 AND step = 0",
    ),
    (
        "pass 2 step 2 (team)",
        "SELECT fired_at - due_at FROM incident_pages WHERE pass = 1 AND step = 1",
        "SELECT MAX(due_at) - MIN(due_at) FROM incident_pages WHERE pass = 1 AND step = 1",
    ),
];

/// Sorted millisecond figures as durations.
fn durations(mut ms: Vec<i64>) -> Vec<Duration> {
    ms.sort_unstable();
    ms.into_iter()
        .map(|m| Duration::from_millis(m.max(0) as u64))
        .collect()
}

/// One backend's figures.
pub struct Figures {
    backend: &'static str,
    alerts_posted: u64,
    alerts_refused: u64,
    burst: Duration,
    /// How long the alerts alone took to post.
    alerts_elapsed: Duration,
    alert_posts: Vec<Duration>,
    reports: Reports,
    joins: Vec<Duration>,
    open_incidents: i64,
    flood_incidents: i64,
    reports_in_incidents: i64,
    first_steps: Vec<Duration>,
    later_steps: Vec<Duration>,
    /// From an incident's first alert arriving to its first page.
    alert_to_page: Vec<Duration>,
    /// Per later step (as [`LATER_STEPS`]): its lateness, sorted, and the span its due
    /// times cover (the wave it falls due in).
    waves: Vec<(Vec<Duration>, Duration)>,
    messages: i64,
    deliveries: usize,
    delivered_twice: usize,
}

async fn measure(
    backend: &'static str,
    dir: &Path,
    database_url: &str,
    args: &Args,
) -> anyhow::Result<Figures> {
    eprintln!("{backend}, incidents:");
    let receiver = Receiver::start().await?;
    let (peer, admin) = server::muster(dir, database_url, &world(&receiver.url)).await?;
    let key: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/integration-keys", peer.base))
        .bearer_auth(&admin)
        .json(&json!({"name": "bench", "service_label": "service", "fallback_service": service(0)}))
        .send()
        .await?
        .json()
        .await?;
    let load = Load {
        url: peer.base.clone(),
        key: Some(key["key"].as_str().context("a global key")?.to_string()),
        connections: args.connections,
        batch: 64,
        cardinality: args.alerts,
        duration: Duration::ZERO,
    };
    let bodies = Arc::new(alert_bodies(args.alerts));
    eprintln!(
        "  burst: {} alerts on {} connections and {} reports on {REPORT_CONNECTIONS}",
        args.alerts, args.connections, args.reports
    );
    let started = Instant::now();
    let (alerts, reports) = tokio::join!(
        intake::run(&load, bodies),
        post_reports(&peer.base, &admin, args.reports)
    );
    let (alerts, reports) = (alerts?, reports?);
    let burst = started.elapsed();

    let reader = Direct::open(database_url, &dir.join("muster.db"), true).await?;
    reader
        .wait_for(
            "alerts joined",
            "SELECT COUNT(*) FROM incident_alerts",
            alerts.acknowledged as i64,
        )
        .await?;
    let incidents = reader
        .count("SELECT COUNT(*) FROM incidents WHERE state <> 'resolved'")
        .await?;
    reader
        .wait_for(
            "escalation steps fired",
            "SELECT COUNT(*) FROM incident_pages",
            incidents * STEPS,
        )
        .await?;
    let (deliveries, distinct) = {
        let seen = receiver.seen();
        (seen.requests, seen.ids.len())
    };
    let figures = Figures {
        backend,
        alerts_posted: alerts.acknowledged,
        alerts_refused: alerts.failed,
        burst,
        alerts_elapsed: alerts.elapsed,
        alert_posts: alerts.latencies,
        reports,
        joins: durations(
            reader
                .numbers("SELECT ia.joined_at - a.received_at FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id")
                .await?,
        ),
        open_incidents: reader
            .count("SELECT COUNT(*) FROM incidents WHERE state <> 'resolved'")
            .await?,
        flood_incidents: reader
            .count("SELECT COUNT(*) FROM incidents WHERE opened_by = 'flood'")
            .await?,
        reports_in_incidents: reader
            .count("SELECT COUNT(*) FROM reports WHERE incident_id IS NOT NULL")
            .await?,
        first_steps: durations(
            reader
                .numbers("SELECT fired_at - due_at FROM incident_pages WHERE pass = 0 AND step = 0")
                .await?,
        ),
        later_steps: durations(
            reader
                .numbers("SELECT fired_at - due_at FROM incident_pages WHERE pass > 0 OR step > 0")
                .await?,
        ),
        alert_to_page: durations(
            reader
                .numbers(
                    "SELECT p.fired_at - MIN(a.received_at) FROM incident_pages p \
                     JOIN incident_alerts ia ON ia.incident_id = p.incident_id JOIN alerts a ON a.id = ia.alert_id \
                     WHERE p.pass = 0 AND p.step = 0 GROUP BY p.incident_id, p.fired_at",
                )
                .await?,
        ),
        waves: {
            let mut waves = Vec::new();
            for (_, lateness, span) in LATER_STEPS {
                let span = Duration::from_millis(reader.count(span).await?.max(0) as u64);
                waves.push((durations(reader.numbers(lateness).await?), span));
            }
            waves
        },
        messages: reader.count("SELECT COUNT(*) FROM notifications").await?,
        deliveries,
        delivered_twice: deliveries - distinct,
    };
    drop(peer);
    Ok(figures)
}

pub async fn benchmark(args: &Args, databases: &mut Databases) -> anyhow::Result<Vec<Figures>> {
    let dir = databases.dir.join("incidents");
    let sqlite_dir = dir.join("muster-sqlite");
    let sqlite = format!("sqlite://{}", sqlite_dir.join("muster.db").display());
    let mut figures = vec![measure("SQLite", &sqlite_dir, &sqlite, args).await?];
    if let Some(url) = databases.postgres_url("incidents").await? {
        figures.push(measure("PostgreSQL", &dir.join("muster-postgres"), &url, args).await?);
    }
    Ok(figures)
}

fn p(sorted: &[Duration], at: f64) -> String {
    if sorted.is_empty() {
        "–".into()
    } else {
        format!("{:.0} ms", ms(percentile(sorted, at)))
    }
}

pub fn report(figures: &[Figures], args: &Args) {
    println!(
        "\n## Incidents: {} alerts over {ALERTING} services and {} reports in one burst\n",
        args.alerts, args.reports
    );
    println!(
        "| backend | burst | alert POST p99 | joined: p50 | p99 | max | report POST p50 | p99 | reports joined at once | in incidents | open incidents (floods) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {:.1} s ({:.0} alerts/s, {} refused) | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) |",
            f.backend,
            f.burst.as_secs_f64(),
            f.alerts_posted as f64 / f.alerts_elapsed.as_secs_f64(),
            f.alerts_refused + f.reports.refused as u64,
            p(&f.alert_posts, 0.99),
            p(&f.joins, 0.50),
            p(&f.joins, 0.99),
            p(&f.joins, 1.0),
            p(&f.reports.latencies, 0.50),
            p(&f.reports.latencies, 0.99),
            f.reports.joined_at_once,
            f.reports_in_incidents,
            f.open_incidents,
            f.flood_incidents
        );
    }
    println!(
        "\n## Escalation: two steps {ESCALATE_AFTER} apart and one repeat, every incident open, lateness = fired − due\n"
    );
    println!(
        "| backend | steps fired | first step p50 | p99 | max | first alert → first page p50 | p99 | later steps p50 | p99 | max | messages queued | webhook requests | sent twice |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.backend,
            f.first_steps.len() + f.later_steps.len(),
            p(&f.first_steps, 0.50),
            p(&f.first_steps, 0.99),
            p(&f.first_steps, 1.0),
            p(&f.alert_to_page, 0.50),
            p(&f.alert_to_page, 0.99),
            p(&f.later_steps, 0.50),
            p(&f.later_steps, 0.99),
            p(&f.later_steps, 1.0),
            f.messages,
            f.deliveries,
            f.delivered_twice
        );
    }
    println!(
        "\nLater steps by step: each falls due in a wave as wide as the incidents took to open\n"
    );
    println!("| backend | step | due within | late p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for f in figures {
        for ((name, _, _), (lateness, span)) in LATER_STEPS.iter().zip(&f.waves) {
            println!(
                "| {} | {name} | {:.1} s | {} | {} | {} | {} |",
                f.backend,
                span.as_secs_f64(),
                p(lateness, 0.50),
                p(lateness, 0.90),
                p(lateness, 0.99),
                p(lateness, 1.0)
            );
        }
    }
    println!("\nAgainst the targets (p99 / 1 s; below 1.00 meets it):");
    let ratio = |sorted: &[Duration]| {
        if sorted.is_empty() {
            f64::NAN
        } else {
            percentile(sorted, 0.99).as_secs_f64() / TARGET.as_secs_f64()
        }
    };
    for f in figures {
        let steps: Vec<Duration> = {
            let mut all = [f.first_steps.clone(), f.later_steps.clone()].concat();
            all.sort();
            all
        };
        println!(
            "  {:<10} signal joined {:.2} (alerts: arrival at intake to joined, from the database), \
             {:.2} (alert POSTs: sent to answered, after the join), {:.2} (reports, joined in the request); \
             escalation step fired {:.2}",
            f.backend,
            ratio(&f.joins),
            ratio(&f.alert_posts),
            ratio(&f.reports.latencies),
            ratio(&steps)
        );
    }
}
