//! The outbox end to end: a real HTTP receiver that fails before it succeeds, signed
//! webhooks, retries on the test clock, and nothing lost across a crash.

use crate::common::{Backend, Database, Server, problems, seeded};
use crate::on_both_databases;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_databases!(
    webhooks_are_signed_retried_and_delivered_once,
    messages_survive_a_crash,
    email_reaches_a_real_smtp_server_over_starttls,
    messages_over_a_throttle_are_bundled_not_dropped,
    notification_rules_choose_the_method_and_when
);

/// A webhook receiver on loopback that answers 503 to the first `failures` requests.
#[derive(Clone, Default)]
struct Receiver {
    failures: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<(HeaderMap, String, u16)>>>,
}

impl Receiver {
    async fn start(failures: usize) -> (Receiver, String) {
        let receiver = Receiver {
            failures: Arc::new(AtomicUsize::new(failures)),
            ..Default::default()
        };
        let state = receiver.clone();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let state = state.clone();
                    async move {
                        let failing = state.failures.load(Ordering::SeqCst) > 0;
                        if failing {
                            state.failures.fetch_sub(1, Ordering::SeqCst);
                        }
                        let status = if failing {
                            AxumStatus::SERVICE_UNAVAILABLE
                        } else {
                            AxumStatus::NO_CONTENT
                        };
                        state
                            .seen
                            .lock()
                            .unwrap()
                            .push((headers, body, status.as_u16()));
                        status
                    }
                }),
            )
            .route(
                "/gone",
                axum::routing::post(|| async { AxumStatus::NOT_FOUND }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn seen(&self) -> Vec<(HeaderMap, String, u16)> {
        self.seen.lock().unwrap().clone()
    }
}

/// Polls the notification log of `recipient` until `done` holds (10 s at most).
async fn wait_for(server: &Server, recipient: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (_, page) = server
            .get(&format!("/api/v1/notifications?recipient={recipient}"))
            .await;
        if done(&page) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting on the notifications of {recipient}");
}

async fn add_person(server: &Server, id: &str, contacts: Value) {
    let (status, body) = server
        .post(
            "/api/v1/people",
            json!({"id": id, "name": id, "timezone": "UTC", "contacts": contacts}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn webhooks_are_signed_retried_and_delivered_once(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (receiver, url) = Receiver::start(2).await;
    add_person(
        &server,
        "rx",
        json!([{"type": "webhook", "url": format!("{url}/hook"), "secret": "sig-secret"}]),
    )
    .await;
    add_person(
        &server,
        "gone",
        json!([{"type": "webhook", "url": format!("{url}/gone")}]),
    )
    .await;

    let (status, body) = server
        .post("/api/v1/people/rx/test-notification", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["queued"], 1);

    // First attempt at once, then retries after 2 s and 4 s of (test) clock.
    wait_for(&server, "rx", |p| p["items"][0]["attempts"] == 1).await;
    server
        .post("/api/v1/test/clock", json!({"advance": "2s"}))
        .await;
    wait_for(&server, "rx", |p| p["items"][0]["attempts"] == 2).await;
    server
        .post("/api/v1/test/clock", json!({"advance": "4s"}))
        .await;
    let page = wait_for(&server, "rx", |p| p["items"][0]["status"] == "delivered").await;
    let message = &page["items"][0];
    assert_eq!(message["attempts"], 3);
    assert_eq!(message["channel"], "webhook");

    let seen = receiver.seen();
    assert_eq!(
        seen.iter().map(|s| s.2).collect::<Vec<_>>(),
        [503, 503, 204]
    );
    let delivery = message["delivery_id"].as_str().unwrap();
    for (headers, body, _) in &seen {
        assert_eq!(
            headers["x-muster-delivery"], delivery,
            "one delivery id across retries"
        );
        let timestamp: i64 = headers["x-muster-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let expected = muster_domain::notify::webhook_signature("sig-secret", timestamp, body);
        assert_eq!(headers["x-muster-signature"], expected.as_str());
        let payload: Value = serde_json::from_str(body).unwrap();
        assert_eq!(payload["recipient"], "rx");
    }

    // A 4xx is not retried.
    server
        .post("/api/v1/people/gone/test-notification", json!({}))
        .await;
    let page = wait_for(&server, "gone", |p| p["items"][0]["status"] == "failed").await;
    assert_eq!(page["items"][0]["attempts"], 1);
    assert_eq!(page["items"][0]["last_error"], "HTTP 404");
    server
        .post("/api/v1/test/clock", json!({"advance": "1h"}))
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        receiver.seen().len(),
        3,
        "nothing delivered twice, nothing retried after success"
    );

    let (status, body) = server
        .post("/api/v1/people/ghost/test-notification", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = server.get("/api/v1/notifications?cursor=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["path"], "cursor");
}

async fn messages_survive_a_crash(backend: Backend) {
    let (db, mut server) = seeded(backend).await;
    let (receiver, url) = Receiver::start(usize::MAX).await;
    add_person(
        &server,
        "rx",
        json!([{"type": "webhook", "url": format!("{url}/hook")}]),
    )
    .await;
    server
        .post("/api/v1/people/rx/test-notification", json!({}))
        .await;
    wait_for(&server, "rx", |p| p["items"][0]["attempts"] == 1).await;
    // The server dies with the message still queued; the receiver recovers meanwhile.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status();
    let _ = server.stop();
    receiver.failures.store(0, Ordering::SeqCst);
    let token = db.token("after-crash", "admin", &[]);
    let server = db.serve().unwrap().with_token(&token);
    // The restarted server's clock starts where tests start it; move past the backoff.
    server
        .post("/api/v1/test/clock", json!({"advance": "1m"}))
        .await;
    let page = wait_for(&server, "rx", |p| p["items"][0]["status"] == "delivered").await;
    assert_eq!(page["items"][0]["attempts"], 2);
    let delivered = receiver.seen().iter().filter(|s| s.2 == 204).count();
    assert_eq!(delivered, 1, "delivered once");
}

/// aiosmtpd on loopback (tests/support/smtp_server.py): STARTTLS with a certificate of
/// our own, AUTH required, and a 451 for the first `fail_first` messages.
struct SmtpServer {
    child: std::process::Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl SmtpServer {
    fn start(dir: &std::path::Path, fail_first: usize) -> SmtpServer {
        use std::io::BufRead;
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        std::fs::write(dir.join("smtp-cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(
            dir.join("smtp-key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .unwrap();
        let maildir = dir.join("maildir");
        std::fs::create_dir_all(&maildir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--fail-first",
                &fail_first.to_string(),
            ])
            .arg("--maildir")
            .arg(&maildir)
            .arg("--cert")
            .arg(dir.join("smtp-cert.pem"))
            .arg("--key")
            .arg(dir.join("smtp-key.pem"))
            .args(["--user", "muster", "--password", "mail-secret"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs (aiosmtpd from PyPI: scripts/services.sh installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening"),
            "SMTP server did not start: {line:?}"
        );
        SmtpServer {
            child,
            port,
            maildir,
        }
    }

    fn messages(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(&self.maildir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn email_reaches_a_real_smtp_server_over_starttls(backend: Backend) {
    let db = Database::fresh(backend).await;
    let smtp = SmtpServer::start(&db.dir, 1);
    std::fs::write(db.dir.join("smtp-password"), "mail-secret\n").unwrap();
    let config = db.dir.join("muster.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nusername = \"muster\"\n\
             password_file = \"smtp-password\"\nca_file = \"smtp-cert.pem\"\n\
             from = \"Muster <muster@muster.test>\"\n",
            smtp.port
        ),
    )
    .unwrap();
    let token = db.token("admin", "admin", &[]);
    let server = Server::start(&db, &["--config", config.to_str().unwrap()])
        .expect("server starts")
        .with_token(&token);
    let (status, body) = server
        .post(
            "/api/v1/people",
            json!({"id": "mailee", "name": "Mai Lee", "timezone": "UTC", "email": "mailee@example.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = server
        .post("/api/v1/people/mailee/test-notification", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The relay answers 451 once: a transient refusal, retried after 2 s.
    let page = wait_for(&server, "mailee", |p| p["items"][0]["attempts"] == 1).await;
    assert_eq!(page["items"][0]["status"], "queued");
    assert!(
        page["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("451"),
        "{page}"
    );
    server
        .post("/api/v1/test/clock", json!({"advance": "2s"}))
        .await;
    let page = wait_for(&server, "mailee", |p| {
        p["items"][0]["status"] == "delivered"
    })
    .await;
    let delivery = page["items"][0]["delivery_id"].as_str().unwrap();

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one message delivered");
    let mail = &messages[0];
    assert!(mail.contains("To: mailee@example.test"), "{mail}");
    assert!(mail.contains("From: Muster <muster@muster.test>"), "{mail}");
    assert!(
        mail.contains("Subject: Muster test notification for Mai Lee"),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("Message-ID: <{delivery}@muster.test>")),
        "the delivery id lets mail filters drop repeats: {mail}"
    );
}

async fn messages_over_a_throttle_are_bundled_not_dropped(backend: Backend) {
    let db = Database::fresh(backend).await;
    let config = db.dir.join("muster.toml");
    std::fs::write(
        &config,
        "[[throttle]]\nchannel = \"webhook\"\nmax = 2\nper = \"10m\"\n",
    )
    .unwrap();
    let token = db.token("admin", "admin", &[]);
    let server = Server::start(&db, &["--config", config.to_str().unwrap()])
        .expect("server starts")
        .with_token(&token);
    let (receiver, url) = Receiver::start(0).await;
    // Five contact methods on one receiver URL: one contact method for the throttle.
    let contacts: Vec<Value> = (1..=5)
        .map(
            |i| json!({"type": "webhook", "url": format!("{url}/hook"), "secret": format!("s{i}")}),
        )
        .collect();
    add_person(&server, "busy", json!(contacts)).await;

    server
        .post("/api/v1/people/busy/test-notification", json!({}))
        .await;
    let page = wait_for(&server, "busy", |p| {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"] == "delivered")
    })
    .await;
    // Room for two: one alone, the other four as one message.
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let bundle: Value = serde_json::from_str(&seen[1].1).unwrap();
    assert!(
        bundle["subject"]
            .as_str()
            .unwrap()
            .starts_with("4 messages: "),
        "{bundle}"
    );
    assert_eq!(
        bundle["body"]
            .as_str()
            .unwrap()
            .matches("Muster test notification")
            .count(),
        4
    );
    let bundle_ids: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["bundle_id"])
        .collect();
    assert_eq!(bundle_ids.iter().filter(|b| b.is_null()).count(), 1);
    assert_eq!(
        bundle_ids
            .iter()
            .filter(|b| **b == &json!(seen[1].0["x-muster-delivery"].to_str().unwrap()))
            .count(),
        4,
        "the bundled messages name the delivery that carried them"
    );

    // The throttle is full: five more wait (none dropped) until it has room.
    server
        .post("/api/v1/test/clock", json!({"advance": "1s"}))
        .await;
    server
        .post("/api/v1/people/busy/test-notification", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, page) = server.get("/api/v1/notifications?recipient=busy").await;
    let queued = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] == "queued")
        .count();
    assert_eq!(queued, 5, "{page}");
    assert_eq!(receiver.seen().len(), 2);
    server
        .post("/api/v1/test/clock", json!({"advance": "10m"}))
        .await;
    wait_for(&server, "busy", |p| {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"] == "delivered")
    })
    .await;
    assert_eq!(receiver.seen().len(), 4);
    let (_, page) = server.get("/api/v1/notifications?recipient=busy").await;
    for message in page["items"].as_array().unwrap() {
        assert_eq!(
            message["attempts"], 1,
            "waiting for a throttle is no failed attempt"
        );
    }
}

async fn notification_rules_choose_the_method_and_when(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (receiver, url) = Receiver::start(0).await;
    let contacts = json!([{"type": "webhook", "url": format!("{url}/hook")},
                          {"type": "slack", "url": format!("{url}/hook")}]);
    let person = |rules: Value| json!({"id": "ru", "name": "Ru", "timezone": "UTC", "contacts": contacts, "notification_rules": rules});
    // A rule naming a method the person lacks, or a delay out of range: refused.
    let (status, body) = server
        .post(
            "/api/v1/people",
            person(json!([{"contact": "teams"}, {"contact": "webhook", "after": "-5m"}])),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        problems(&body),
        [
            "notification_rules[0].contact: ru has no teams contact method",
            "notification_rules[1].after: \"-5m\" is out of range: use 0m (at once) up to 24h"
        ]
    );
    // Slack at once, the phone gateway's webhook after five minutes.
    let (status, body) = server
        .post(
            "/api/v1/people",
            person(json!([{"contact": "slack"}, {"contact": "webhook", "after": "5m"}])),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let test = "/api/v1/people/ru/test-notification";
    let (status, body) = server
        .post(&format!("{test}?follow_rules=yes"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        problems(&body)[0],
        "follow_rules: must be true or false, got \"yes\""
    );

    let (status, body) = server
        .post(&format!("{test}?follow_rules=true"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["plan"],
        json!([{"channel": "slack", "not_before": "2026-11-23T10:00:00Z"},
               {"channel": "webhook", "not_before": "2026-11-23T10:05:00Z"}])
    );
    let status_of = |page: &Value, channel: &str| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["channel"] == channel)
            .map(|n| n["status"].as_str().unwrap_or("").to_string())
    };
    wait_for(&server, "ru", |page| {
        status_of(page, "slack").as_deref() == Some("delivered")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, page) = server.get("/api/v1/notifications?recipient=ru").await;
    assert_eq!(status_of(&page, "webhook").as_deref(), Some("queued"));
    assert_eq!(
        receiver.seen().len(),
        1,
        "the webhook waits for its five minutes"
    );
    server
        .post("/api/v1/test/clock", json!({"advance": "5m"}))
        .await;
    wait_for(&server, "ru", |page| {
        status_of(page, "webhook").as_deref() == Some("delivered")
    })
    .await;
    assert_eq!(receiver.seen().len(), 2);

    // The plain test ignores the rules: every method at once.
    let (status, body) = server.post(test, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["queued"], 2);
    assert_eq!(body["plan"][0]["not_before"], body["plan"][1]["not_before"]);
}
