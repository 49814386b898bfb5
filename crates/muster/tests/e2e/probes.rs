//! Probes end to end against real peers: `openssl s_server` serving certificates
//! signed by a test CA (valid, expiring, expired) and one nobody trusts, a port that
//! answers garbage, a port where nothing listens, and an HTTP server answering JSON;
//! and `muster scan` on a build tree with the certificate planted in a binary and archives.

use crate::common::*;
use crate::incidents::{settle, wait_for};
use crate::on_both_databases;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test CA, and certificates for `api.test` it signs.
struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Muster Test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A certificate for `api.test` valid from `from` until `until` (y, m, d), with its
    /// key; signed by this CA, or by itself when `trusted` is false.
    fn leaf(&self, from: (i32, u8, u8), until: (i32, u8, u8), trusted: bool) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["api.test".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "api.test");
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = if trusted {
            let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
            params.signed_by(&key, &issuer).unwrap()
        } else {
            params.self_signed(&key).unwrap()
        };
        (cert.pem(), key.serialize_pem())
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `openssl s_server` serving a certificate on 127.0.0.1, killed when dropped.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    async fn start(dir: &Path, name: &str, (cert, key): (String, String)) -> TlsServer {
        let (cert_file, key_file) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert_file)
            .arg("-key")
            .arg(&key_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server runs (Debian package openssl)");
        // Killed when dropped, on the way out of a failed start too.
        let server = TlsServer { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("openssl s_server did not listen on {port}");
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port answering every connection with `answer` and closing it.
async fn answering(answer: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 2048];
            let _ =
                tokio::time::timeout(Duration::from_millis(200), socket.read(&mut request)).await;
            let _ = socket.write_all(answer.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    port
}

/// An HTTP answer carrying `body` as JSON.
fn json_answer(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn register(server: &Server, renewable: Value) {
    let (status, body) = server.post("/api/v1/renewables", renewable).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn probe(server: &Server, id: &str) -> Value {
    let (status, body) = server
        .post(&format!("/api/v1/renewables/{id}/probe"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{id}: {body}");
    body
}

fn certificate(id: &str, port: u16, expires_at: &str) -> Value {
    json!({"id": id, "name": format!("API certificate ({id})"), "kind": "certificate", "owner": "platform",
           "services": ["public-api"], "expires_at": expires_at,
           "verify": {"tls": {"host": format!("127.0.0.1:{port}"), "sni": "api.test"}}})
}

/// A server on the demo world whose probes trust a test CA.
async fn trusting_a_test_ca(backend: Backend) -> (Database, Ca, Server) {
    let db = Database::fresh(backend).await;
    let ca = Ca::new();
    std::fs::write(db.dir.join("ca.pem"), &ca.pem).unwrap();
    let config = db.dir.join("muster.toml");
    std::fs::write(
        &config,
        "[probes]\nca_file = \"ca.pem\"\ntimeout = \"3s\"\n",
    )
    .unwrap();
    let token = db.token("admin", "admin", &[]);
    let server = Server::start(&db, &["--config", config.to_str().unwrap()])
        .expect("server starts")
        .with_token(&token);
    server.import_seed().await;
    (db, ca, server)
}

async fn tls_probes_read_valid_expiring_expired_and_untrusted_certificates(backend: Backend) {
    let (db, ca, server) = trusting_a_test_ca(backend).await;
    // The test clock says 2026-11-23.
    let renewed = TlsServer::start(
        &db.dir,
        "renewed",
        ca.leaf((2026, 11, 1), (2027, 6, 1), true),
    )
    .await;
    let expiring = TlsServer::start(
        &db.dir,
        "expiring",
        ca.leaf((2026, 1, 1), (2026, 11, 30), true),
    )
    .await;
    let expired = TlsServer::start(
        &db.dir,
        "expired",
        ca.leaf((2025, 11, 1), (2026, 11, 20), true),
    )
    .await;
    let untrusted = TlsServer::start(
        &db.dir,
        "untrusted",
        ca.leaf((2026, 1, 1), (2027, 3, 1), false),
    )
    .await;
    let garbage = answering("HTTP/1.0 200 OK\r\n\r\nthis is not TLS".into()).await;
    let nothing = free_port();

    // Expiring in 7 days, as recorded: read and judged valid; nothing to verify yet.
    // Reminded only the day before, so no reminder starts a renewal meanwhile: only a
    // probe could.
    let mut expiring_in_a_week = certificate("expiring", expiring.port, "2026-11-30T00:00:00Z");
    expiring_in_a_week["reminders"] = json!([1]);
    register(&server, expiring_in_a_week).await;
    let body = probe(&server, "expiring").await;
    let seen = &body["probed"][0];
    assert_eq!(seen["outcome"], "seen", "{seen}");
    assert_eq!(seen["expires_at"], "2026-11-30T00:00:00Z");
    assert_eq!(seen["problems"], json!([]));
    assert_eq!(seen["chain"][0]["subject"], "CN=api.test");
    assert_eq!(seen["chain"][0]["issuer"], "CN=Muster Test CA");
    assert!(seen["identity"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(seen["steps"], json!([]));
    assert_eq!(body["probes"][0]["target"], "default", "kept as history");
    assert!(
        body["renewal"].is_null(),
        "a probe seeing nothing renewed starts no renewal"
    );

    // Renewed by ACME behind our back: a later expiry verifies it at whatever stage,
    // and the renewal is done without anyone typing.
    register(
        &server,
        certificate("renewed", renewed.port, "2027-01-15T00:00:00Z"),
    )
    .await;
    let done = wait_for(&server, "/api/v1/renewables/renewed", |b| {
        b["expires_at"] == "2027-06-01T00:00:00Z"
    })
    .await;
    assert!(
        done["renewal"].is_null(),
        "the new expiry has no renewal yet"
    );
    let seen = &done["probes"][0];
    assert_eq!(seen["problems"], json!([]), "{seen}");
    let (_, audit) = server.get("/api/v1/audit?limit=1000").await;
    assert!(
        texts_at(&audit["items"], "/actor").contains(&"probe".to_string()),
        "the expiry move is audited as the probe's"
    );

    // Expired: read even so, and an outage incident opens on its service.
    register(
        &server,
        certificate("expired", expired.port, "2026-11-20T00:00:00Z"),
    )
    .await;
    let body = probe(&server, "expired").await;
    let seen = &body["probed"][0];
    assert_eq!(seen["problems"], json!(["expired"]), "{seen}");
    assert_eq!(seen["expires_at"], "2026-11-20T00:00:00Z");
    let number = seen["incident"].as_str().expect("an incident opened");
    let (_, incident) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(incident["service"], "public-api");
    assert_eq!(incident["severity"], "critical");
    assert_eq!(
        incident["title"],
        "API certificate (expired) expired 3 days ago (2026-11-20): still served"
    );
    let again = probe(&server, "expired").await;
    assert_eq!(
        again["probed"][0]["incident"], number,
        "one incident, joined"
    );

    // Nobody's CA: the chain is still read, and the verdict says so.
    register(
        &server,
        certificate("untrusted", untrusted.port, "2027-03-01T00:00:00Z"),
    )
    .await;
    let body = probe(&server, "untrusted").await;
    let seen = &body["probed"][0];
    assert_eq!(
        seen["problems"],
        json!(["untrusted: unknown issuer"]),
        "{seen}"
    );
    assert_eq!(seen["expires_at"], "2027-03-01T00:00:00Z");

    // Garbage and silence: the probe fails with a reason; nothing recorded is lost.
    register(
        &server,
        certificate("garbage", garbage, "2027-03-01T00:00:00Z"),
    )
    .await;
    let body = probe(&server, "garbage").await;
    let failed = &body["probed"][0];
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("TLS handshake with 127.0.0.1"),
        "{failed}"
    );
    register(
        &server,
        certificate("nothing", nothing, "2027-03-01T00:00:00Z"),
    )
    .await;
    let body = probe(&server, "nothing").await;
    assert!(
        body["probed"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("cannot connect to 127.0.0.1:{nothing}")),
        "{body}"
    );
    assert_eq!(body["expires_at"], "2027-03-01T00:00:00Z");

    // Attested by hand: nothing to probe.
    let (status, body) = server
        .post("/api/v1/renewables/formprint-licence/probe", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problems(&body)[0].starts_with("verify:"), "{body}");
    let (status, _) = server
        .post("/api/v1/renewables/nope/probe", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Probed again two weeks on: nothing renewed, so no renewal starts and nothing
    // stalls (a renewal starts with its first reminder or with a renewal seen).
    let (status, _) = server
        .post("/api/v1/test/clock", json!({"now": "2026-12-08T10:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let again = probe(&server, "renewed").await;
    assert!(again["renewal"].is_null(), "{again}");
    let (_, stalled) = server.get("/api/v1/renewables?stalled=true").await;
    assert!(!texts_at(&stalled["items"], "/id").contains(&"renewed".to_string()));
    drop((renewed, expiring, expired, untrusted));
}

async fn a_key_other_than_received_is_a_mismatch_and_json_expiries_verify(backend: Backend) {
    let (db, ca, server) = trusting_a_test_ca(backend).await;
    let served = TlsServer::start(
        &db.dir,
        "rekeyed",
        ca.leaf((2026, 11, 1), (2027, 6, 1), true),
    )
    .await;

    // The new certificate was received with its key recorded; the server serves
    // another key (someone installed the wrong certificate).
    let mut rekeyed = certificate("rekeyed", served.port, "2027-01-15T00:00:00Z");
    rekeyed["verify"] = json!("manual");
    register(&server, rekeyed).await;
    for move_ in [
        json!({"stage": "ordered", "by": "pia"}),
        json!({"stage": "received", "by": "pia", "new_expires_at": "2027-06-01T00:00:00Z",
               "identity": "sha256:0000000000000000000000000000000000000000000000000000000000000000"}),
    ] {
        let (status, body) = server
            .post("/api/v1/renewables/rekeyed/renewal", move_)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = send(
        server
            .request(Method::PATCH, "/api/v1/renewables/rekeyed")
            .json(&json!({"verify": {"tls": {"host": format!("127.0.0.1:{}", served.port), "sni": "api.test"}}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body = probe(&server, "rekeyed").await;
    let mismatch = body["probed"][0]["mismatch"].as_str().expect("a mismatch");
    assert!(mismatch.contains("not the sha256:0000"), "{mismatch}");
    assert_eq!(body["renewal"]["progress"]["verified"], 0, "not verified");
    assert_eq!(body["expires_at"], "2027-01-15T00:00:00Z");
    let told = db
        .texts("SELECT DISTINCT recipient FROM notifications WHERE subject LIKE 'Key mismatch:%' ORDER BY recipient")
        .await;
    assert!(!told.is_empty(), "the owner team is told");
    probe(&server, "rekeyed").await;
    settle().await;
    let messages = db
        .texts("SELECT dedup_key FROM notifications WHERE subject LIKE 'Key mismatch:%'")
        .await;
    assert_eq!(messages.len(), told.len(), "told once per served key");

    // An HTTP JSON licence endpoint with a later expiry verifies it by itself.
    let json_port = answering(json_answer(r#"{"licence": {"expires": "2028-01-01"}}"#)).await;
    register(
        &server,
        json!({"id": "vendor-licence", "name": "Vendor licence", "kind": "licence", "owner": "platform",
               "expires_at": "2027-01-01T00:00:00Z",
               "verify": {"http_json": {"url": format!("http://127.0.0.1:{json_port}/status"), "pointer": "/licence/expires"}}}),
    )
    .await;
    let done = wait_for(&server, "/api/v1/renewables/vendor-licence", |b| {
        b["expires_at"] == "2028-01-01T00:00:00Z"
    })
    .await;
    assert_eq!(done["probes"][0]["method"], "http_json");
    let wrong = answering(json_answer("{}")).await;
    register(
        &server,
        json!({"id": "broken-licence", "name": "Broken licence", "kind": "licence", "owner": "platform",
               "expires_at": "2027-01-01T00:00:00Z",
               "verify": {"http_json": {"url": format!("http://127.0.0.1:{wrong}/status"), "pointer": "/licence/expires"}}}),
    )
    .await;
    let body = probe(&server, "broken-licence").await;
    assert!(
        body["probed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("has nothing at /licence/expires"),
        "{body}"
    );
}

/// A zip archive (an apk, a jar) of `entries`.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        out.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// The story of the hard-wired certificate: a client build embeds the API's
/// certificate; `muster scan` finds it in the binary and in the apk; registered, it
/// links to the API's renewable by key, so receiving a certificate with another key
/// warns at once and applying it needs an acknowledgement; retired, it stops mattering.
async fn certificates_in_shipped_builds_are_found_registered_and_guard_the_renewal(
    backend: Backend,
) {
    let (db, ca, server) = trusting_a_test_ca(backend).await;
    let (cert_pem, key_pem) = ca.leaf((2026, 1, 1), (2027, 1, 15), true);
    let api = TlsServer::start(&db.dir, "api", (cert_pem.clone(), key_pem)).await;
    register(
        &server,
        certificate("api-cert", api.port, "2027-01-15T00:00:00Z"),
    )
    .await;
    let served = probe(&server, "api-cert").await;
    let key = served["probed"][0]["identity"]
        .as_str()
        .unwrap()
        .to_string();

    // A build tree: the certificate in a binary (mid-string PEM), in an apk (DER), a
    // pin string in a jar, and a corrupt archive.
    let build = db.dir.join("build");
    std::fs::create_dir_all(build.join("lib")).unwrap();
    let mut binary = b"\x7fELF\x02\x01\x01\x00 padding const char *API_CERT = \"".to_vec();
    let pem_at = binary.len();
    binary.extend(cert_pem.replace('\n', "\\n").as_bytes());
    binary.extend(b"\";\x00\x00 more code");
    std::fs::write(build.join("desktop-client"), &binary).unwrap();
    let der: Vec<u8> = {
        let body: String = cert_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        base64_decode(&body)
    };
    let digest = hex_decode(key.trim_start_matches("sha256:"));
    let pin = format!("sha256/{}", base64_encode(&digest));
    std::fs::write(
        build.join("client.apk"),
        zip_of(&[
            ("res/raw/api.der", &der),
            ("AndroidManifest.xml", b"<manifest/>"),
        ]),
    )
    .unwrap();
    std::fs::write(
        build.join("lib/pins.jar"),
        zip_of(&[("Pins.class", format!("pins={pin};").as_bytes())]),
    )
    .unwrap();
    std::fs::write(build.join("lib/broken.jar"), b"PK\x03\x04 not really a zip").unwrap();

    let out = db.cli(&["scan", build.to_str().unwrap(), "--json"], None);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.jar: corrupt archive"), "{stderr}");
    assert!(
        stderr.contains("2 certificates, 1 pins, 1 warnings"),
        "{stderr}"
    );
    let hits: Value = serde_json::from_slice(&out.stdout).unwrap();
    let places: Vec<String> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let path = h["path"].as_str().unwrap();
            let file = path.rsplit_once("/build/").map_or(path, |(_, f)| f);
            format!(
                "{file} {} {} {}",
                h["offset"],
                h["kind"].as_str().unwrap(),
                h["spki_sha256"] == key.as_str()
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            "client.apk!/res/raw/api.der 0 certificate true".to_string(),
            format!("desktop-client {pem_at} certificate true"),
            "lib/pins.jar!/Pins.class 5 pin true".to_string(),
        ]
    );
    assert_eq!(hits[1]["not_after"], "2027-01-15T00:00:00Z");
    assert_eq!(hits[1]["subject"], "CN=api.test");
    let table = db.cli(
        &["scan", build.join("desktop-client").to_str().unwrap()],
        None,
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("PATH"), "{text}");
    assert!(text.contains("CN=api.test  2027-01-15  sha256:"), "{text}");
    let missing = db.cli(&["scan", db.dir.join("nowhere").to_str().unwrap()], None);
    assert!(
        missing.status.success(),
        "a completed scan exits 0: {missing:?}"
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("warning: "),
        "{missing:?}"
    );
    let refused = db.cli(&["scan", build.to_str().unwrap(), "--register"], None);
    assert!(!refused.status.success(), "--register needs an artifact");

    // Registered: the artifact pins the API's key; its certificate's expiry is tracked.
    let register = |owner: &str| {
        db.cli(
            &[
                "scan",
                build.to_str().unwrap(),
                "--artifact",
                "desktop-client",
                "--version",
                "0.9.1",
                "--register",
                "--owner",
                owner,
            ],
            None,
        )
    };
    let out = register("platform");
    assert!(out.status.success(), "{out:?}");
    let bad = register("nobody");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--owner: no team"),
        "{bad:?}"
    );
    let (status, artifacts) = server.get("/api/v1/artifacts").await;
    assert_eq!(status, StatusCode::OK, "{artifacts}");
    let artifact = &artifacts["items"][0];
    assert_eq!(artifact["id"], "desktop-client@0.9.1");
    assert_eq!(artifact["pins"].as_array().unwrap().len(), 3);
    assert_eq!(
        artifact["pins"][0]["renewables"],
        json!(["api-cert"]),
        "linked by key"
    );
    let pinned = format!("pin-desktop-client-0-9-1-{}", &key[7..19]);
    let (status, tracked) = server.get(&format!("/api/v1/renewables/{pinned}")).await;
    assert_eq!(status, StatusCode::OK, "{tracked}");
    assert_eq!(
        tracked["expires_at"], "2027-01-15T00:00:00Z",
        "the date the build breaks"
    );

    // A new certificate with another key is received: warned at once, and applying it
    // needs an acknowledgement.
    for move_ in [
        json!({"stage": "ordered", "by": "pia"}),
        json!({"stage": "received", "by": "pia", "new_expires_at": "2028-01-15T00:00:00Z",
               "identity": "sha256:1111111111111111111111111111111111111111111111111111111111111111"}),
    ] {
        let (status, body) = server
            .post("/api/v1/renewables/api-cert/renewal", move_)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, renewal) = server.get("/api/v1/renewables/api-cert").await;
    let warning = renewal["renewal"]["pin_warning"]
        .as_str()
        .expect("a warning");
    assert!(
        warning.starts_with(&format!(
            "desktop-client 0.9.1 pins SPKI {key}; the new certificate has another key"
        )),
        "{warning}"
    );
    assert!(warning.ends_with("those clients will fail"));
    let told = db
        .texts("SELECT DISTINCT recipient FROM notifications WHERE subject LIKE 'Pinned key:%' ORDER BY recipient")
        .await;
    assert_eq!(told, ["pete", "pia"]);
    let (status, refused) = server
        .post(
            "/api/v1/renewables/api-cert/renewal",
            json!({"stage": "applied", "by": "pia", "target": "default"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problems(&refused)[0].starts_with("acknowledge_pins: desktop-client 0.9.1 pins"),
        "{refused}"
    );
    let (status, body) = server
        .post(
            "/api/v1/renewables/api-cert/renewal",
            json!({"stage": "applied", "by": "pia", "target": "default", "acknowledge_pins": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // No client runs 0.9.1 any more: retired, its tracking renewable goes.
    let (status, retired) = server
        .post("/api/v1/artifacts/desktop-client@0.9.1/retire", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{retired}");
    assert!(retired["retired_at"].is_string());
    let (status, _) = server.get(&format!("/api/v1/renewables/{pinned}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .post("/api/v1/artifacts/desktop-client@0.9.1/retire", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = server
        .post("/api/v1/artifacts/nope@1/retire", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

on_both_databases!(
    tls_probes_read_valid_expiring_expired_and_untrusted_certificates,
    certificates_in_shipped_builds_are_found_registered_and_guard_the_renewal,
    a_key_other_than_received_is_a_mismatch_and_json_expiries_verify,
);
