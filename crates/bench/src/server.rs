//! Servers under test as their own processes on loopback: the `muster` binary built
//! next to this one, and any peer the benchmarks compare it with.

use anyhow::{Context, bail};
use axum::http::HeaderMap;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A server process under test, killed when dropped.
pub struct Peer {
    pub child: Child,
    pub base: String,
    /// The key alerts are posted with, when the server needs one.
    pub key: Option<String>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    pub fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} did not become ready")
}

/// The `muster` binary next to this one.
fn muster_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name("muster");
    if !path.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p muster` (scripts/bench.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// `muster serve` on `database_url` with `catalog` (YAML or JSON) imported; returns
/// the server and an admin token.
pub async fn muster(
    dir: &Path,
    database_url: &str,
    catalog: &str,
) -> anyhow::Result<(Peer, String)> {
    std::fs::create_dir_all(dir)?;
    let binary = muster_binary()?;
    let env = |c: &mut Command| {
        c.env("MUSTER_DATABASE_URL", database_url)
            .env("MUSTER_SECRET_KEY_FILE", dir.join("muster.key"))
            .env("MUSTER_LOG", "warn")
            .current_dir(dir);
    };
    let mut token = Command::new(&binary);
    token.args(["token", "create", "--name", "bench", "--role", "admin"]);
    env(&mut token);
    let out = token.output()?;
    if !out.status.success() {
        bail!(
            "muster token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = String::from_utf8(out.stdout)?.trim().to_string();
    let mut serve = Command::new(&binary);
    serve
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    env(&mut serve);
    let mut child = serve.spawn()?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("muster listening on ") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .context("muster serve did not start")?;
    let peer = Peer {
        child,
        base: base.clone(),
        key: None,
    };
    let imported = reqwest::Client::new()
        .put(format!("{base}/api/v1/catalog"))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body(catalog.to_string())
        .send()
        .await?;
    if !imported.status().is_success() {
        bail!("importing the catalog: {}", imported.text().await?);
    }
    Ok((peer, token))
}

/// What a [`Receiver`] has seen: delivery ids, and how many requests it answered.
#[derive(Default)]
pub struct Seen {
    pub ids: HashSet<String>,
    pub requests: usize,
}

/// A webhook receiver on loopback that answers every POST under `/hook/` with 204.
pub struct Receiver {
    /// Base URL; contact methods append `/{anything}`.
    pub url: String,
    seen: Arc<Mutex<Seen>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Receiver> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        let app = axum::Router::new().route(
            "/hook/{n}",
            axum::routing::post(move |headers: HeaderMap| {
                let state = state.clone();
                async move {
                    let id = headers
                        .get("x-muster-delivery")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let mut seen = state.lock().unwrap_or_else(|e| e.into_inner());
                    seen.requests += 1;
                    seen.ids.insert(id);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { url, seen, server })
    }

    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
