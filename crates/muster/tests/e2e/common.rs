//! End-to-end harness: starts the real `muster` binary on a fresh SQLite file or a
//! fresh PostgreSQL database and talks to it over HTTP.
#![allow(dead_code)]

use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const SEED_WORLD: &str = include_str!("../../../../fixtures/seed-world.yaml");
pub const START: &str = "2026-11-23T10:00:00Z";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per database backend.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        )*
    };
}

/// The PostgreSQL server tests create their databases on. Required in CI.
pub fn postgres_admin_url() -> String {
    match std::env::var("MUSTER_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) => panic!(
            "PostgreSQL tests need MUSTER_TEST_POSTGRES_URL (e.g. postgres://postgres:pg@127.0.0.1/postgres); \
             `.ci/run` installs and starts PostgreSQL and sets it"
        ),
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    // Process ids are reused between runs and test databases are kept for inspection,
    // so the wall clock makes names unique across runs too.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A fresh, empty database and a scratch directory.
pub struct Database {
    pub backend: Backend,
    pub url: String,
    pub dir: PathBuf,
}

impl Database {
    pub async fn fresh(backend: Backend) -> Database {
        // HTTP clients need one TLS crypto provider per process (the workspace builds
        // reqwest without a default one).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(unique("muster-test"));
        std::fs::create_dir_all(&dir).unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.join("muster.db").display()),
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = unique("muster_test");
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .expect("PostgreSQL is reachable");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                format!("{base}/{name}")
            }
        };
        Database { backend, url, dir }
    }

    /// Runs a `muster` subcommand against this database.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_muster"))
            .args(args)
            .env("MUSTER_DATABASE_URL", &self.url)
            .env("MUSTER_SECRET_KEY_FILE", self.dir.join("muster.key"))
            .env("MUSTER_LOG", "warn")
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("muster runs");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    /// Runs a subcommand that must succeed and returns its standard output.
    pub fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "muster {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Creates an API token with `role` (and optional extra flags) and returns it.
    pub fn token(&self, name: &str, role: &str, extra: &[&str]) -> String {
        let mut args = vec!["token", "create", "--name", name, "--role", role];
        args.extend_from_slice(extra);
        self.cli_ok(&args, None).trim().to_string()
    }

    /// Runs one SQL statement directly on the database (to tamper, or to look inside).
    pub async fn execute(&self, statement: &str) {
        let statement = sqlx::AssertSqlSafe(statement.to_string());
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
                sqlx::query(statement).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
                sqlx::query(statement).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// The first column of every row a query answers, as text.
    pub async fn texts(&self, query: &str) -> Vec<String> {
        let query = sqlx::AssertSqlSafe(query.to_string());
        let rows: Vec<(String,)> = match self.backend {
            Backend::Sqlite => sqlx::query_as(query)
                .fetch_all(&sqlx::SqlitePool::connect(&self.url).await.unwrap())
                .await
                .unwrap(),
            Backend::Postgres => sqlx::query_as(query)
                .fetch_all(&sqlx::PgPool::connect(&self.url).await.unwrap())
                .await
                .unwrap(),
        };
        rows.into_iter().map(|r| r.0).collect()
    }

    pub fn serve(&self) -> Result<Server, String> {
        Server::start(self, &[])
    }
}

impl Drop for Database {
    /// Removes what the test made: the scratch directory and, on PostgreSQL, the
    /// database (forcibly: a killed server may have left connections behind).
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.backend == Backend::Postgres {
            let Some(name) = self.url.rsplit('/').next().map(str::to_owned) else {
                return;
            };
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&pool)
                        .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running `muster serve` on a random port, stopped (SIGTERM) when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    pub client: Client,
    pub token: Option<String>,
}

impl Server {
    pub fn start(db: &Database, extra: &[&str]) -> Result<Server, String> {
        let mut args = vec!["--test-clock", START];
        args.extend_from_slice(extra);
        Server::spawn(db, &args)
    }

    /// A server on the system clock, for tests with real peers (Prometheus, amtool)
    /// that stamp alerts and silences with the real time.
    pub fn start_real_clock(db: &Database) -> Result<Server, String> {
        Server::spawn(db, &[])
    }

    fn spawn(db: &Database, extra: &[&str]) -> Result<Server, String> {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_muster"))
            .args(&args)
            .env("MUSTER_DATABASE_URL", &db.url)
            .env("MUSTER_SECRET_KEY_FILE", db.dir.join("muster.key"))
            .env("MUSTER_LOG", "warn")
            .current_dir(&db.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("muster serve runs");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("muster listening on ") {
                    let _ = tx.send(Ok(rest.split_whitespace().next().unwrap_or("").to_string()));
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            let _ = tx.send(Err(seen));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(base)) => Ok(Server {
                child,
                base,
                client: Client::new(),
                token: None,
            }),
            Ok(Err(output)) => {
                let _ = child.wait();
                Err(output)
            }
            Err(_) => {
                let _ = child.kill();
                Err("muster serve did not start within 60 s".into())
            }
        }
    }

    pub fn with_token(mut self, token: &str) -> Server {
        self.token = Some(token.to_string());
        self
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub fn as_token(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.request(Method::POST, path).json(&body)).await
    }

    /// `post` with another credential than the server's own token.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.as_token(Method::POST, path, token).json(&body)).await
    }

    pub async fn put_yaml(&self, path: &str, yaml: &str) -> (StatusCode, Value) {
        send(
            self.request(Method::PUT, path)
                .header("content-type", "application/yaml")
                .body(yaml.to_string()),
        )
        .await
    }

    /// The catalog export, as YAML text.
    pub async fn export(&self) -> String {
        let response = self
            .request(Method::GET, "/api/v1/catalog")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    pub async fn import_seed(&self) {
        let (status, body) = self.put_yaml("/api/v1/catalog", SEED_WORLD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL (no chance to flush anything) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Sends a request; the body as JSON (or as a string when it is not JSON).
pub async fn send(builder: RequestBuilder) -> (StatusCode, Value) {
    let response = builder.send().await.expect("request reaches the server");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The text at `pointer` (a JSON pointer such as `/labels/alertname`) in each item of
/// the JSON array `list`.
pub fn texts_at(list: &Value, pointer: &str) -> Vec<String> {
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"));
    items
        .iter()
        .map(|item| match item.pointer(pointer).and_then(Value::as_str) {
            Some(text) => text.to_string(),
            None => panic!("no text at {pointer} in {item}"),
        })
        .collect()
}

/// The `path: message` lines of a problem response.
pub fn problems(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["path"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A server on a fresh database with the seed world loaded and an admin token.
pub async fn seeded(backend: Backend) -> (Database, Server) {
    let db = Database::fresh(backend).await;
    let token = db.token("admin", "admin", &[]);
    let server = db.serve().expect("server starts").with_token(&token);
    server.import_seed().await;
    (db, server)
}
