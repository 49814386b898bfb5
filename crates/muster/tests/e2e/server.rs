//! The server process: health, metrics, the test clock, locking, durability,
//! shutdown and configuration.

use crate::common::{Backend, Database, seeded, send};
use crate::on_both_databases;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_databases!(
    health_readiness_and_metrics,
    acknowledged_writes_survive_a_crash,
    the_test_clock_moves_only_on_request
);

async fn health_readiness_and_metrics(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let text = |path: &'static str| {
        let client = server.client.clone();
        let url = format!("{}{path}", server.base);
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    assert_eq!(text("/healthz").await.0, StatusCode::OK);
    assert_eq!(text("/readyz").await.0, StatusCode::OK);
    let (status, metrics) = text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains(
            "muster_http_requests_total{method=\"PUT\",route=\"/api/v1/catalog\",status=\"200\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("muster_http_request_duration_seconds_bucket"),
        "histograms, not summaries"
    );
    assert!(metrics.contains("muster_db_pool_connections"));
    // Renewables as gauges (the test clock says 2026-11-23T10:00Z): no exporter needed.
    assert!(
        metrics.contains("muster_renewable_expiry_timestamp_seconds{renewable=\"formprint-licence\",kind=\"licence\",owner=\"service-desk\"} 1801440000\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("muster_renewable_days_left{renewable=\"api-certificate\",kind=\"certificate\",owner=\"platform\"} 52\n"),
        "{metrics}"
    );
    let (status, _) = text("/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn acknowledged_writes_survive_a_crash(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let (status, _) = server
        .post(
            "/api/v1/teams",
            json!({"id": "night-shift", "name": "Night shift"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // No graceful shutdown: the process is killed outright.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status();
    drop(server);
    let token = db.token("after-crash", "viewer", &[]);
    let server = db.serve().unwrap().with_token(&token);
    let (status, team) = server.get("/api/v1/teams/night-shift").await;
    assert_eq!(status, StatusCode::OK, "{team}");
    db.cli_ok(&["audit", "verify"], None);
}

async fn the_test_clock_moves_only_on_request(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let (status, body) = server
        .post("/api/v1/test/clock", json!({"advance": "15m"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["now"], "2026-11-23T10:15:00Z");
    let (_, body) = server
        .post(
            "/api/v1/test/clock",
            json!({"now": "2026-12-24T09:00:00+01:00"}),
        )
        .await;
    assert_eq!(body["now"], "2026-12-24T08:00:00Z");
    server
        .post("/api/v1/teams", json!({"id": "late", "name": "Late"}))
        .await;
    let (_, audit) = server.get("/api/v1/audit?entity=team:late").await;
    assert_eq!(
        audit["items"][0]["at"], "2026-12-24T08:00:00Z",
        "writes are stamped by the clock"
    );
    for bad in [
        json!({"advance": "soon"}),
        json!({"now": "tomorrow"}),
        json!({}),
        json!({"advance": "-5m"}),
    ] {
        let (status, body) = server.post("/api/v1/test/clock", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
    }
    let viewer = db.token("v", "viewer", &[]);
    let (status, _) = send(
        server
            .as_token(Method::POST, "/api/v1/test/clock", &viewer)
            .json(&json!({"advance": "1h"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn without_the_flag_there_is_no_clock_route() {
    let db = Database::fresh(Backend::Sqlite).await;
    let token = db.token("admin", "admin", &[]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_muster"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("MUSTER_DATABASE_URL", &db.url)
        .env("MUSTER_SECRET_KEY_FILE", db.dir.join("muster.key"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    while !line.contains("muster listening on ") {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    }
    let base = line.split_whitespace().nth(3).unwrap().to_string();
    let (status, _) = send(
        reqwest::Client::new()
            .post(format!("{base}/api/v1/test/clock"))
            .bearer_auth(&token)
            .json(&json!({"advance": "1h"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(
        child.wait().unwrap().success(),
        "SIGTERM shuts down gracefully"
    );
}

#[tokio::test]
async fn one_server_per_sqlite_file() {
    let db = Database::fresh(Backend::Sqlite).await;
    let _first = db.serve().unwrap();
    let second = db
        .serve()
        .err()
        .expect("a second server on the same file refuses to start");
    assert!(
        second.contains("another `muster serve` is already running"),
        "{second}"
    );
    // Other commands still work on the file while the server runs.
    db.cli_ok(&["catalog", "export"], None);
}

#[tokio::test]
async fn two_servers_share_one_postgresql() {
    let db = Database::fresh(Backend::Postgres).await;
    let token = db.token("admin", "admin", &[]);
    let a = db.serve().unwrap().with_token(&token);
    let b = db.serve().unwrap().with_token(&token);
    a.import_seed().await;
    let (_, before) = b.get("/api/v1/services/identity").await;
    assert_eq!(before["tier"], 1);
    let (status, _) = send(
        a.request(Method::PATCH, "/api/v1/services/identity")
            .json(&json!({"tier": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, after) = b.get("/api/v1/services/identity").await;
    assert_eq!(
        after["tier"], 2,
        "a write through one server is read through the other"
    );
    // Concurrent writes through both keep one audit chain.
    let writes: Vec<_> = (0..10)
        .map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            tokio::spawn(send(
                server
                    .request(Method::POST, "/api/v1/teams")
                    .json(&json!({"id": format!("t{i}"), "name": "T"})),
            ))
        })
        .collect();
    for write in writes {
        let (status, body) = write.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    db.cli_ok(&["audit", "verify"], None);
}

#[tokio::test]
async fn settings_come_from_flags_environment_and_config_file() {
    let db = Database::fresh(Backend::Sqlite).await;
    let config = db.dir.join("muster.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\npublic_url = \"https://muster.example.test\"\n",
            db.dir.join("from-file.db").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_muster"))
        .args(["--config", config.to_str().unwrap(), "migrate"])
        .env_remove("MUSTER_DATABASE_URL")
        .env("MUSTER_SECRET_KEY_FILE", db.dir.join("muster.key"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        db.dir.join("from-file.db").exists(),
        "the config file chose the database"
    );
    std::fs::write(&config, "listn = \"x\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_muster"))
        .args(["--config", config.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listn"),
        "{out:?}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_muster"))
        .args(["migrate"])
        .env("MUSTER_DATABASE_URL", "mysql://root:pw@h/db")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--database-url") && !err.contains(":pw@"),
        "{err}"
    );
}

on_both_databases!(another_secret_key_is_refused);

async fn another_secret_key_is_refused(backend: Backend) {
    let (db, _server) = seeded(backend).await;
    let muster = |key: &std::path::Path, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_muster"))
            .args(args)
            .env("MUSTER_DATABASE_URL", &db.url)
            .env("MUSTER_SECRET_KEY_FILE", key)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = muster(&db.dir.join("other.key"), &["catalog", "import", "-"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("not the one this database's secrets are sealed with"),
        "{out:?}"
    );
    let out = muster(&db.dir.join("missing.key"), &["token", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no secret key file at"),
        "{out:?}"
    );
    assert!(
        !db.dir.join("missing.key").exists(),
        "a read-only command creates no key"
    );
}

#[tokio::test]
async fn a_clean_stop_leaves_a_complete_database_file_and_links_share_the_lock() {
    let db = Database::fresh(Backend::Sqlite).await;
    let token = db.token("admin", "admin", &[]);
    let link = db.dir.join("link.db");
    std::os::unix::fs::symlink(db.dir.join("muster.db"), &link).unwrap();
    let mut server = db.serve().unwrap().with_token(&token);
    let through_link = Database {
        backend: Backend::Sqlite,
        url: format!("sqlite://{}", link.display()),
        dir: db.dir.clone(),
    };
    let refused = through_link
        .serve()
        .err()
        .expect("a link to a served file is the same file");
    assert!(refused.contains("already running"), "{refused}");
    server.import_seed().await;
    assert!(server.stop().success());
    // Copy the database file alone, without its WAL: it holds everything.
    let copy = db.dir.join("copy.db");
    std::fs::copy(db.dir.join("muster.db"), &copy).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", copy.display()))
        .await
        .unwrap();
    let (services,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM services")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(services, 12);
}

#[tokio::test]
async fn commands_that_read_refuse_a_missing_sqlite_file() {
    let db = Database::fresh(Backend::Sqlite).await;
    let missing = db.dir.join("typo.db");
    let url = format!("sqlite://{}", missing.display());
    for args in [
        vec!["audit", "verify"],
        vec!["catalog", "export"],
        vec!["token", "list"],
        vec!["user", "list"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_muster"))
            .args(&args)
            .env("MUSTER_DATABASE_URL", &url)
            .env("MUSTER_SECRET_KEY_FILE", db.dir.join("k"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no database at"),
            "{args:?}: {out:?}"
        );
        assert!(!missing.exists(), "{args:?} created the file");
    }
}

#[tokio::test]
async fn help_is_available_for_every_subcommand() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["catalog", "import", "--help"],
        vec!["token", "create", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["user", "create", "--help"],
        vec!["demo", "--help"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_muster"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
}
