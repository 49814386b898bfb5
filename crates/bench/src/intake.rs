//! Alert intake: a load generator that posts varied Alertmanager batches to any
//! Alertmanager-compatible URL, and a benchmark that runs it, in one run, against
//! Debian's Alertmanager 0.25 and the `muster` binary on SQLite (durable: a 2xx means
//! committed) and PostgreSQL. Both servers run as their own processes on loopback and
//! share the machine with the load generator, as `wrk` would.

use super::server::{self, Peer, free_port, wait_ready};
use super::{Rng, ms, percentile};
use anyhow::{Context, bail};
use reqwest::StatusCode;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the load generator sends.
#[derive(Clone, Debug)]
pub struct Load {
    /// Base URL of an Alertmanager-compatible server (`…/api/v2/alerts` is appended).
    pub url: String,
    /// Sent as `Authorization: Bearer`.
    pub key: Option<String>,
    pub connections: usize,
    pub batch: usize,
    /// Distinct alerts cycled through (the active-alert cardinality).
    pub cardinality: usize,
    pub duration: Duration,
}

pub struct LoadResult {
    pub acknowledged: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Per request, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.acknowledged as f64 / self.elapsed.as_secs_f64()
    }
}

pub const NAMES: [&str; 10] = [
    "HighCPU",
    "DiskFull",
    "MemoryPressure",
    "HTTP5xxRate",
    "LatencyHigh",
    "TargetDown",
    "CertificateExpiry",
    "QueueBacklog",
    "ReplicaLag",
    "PodCrashLooping",
];
const JOBS: [&str; 5] = ["node", "api", "postgres", "redis", "web"];
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

/// Request bodies of `batch` alerts each covering `cardinality` distinct alerts.
pub fn bodies(cardinality: usize, batch: usize, prefix: &str) -> Vec<bytes::Bytes> {
    batches(&alerts(cardinality, prefix), batch)
}

/// `count` distinct alerts with label sets like Prometheus rules produce. Times are
/// fixed: every alert fires for the next hour, so re-posts merge as Prometheus's
/// re-sends do.
pub fn alerts(count: usize, prefix: &str) -> Vec<serde_json::Value> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let now = jiff::Timestamp::now();
    let ends = (now + jiff::SignedDuration::from_hours(1)).to_string();
    (0..count)
        .map(|i| {
            let name = NAMES[rng.below(NAMES.len())];
            let job = JOBS[rng.below(JOBS.len())];
            let instance = format!("10.{}.{}.{}:9100", i / 65_536 % 256, i / 256 % 256, i % 256);
            let started = (now - jiff::SignedDuration::from_mins(rng.below(600) as i64)).to_string();
            serde_json::json!({
                "labels": {
                    "alertname": name, "instance": instance, "job": job,
                    "severity": SEVERITIES[rng.below(3)], "cluster": format!("eu-{}", rng.below(4)),
                    "namespace": format!("team-{}", rng.below(20)), "bench": prefix, "series": i.to_string(),
                },
                "annotations": {
                    "summary": format!("{name} on {instance}"),
                    "description": format!("{name} has been true for {job} on {instance} for more than 5 minutes."),
                    "runbook_url": format!("https://runbooks.example.test/{}", name.to_lowercase()),
                },
                "startsAt": started,
                "endsAt": ends,
                "generatorURL": format!("http://prometheus.example.test:9090/graph?g0.expr={name}&g0.tab=1"),
            })
        })
        .collect()
}

/// Request bodies of `batch` alerts each.
pub fn batches(alerts: &[serde_json::Value], batch: usize) -> Vec<bytes::Bytes> {
    alerts
        .chunks(batch)
        .map(|chunk| bytes::Bytes::from(serde_json::to_vec(chunk).expect("alerts serialise")))
        .collect()
}

/// Posts the bodies on `connections` connections for `duration` (or once through
/// when `duration` is zero), each connection taking the next body in turn.
pub async fn run(load: &Load, bodies: Arc<Vec<bytes::Bytes>>) -> anyhow::Result<LoadResult> {
    let url = format!("{}/api/v2/alerts", load.url.trim_end_matches('/'));
    let once = load.duration.is_zero();
    let deadline = Instant::now() + load.duration;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..load.connections {
        let (url, key, bodies, next) =
            (url.clone(), load.key.clone(), bodies.clone(), next.clone());
        let batch = load.batch as u64;
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("a client");
            let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Vec::new());
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if (once && n >= bodies.len()) || (!once && Instant::now() >= deadline) {
                    break;
                }
                let body = bodies[n % bodies.len()].clone();
                let alerts = body_alerts(&body, batch);
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(key) = &key {
                    request = request.bearer_auth(key);
                }
                let sent = Instant::now();
                match request.send().await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let _ = r.bytes().await;
                        ok += alerts;
                    }
                    _ => failed += alerts,
                }
                latencies.push(sent.elapsed());
            }
            (ok, failed, latencies)
        }));
    }
    let mut result = LoadResult {
        acknowledged: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (ok, failed, latencies) = task.await?;
        result.acknowledged += ok;
        result.failed += failed;
        result.latencies.extend(latencies);
    }
    result.elapsed = started.elapsed();
    result.latencies.sort();
    Ok(result)
}

/// How many alerts a body holds (the last body may be short).
fn body_alerts(body: &[u8], batch: u64) -> u64 {
    let alerts = body.windows(9).filter(|w| w == b"\"labels\":").count() as u64;
    if alerts == 0 { batch } else { alerts }
}

/// Debian's Alertmanager on loopback, clustering off, one receiver that sends nowhere.
async fn alertmanager(dir: &Path) -> anyhow::Result<Peer> {
    let binary = "/usr/bin/prometheus-alertmanager";
    if !Path::new(binary).exists() {
        bail!("{binary} is missing: apt-get install prometheus-alertmanager");
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("alertmanager.yml"),
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )?;
    let port = free_port()?;
    let child = Command::new(binary)
        .current_dir(dir)
        .args([
            "--config.file=alertmanager.yml",
            "--storage.path=data",
            &format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=",
            "--log.level=warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting Alertmanager")?;
    let base = format!("http://127.0.0.1:{port}");
    let peer = Peer {
        child,
        base: base.clone(),
        key: None,
    };
    wait_ready(&format!("{base}/-/ready")).await?;
    Ok(peer)
}

/// `muster serve` with the seed world and a service key for forms-printing.
async fn muster(dir: &Path, database_url: &str) -> anyhow::Result<Peer> {
    let seed = include_str!("../../../fixtures/seed-world.yaml");
    let (mut peer, admin) = server::muster(dir, database_url, seed).await?;
    let key: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/services/forms-printing/integration-keys",
            peer.base
        ))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    peer.key = Some(key["key"].as_str().context("a key")?.to_string());
    Ok(peer)
}

/// One target's figures.
pub struct Figures {
    pub name: String,
    pub load: LoadResult,
    pub rss_mb: f64,
    pub list_seconds: f64,
    pub listed: usize,
}

async fn measure(name: &str, peer: Peer, args: &super::Args) -> anyhow::Result<Figures> {
    let load = Load {
        url: peer.base.clone(),
        key: peer.key.clone(),
        connections: args.connections,
        batch: 64,
        cardinality: args.cardinality,
        duration: Duration::from_secs(args.seconds),
    };
    let throughput_bodies = Arc::new(bodies(load.cardinality, load.batch, "throughput"));
    eprintln!(
        "  {name}: {} connections, batches of 64, {} distinct alerts, {} s",
        load.connections, load.cardinality, args.seconds
    );
    let result = run(&load, throughput_bodies).await?;
    // Memory: 100,000 further distinct alerts, posted once each.
    let memory = Load {
        cardinality: args.active,
        duration: Duration::ZERO,
        ..load.clone()
    };
    let memory_bodies = Arc::new(bodies(memory.cardinality, memory.batch, "memory"));
    let posted = run(&memory, memory_bodies).await?;
    if posted.failed > 0 {
        bail!(
            "{name}: {} of the memory phase's alerts were refused",
            posted.failed
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_mb = peer.rss_mb();
    let client = reqwest::Client::new();
    let mut list = client.get(format!(
        "{}/api/v2/alerts?filter=bench%3D%22memory%22",
        peer.base
    ));
    if let Some(key) = &peer.key {
        list = list.bearer_auth(key);
    }
    let started = Instant::now();
    let listed: serde_json::Value = list.send().await?.json().await?;
    let list_seconds = started.elapsed().as_secs_f64();
    Ok(Figures {
        name: name.to_string(),
        load: result,
        rss_mb,
        list_seconds,
        listed: listed.as_array().map_or(0, Vec::len),
    })
}

pub async fn benchmark(
    args: &super::Args,
    databases: &mut super::Databases,
) -> anyhow::Result<Vec<Figures>> {
    let mut figures = Vec::new();
    let dir = databases.dir.join("intake");
    figures.push(
        measure(
            "Alertmanager 0.25",
            alertmanager(&dir.join("alertmanager")).await?,
            args,
        )
        .await?,
    );
    let sqlite = format!(
        "sqlite://{}",
        dir.join("muster-sqlite").join("muster.db").display()
    );
    figures.push(
        measure(
            "Muster, SQLite",
            muster(&dir.join("muster-sqlite"), &sqlite).await?,
            args,
        )
        .await?,
    );
    if let Some(url) = databases.postgres_url("intake").await? {
        figures.push(
            measure(
                "Muster, PostgreSQL",
                muster(&dir.join("muster-postgres"), &url).await?,
                args,
            )
            .await?,
        );
    }
    Ok(figures)
}

pub fn report(figures: &[Figures], args: &super::Args) {
    println!(
        "\n## Alert intake: Alertmanager API v2, batches of 64, {} connections\n",
        args.connections
    );
    println!(
        "| | alerts/s | p50 | p99 | refused | RSS at {} more active | GET /api/v2/alerts ({} alerts) |",
        args.active, args.active
    );
    println!("|---|---|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {:.0} | {:.1} ms | {:.1} ms | {} | {:.0} MB | {:.2} s ({}) |",
            f.name,
            f.load.rate(),
            ms(percentile(&f.load.latencies, 0.50)),
            ms(percentile(&f.load.latencies, 0.99)),
            f.load.failed,
            f.rss_mb,
            f.list_seconds,
            f.listed
        );
    }
    let Some(am) = figures.first() else { return };
    let am_p99 = ms(percentile(&am.load.latencies, 0.99));
    println!("\nRatios to Alertmanager (targets: throughput >= 1.5, p99 <= 1.0, memory < 1.0):");
    for f in &figures[1..] {
        println!(
            "- {}: throughput {:.2}, p99 {:.2}, memory {:.2}",
            f.name,
            f.load.rate() / am.load.rate(),
            ms(percentile(&f.load.latencies, 0.99)) / am_p99,
            f.rss_mb / am.rss_mb
        );
    }
}
