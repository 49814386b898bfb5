//! The real peers against Muster, unchanged: Prometheus (Debian's 2.42) sending alerts
//! from an always-firing rule, and amtool (Alertmanager 0.25's CLI) adding, querying
//! and silencing alerts. Both are started on 127.0.0.1 only.

use crate::common::{Backend, Database, Server};
use crate::intake::service_key;
use crate::on_both_databases;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn require(binary: &str) -> String {
    let path = format!("/usr/bin/{binary}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: `.ci/run` installs Debian's prometheus and prometheus-alertmanager"
    );
    path
}

/// A seeded server on the real clock (the peers stamp real times).
async fn real_clock_server(backend: Backend) -> (Database, Server) {
    let db = Database::fresh(backend).await;
    let token = db.token("admin", "admin", &[]);
    let server = Server::start_real_clock(&db).unwrap().with_token(&token);
    server.import_seed().await;
    (db, server)
}

fn amtool(url: &str, args: &[&str], extra: &[&str]) -> String {
    let out = Command::new(require("amtool"))
        .arg(format!("--alertmanager.url={url}"))
        .args(extra)
        .args(args)
        .output()
        .expect("amtool runs");
    assert!(
        out.status.success(),
        "amtool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn amtool_works_unchanged(backend: Backend) {
    let (db, server) = real_clock_server(backend).await;
    let key = service_key(&server, "forms-printing", "amtool").await;
    // The key in the URL's path prefix…
    let url = format!("{}/i/{key}", server.base);
    amtool(
        &url,
        &[
            "alert",
            "add",
            "alertname=DiskFull",
            "instance=web-1",
            "--annotation=summary=disk 95% full",
        ],
        &[],
    );
    let listed = amtool(&url, &["alert", "query"], &[]);
    assert!(
        listed.contains("DiskFull") && listed.contains("disk 95% full"),
        "{listed}"
    );
    // …or as a bearer token through amtool's HTTP config.
    let http_config = db.dir.join("amtool-http.yml");
    std::fs::write(
        &http_config,
        format!("authorization:\n  credentials: {key}\n"),
    )
    .unwrap();
    let bearer = [format!("--http.config.file={}", http_config.display())];
    let bearer: Vec<&str> = bearer.iter().map(String::as_str).collect();
    let id = amtool(
        &server.base,
        &[
            "silence",
            "add",
            "alertname=DiskFull",
            "--comment=replacing the disk",
            "--author=ana",
            "--duration=1h",
        ],
        &bearer,
    )
    .trim()
    .to_string();
    assert_eq!(id.len(), 36, "amtool printed the new silence's id: {id:?}");
    let silences = amtool(&server.base, &["silence", "query"], &bearer);
    assert!(
        silences.contains(&id) && silences.contains("replacing the disk"),
        "{silences}"
    );
    let json: Value = serde_json::from_str(&amtool(
        &url,
        &["-o", "json", "alert", "query", "--silenced"],
        &[],
    ))
    .unwrap();
    assert_eq!(json[0]["status"]["state"], "suppressed");
    assert_eq!(json[0]["status"]["silencedBy"][0], id.as_str());
    let active_only = amtool(&url, &["alert", "query", "--active"], &[]);
    assert!(
        !active_only.contains("DiskFull"),
        "a silenced alert is not active: {active_only}"
    );
    amtool(&url, &["silence", "expire", &id], &[]);
    let expired = amtool(&url, &["silence", "query", "--expired"], &[]);
    assert!(expired.contains(&id), "{expired}");
    assert!(amtool(&url, &["alert", "query", "--active"], &[]).contains("DiskFull"));
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn prometheus_sends_to_muster(backend: Backend) {
    let (db, server) = real_clock_server(backend).await;
    let service_key = service_key(&server, "forms-printing", "prometheus").await;
    let (_, global) = server
        .post(
            "/api/v1/integration-keys",
            serde_json::json!({"name": "central", "fallback_service": "helpdesk-portal"}),
        )
        .await;
    let global_key = global["key"].as_str().unwrap();
    let host = server.base.trim_start_matches("http://");
    let dir = db.dir.join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n- name: muster\n  rules:\n  - alert: AlwaysFiring\n    expr: vector(1)\n    labels: {severity: critical, service: identity}\n    annotations: {summary: always firing}\n",
    )
    .unwrap();
    // Two Alertmanagers as Prometheus sees them: a service key in the path prefix, and
    // a global key as a bearer token (it routes by the `service` label).
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n  - static_configs: [{{targets: ['{host}']}}]\n    path_prefix: /i/{service_key}\n    api_version: v2\n  - static_configs: [{{targets: ['{host}']}}]\n    authorization: {{credentials: {global_key}}}\n    api_version: v2\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Prometheus(
        Command::new(require("prometheus"))
            .current_dir(&dir)
            .args([
                "--config.file=prometheus.yml",
                &format!("--web.listen-address=127.0.0.1:{port}"),
                "--storage.tsdb.path=data",
                "--rules.alert.resend-delay=1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs"),
    );
    let mut found = Vec::new();
    for _ in 0..120 {
        let (_, list) = server.get("/api/v1/alerts").await;
        found = list["items"].as_array().cloned().unwrap_or_default();
        if found.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut services: Vec<&str> = found
        .iter()
        .map(|a| a["service"].as_str().unwrap())
        .collect();
    services.sort();
    assert_eq!(
        services,
        ["forms-printing", "identity"],
        "the service key wins; the global key routes by label: {found:?}"
    );
    for alert in &found {
        assert_eq!(alert["labels"]["alertname"], "AlwaysFiring");
        assert_eq!(alert["annotations"]["summary"], "always firing");
        assert!(
            alert["generator_url"]
                .as_str()
                .unwrap()
                .contains("/graph?g0.expr=vector%281%29")
        );
        assert_eq!(alert["timeout"], false, "Prometheus sends its own end time");
    }
    let (_, compat) = server.get(&format!("/i/{service_key}/api/v2/alerts")).await;
    assert_eq!(compat[0]["labels"]["alertname"], "AlwaysFiring");
}

on_both_databases!(amtool_works_unchanged, prometheus_sends_to_muster);
