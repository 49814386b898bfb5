//! `muster serve` and `muster demo`.

use crate::cli::{Resolved, import_document, open_store};
use crate::config::DEFAULT_LISTEN;
use anyhow::{Context, bail};
use clap::Args;
use muster_domain::audit::Actor;
use muster_domain::auth::Role;
use muster_domain::catalog::parse::Format;
use muster_domain::clock::Clock;
use muster_store::auth::NewGrant;
use muster_store::secrets::random_token;
use muster_store::{DatabaseUrl, Store};
use std::process::ExitCode;
use std::time::Duration;

/// The demo world: the five stories' company (also the catalog format's contract).
pub const SEED_WORLD: &str = include_str!("../../../fixtures/seed-world.yaml");
const DEMO_DATABASE_URL: &str = "sqlite://muster-demo.db";
const DEMO_USER: &str = "demo";

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long, env = "MUSTER_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Base URL of links in messages and pages. [default: http:// + the listen address]
    #[arg(long, env = "MUSTER_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Start a test clock (at the given RFC 3339 instant, or now) that an admin moves
    /// with POST /api/v1/test/clock. For end-to-end tests only.
    #[arg(long, value_name = "INSTANT", num_args = 0..=1, default_missing_value = "now")]
    pub test_clock: Option<String>,
    /// Load the demo world and create the demo admin before serving.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Args, Clone)]
pub struct DemoArgs {
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long, env = "MUSTER_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Base URL of links in messages and pages. [default: http:// + the listen address]
    #[arg(long, env = "MUSTER_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
}

pub async fn demo(resolved: &Resolved, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let mut resolved_demo;
    let resolved = if resolved.database_url_given {
        resolved
    } else {
        resolved_demo = Resolved {
            database_url: DEMO_DATABASE_URL
                .parse()
                .map_err(|e: String| anyhow::anyhow!(e))?,
            ..resolved.clone()
        };
        resolved_demo.database_url_given = true;
        &resolved_demo
    };
    let args = ServeArgs {
        listen: args.listen,
        public_url: args.public_url,
        test_clock: None,
        demo: true,
    };
    serve(resolved, args).await
}

/// Holds the one-server-per-SQLite-file lock for as long as the server runs.
struct ServeLock(#[allow(dead_code)] std::fs::File);

fn lock_sqlite(url: &DatabaseUrl) -> anyhow::Result<Option<ServeLock>> {
    let DatabaseUrl::Sqlite { path, .. } = url else {
        return Ok(None);
    };
    // Through symbolic links too: one file, one lock.
    let path = &std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
    let lock_path = path.with_extension(match path.extension() {
        Some(ext) => format!("{}.serve-lock", ext.to_string_lossy()),
        None => "serve-lock".into(),
    });
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot create lock file {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(ServeLock(file))),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `muster serve` is already running on {} (it holds {}). One server per SQLite file; \
             other muster commands may still use it. To run several servers, use PostgreSQL.",
            path.display(),
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", lock_path.display()))
        }
    }
}

pub async fn serve(resolved: &Resolved, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let listen = args
        .listen
        .clone()
        .or(resolved.file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let _lock = lock_sqlite(&resolved.database_url)?;
    // Settings errors stop the server before it touches the database.
    let smtp = resolved
        .file
        .smtp
        .as_ref()
        .map(|smtp| smtp.settings())
        .transpose()?;
    let senders = muster_notify::Senders::new(smtp.as_ref()).map_err(|e| anyhow::anyhow!(e))?;
    let throttles = resolved.file.throttles()?;
    let alert_retention = resolved.file.alert_retention()?;
    let change_settings = resolved.file.change_settings()?;
    let probe_settings = resolved.file.probe_settings()?;
    let clock = match args.test_clock.as_deref() {
        None => Clock::System,
        Some("now") => Clock::test(jiff::Timestamp::now()),
        Some(at) => Clock::test(
            at.parse()
                .map_err(|_| anyhow::anyhow!("--test-clock: {at:?} is not an RFC 3339 instant"))?,
        ),
    };
    let store = open_store(resolved, clock).await?;
    let demo_login = if args.demo {
        Some(load_demo(&store).await?)
    } else {
        None
    };

    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .or(resolved.file.public_url.clone())
        .unwrap_or_else(|| format!("http://{address}"));
    let mut state = muster_web::AppState::new(store.clone(), public_url.clone());
    state.changes = change_settings;
    state.prober = probe_settings.prober.clone();
    let app = muster_web::router(state);

    let engine = muster_engine::start(
        store.clone(),
        senders,
        muster_engine::Settings {
            throttles,
            alert_retention,
            public_url: public_url.trim_end_matches('/').to_string(),
            probes: probe_settings,
        },
    );
    tokio::spawn(log_audit_head(store.clone()));
    eprintln!(
        "muster listening on http://{address} (database {}, public URL {public_url})",
        resolved.database_url.redacted()
    );
    if store.clock().is_test() {
        eprintln!(
            "test clock at {}; move it with POST /api/v1/test/clock",
            store.clock().now()
        );
    }
    if let Some(password) = demo_login {
        eprintln!(
            "\n  Demo ready: open {public_url}/ and sign in as `{DEMO_USER}` with password `{password}`\n"
        );
    }
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("the server failed")?;
    // Claims held by unfinished attempts expire and are taken up after a restart.
    for module in engine {
        module.abort();
    }
    store.close().await;
    eprintln!("muster stopped");
    Ok(ExitCode::SUCCESS)
}

/// Imports the demo world and (re)creates the demo admin with a fresh password.
async fn load_demo(store: &Store) -> anyhow::Result<String> {
    let actor = Actor::new("system:demo");
    let summary = import_document(store, SEED_WORLD, Format::Yaml, false, &actor).await?;
    tracing::info!("demo world loaded\n{summary}");
    let password = random_token(16);
    let exists = store.users().await?.iter().any(|u| u.username == DEMO_USER);
    if exists {
        store
            .set_password(&actor, DEMO_USER, password.clone())
            .await?;
    } else {
        let grant = NewGrant {
            role: Role::Admin,
            team: None,
            person: None,
        };
        store
            .create_user(&actor, DEMO_USER, password.clone(), grant)
            .await?;
    }
    Ok(password)
}

/// Logs the audit head periodically so a truncated or rewritten log can be caught
/// against a head kept elsewhere (the log).
async fn log_audit_head(store: Store) {
    let mut last = None;
    loop {
        match store.audit_head().await {
            Ok((seq, hash)) if last.as_ref() != Some(&hash) => {
                tracing::info!(seq, %hash, "audit head");
                last = Some(hash);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the audit head"),
        }
        tokio::time::sleep(Duration::from_secs(300)).await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    eprintln!("shutting down: finishing requests in flight");
}
