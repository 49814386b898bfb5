//! Renewals at scale:
//! - **Reminder pass** over 1,000,000 renewables (expiries spread over two years, five
//!   kinds): the catch-up pass that sends every reminder due (the first start after an
//!   import), the pass after a restart (nothing new is due: every candidate is asked
//!   about), and the steady pass a minute later — each against the 2 s target.
//! - **TLS probes**: 1,000 probes of loopback TLS servers (tokio-rustls, one
//!   certificate each), at the default concurrency, against the 10 s target.
//! - **`muster scan`** throughput in MB/s on a tree of mixed binaries (this machine's
//!   own programs and libraries, plus planted certificates and archives), beside
//!   `grep -c` over the same tree as a yardstick.

use crate::direct::Direct;
use crate::{Args, Databases, Rng, progress};
use jiff::{SignedDuration, Timestamp};
use muster_domain::clock::Clock;
use muster_domain::renewals::Renewable;
use muster_domain::renewals::probes::Outcome;
use muster_domain::renewals::{Verify, days};
use muster_engine::renewals::Reminders;
use muster_probe::Prober;
use muster_store::Store;
use muster_store::secrets::SecretBox;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHUNK: usize = 1_000;
const KINDS: [&str; 5] = [
    "licence",
    "certificate",
    "subscription",
    "domain",
    "api_key",
];

pub struct PassFigures {
    backend: &'static str,
    renewables: usize,
    catch_up: Duration,
    sent: usize,
    restart: Duration,
    steady: Duration,
}

/// Loads `n` renewables as catalog rows, expiring from 10 days ago to two years ahead.
async fn load(direct: &Direct, n: usize, now: Timestamp) -> anyhow::Result<()> {
    let mut rng = Rng(0x005E_ED0F_2E4E_3A15);
    let mut rows = Vec::with_capacity(CHUNK);
    let now_ms = now.as_millisecond();
    for i in 0..n {
        let expires = now - days(10) + SignedDuration::from_secs(rng.below(740 * 86_400) as i64);
        let kind = KINDS[rng.below(KINDS.len())];
        rows.push(format!(
            "('r{i}', '{{\"id\":\"r{i}\",\"name\":\"Renewable {i}\",\"kind\":\"{kind}\",\"owner\":\"team-{}\",\"expires_at\":\"{expires}\"}}', {now_ms}, {now_ms})",
            i % 200
        ));
        if rows.len() == CHUNK || i + 1 == n {
            direct
                .execute(format!(
                    "INSERT INTO renewables (id, body, created_at, updated_at) VALUES {}",
                    rows.join(", ")
                ))
                .await?;
            rows.clear();
            progress("renewables", i + 1, n);
        }
    }
    direct
        .execute("UPDATE catalog_meta SET generation = generation + 1 WHERE id = 1".into())
        .await
}

async fn pass_figures(
    backend: &'static str,
    url: &str,
    sqlite_file: &Path,
    n: usize,
) -> anyhow::Result<PassFigures> {
    eprintln!("{backend}, renewal reminders:");
    let now: Timestamp = "2026-11-23T10:00:00Z".parse()?;
    let clock = Clock::test(now);
    let store = Store::open(
        &url.parse().map_err(anyhow::Error::msg)?,
        SecretBox::from_key([1; 32]),
        clock.clone(),
    )
    .await?;
    let direct = Direct::open(url, sqlite_file, false).await?;
    load(&direct, n, now).await?;
    if let Direct::Postgres(_) = direct {
        direct.execute("ANALYZE".to_string()).await?;
    }
    store.catalog().await?;
    let mut engine = Reminders::default();
    let started = Instant::now();
    let sent = engine.pass(&store).await?;
    let catch_up = started.elapsed();
    eprintln!(
        "  catch-up pass: {sent} reminders in {:.2} s",
        catch_up.as_secs_f64()
    );
    // A restart: the engine forgets; everything due was sent.
    clock.advance(SignedDuration::from_secs(60));
    let mut restarted = Reminders::default();
    let started = Instant::now();
    let again = restarted.pass(&store).await?;
    let restart = started.elapsed();
    clock.advance(SignedDuration::from_secs(60));
    let started = Instant::now();
    let steady_sent = restarted.pass(&store).await?;
    let steady = started.elapsed();
    eprintln!(
        "  after a restart: {again} sent in {:.2} s; a minute later: {steady_sent} sent in {:.3} s",
        restart.as_secs_f64(),
        steady.as_secs_f64()
    );
    store.close().await;
    Ok(PassFigures {
        backend,
        renewables: n,
        catch_up,
        sent,
        restart,
        steady,
    })
}

/// `count` loopback TLS servers, each serving its own certificate; answers their ports.
async fn tls_servers(count: usize) -> anyhow::Result<Vec<u16>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut ports = Vec::with_capacity(count);
    for i in 0..count {
        let key = rcgen::KeyPair::generate()?;
        let cert =
            rcgen::CertificateParams::new(vec![format!("server-{i}.test")])?.self_signed(&key)?;
        let config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
                    .map_err(anyhow::Error::msg)?,
            )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        ports.push(listener.local_addr()?.port());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(socket).await;
                });
            }
        });
    }
    Ok(ports)
}

pub struct ProbeFigures {
    probes: usize,
    servers: usize,
    elapsed: Duration,
    failed: usize,
}

async fn probe_figures(probes: usize) -> anyhow::Result<ProbeFigures> {
    eprintln!("TLS probes:");
    let servers = 50;
    let ports = tls_servers(servers).await?;
    let prober = Prober::new(&[], muster_probe::DEFAULT_TIMEOUT).map_err(anyhow::Error::msg)?;
    let renewable = Renewable::read(&serde_json::json!({
        "id": "bench", "name": "Bench", "kind": "certificate", "owner": "team-0",
        "expires_at": "2027-01-01T00:00:00Z"}))
    .map_err(|(f, w)| anyhow::anyhow!("{f}: {w}"))?;
    let plans: Vec<(String, Verify)> = (0..probes)
        .map(|i| {
            let port = ports[i % ports.len()];
            (
                format!("t{i}"),
                Verify::Tls {
                    host: format!("127.0.0.1:{port}"),
                    sni: Some(format!("server-{}.test", i % ports.len())),
                },
            )
        })
        .collect();
    let started = Instant::now();
    let findings = prober
        .probe_all(
            vec![(renewable, plans)],
            muster_probe::DEFAULT_CONCURRENCY,
            Timestamp::now(),
        )
        .await;
    let elapsed = started.elapsed();
    let failed = findings
        .iter()
        .filter(|(_, f)| matches!(f.outcome, Outcome::Failed { .. }))
        .count();
    eprintln!(
        "  {probes} probes in {:.2} s ({failed} failed)",
        elapsed.as_secs_f64()
    );
    Ok(ProbeFigures {
        probes,
        servers,
        elapsed,
        failed,
    })
}

pub struct ScanFigures {
    files: u64,
    bytes: u64,
    found: usize,
    elapsed: Duration,
    grep: Option<Duration>,
}

/// A tree of mixed binaries: this machine's programs and shared libraries (copied),
/// a few archives, and certificates planted in them.
fn scan_tree(dir: &Path) -> anyhow::Result<PathBuf> {
    let tree = dir.join("scan-tree");
    std::fs::create_dir_all(&tree)?;
    let mut budget: u64 = 400 << 20;
    for source in [
        "/usr/bin",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ] {
        let Ok(entries) = std::fs::read_dir(source) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            let Ok(meta) = std::fs::symlink_metadata(&file) else {
                continue;
            };
            if !meta.is_file() || meta.len() > budget {
                continue;
            }
            let name = file.to_string_lossy().replace('/', "_");
            if std::fs::copy(&file, tree.join(name)).is_ok() {
                budget = budget.saturating_sub(meta.len());
            }
            if budget < 1 << 20 {
                break;
            }
        }
    }
    let key = rcgen::KeyPair::generate()?;
    let cert =
        rcgen::CertificateParams::new(vec!["api.bench.test".to_string()])?.self_signed(&key)?;
    let mut planted = std::fs::read("/usr/bin/env").unwrap_or_default();
    planted.extend(cert.pem().as_bytes());
    std::fs::write(tree.join("client-with-pem"), &planted)?;
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    archive.start_file("res/raw/api.der", zip::write::SimpleFileOptions::default())?;
    std::io::Write::write_all(&mut archive, cert.der())?;
    std::fs::write(tree.join("client.apk"), archive.finish()?.into_inner())?;
    Ok(tree)
}

fn scan_figures(dir: &Path) -> anyhow::Result<ScanFigures> {
    eprintln!("scan:");
    let tree = scan_tree(dir)?;
    let started = Instant::now();
    let report = muster_probe::scan::scan_paths(std::slice::from_ref(&tree), &mut |_| {});
    let elapsed = started.elapsed();
    let grep_started = Instant::now();
    let grep = std::process::Command::new("grep")
        .args(["-r", "-c", "-a", "BEGIN CERTIFICATE"])
        .arg(&tree)
        .stdout(std::process::Stdio::null())
        .status()
        .ok()
        .map(|_| grep_started.elapsed());
    std::fs::remove_dir_all(&tree)?;
    Ok(ScanFigures {
        files: report.files,
        bytes: report.bytes,
        found: report.hits.len(),
        elapsed,
        grep,
    })
}

pub struct Figures {
    passes: Vec<PassFigures>,
    probes: ProbeFigures,
    scan: ScanFigures,
}

pub async fn benchmark(args: &Args, databases: &mut Databases) -> anyhow::Result<Figures> {
    let mut passes = Vec::new();
    for (backend, url, sqlite_file) in databases.urls("renewals").await? {
        passes.push(pass_figures(backend, &url, &sqlite_file, args.renewables).await?);
    }
    let probes = probe_figures(args.probes).await?;
    let scan = scan_figures(&databases.dir)?;
    Ok(Figures {
        passes,
        probes,
        scan,
    })
}

pub fn report(figures: &Figures) {
    println!("\nRenewal reminder pass");
    println!(
        "| backend | renewables | catch-up pass (reminders sent) | pass after a restart | steady pass |"
    );
    println!("|---|---|---|---|---|");
    for f in &figures.passes {
        println!(
            "| {} | {} | {:.2} s ({}) | {:.2} s | {:.3} s |",
            f.backend,
            f.renewables,
            f.catch_up.as_secs_f64(),
            f.sent,
            f.restart.as_secs_f64(),
            f.steady.as_secs_f64()
        );
    }
    let p = &figures.probes;
    println!(
        "\nTLS probes: {} probes of {} loopback servers in {:.2} s ({:.0} probes/s, {} failed)",
        p.probes,
        p.servers,
        p.elapsed.as_secs_f64(),
        p.probes as f64 / p.elapsed.as_secs_f64(),
        p.failed
    );
    let s = &figures.scan;
    let mb = s.bytes as f64 / 1e6;
    println!(
        "\nmuster scan: {} files, {mb:.1} MB in {:.2} s: {:.1} MB/s, {} found",
        s.files,
        s.elapsed.as_secs_f64(),
        mb / s.elapsed.as_secs_f64(),
        s.found
    );
    if let Some(grep) = s.grep {
        println!(
            "  grep -r -c 'BEGIN CERTIFICATE' over the same tree: {:.2} s, {:.1} MB/s (muster scan / grep time: {:.2})",
            grep.as_secs_f64(),
            mb / grep.as_secs_f64(),
            s.elapsed.as_secs_f64() / grep.as_secs_f64()
        );
    }
    println!("\nAgainst the targets (figure / target; below 1.00 meets it):");
    for f in &figures.passes {
        println!(
            "  {:<10} pass after a restart {:.2}, steady pass {:.3}, catch-up pass {:.2} (target 2 s)",
            f.backend,
            f.restart.as_secs_f64() / 2.0,
            f.steady.as_secs_f64() / 2.0,
            f.catch_up.as_secs_f64() / 2.0
        );
    }
    println!(
        "  TLS probes {:.2} (target 10 s for 1,000)",
        p.elapsed.as_secs_f64() / 10.0 * 1000.0 / p.probes as f64
    );
}
