//! The audit trail: every mutation recorded, filterable, chained, and tamper-evident.

use crate::common::{Backend, seeded, send};
use crate::on_both_databases;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_databases!(
    mutations_are_audited_with_actor_reason_and_states,
    verify_catches_altered_removed_and_truncated_entries
);

async fn mutations_are_audited_with_actor_reason_and_states(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (status, _) = send(
        server
            .request(Method::PATCH, "/api/v1/services/forms-printing")
            .header(
                "x-muster-reason",
                "raise%20tier%20after%20the%20licence%20outage",
            )
            .json(&json!({"tier": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = server
        .get("/api/v1/audit?entity=service:forms-printing")
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the import's create and the patch: {page}");
    let update = &items[0];
    assert_eq!(update["action"], "update");
    assert_eq!(update["actor"], "token:admin");
    assert_eq!(update["reason"], "raise tier after the licence outage");
    assert_eq!(update["before"]["tier"], 1);
    assert_eq!(update["after"]["tier"], 2);
    assert_eq!(items[1]["action"], "import.create");
    assert!(items[1]["before"].is_null());

    let (_, by_actor) = server
        .get("/api/v1/audit?actor=token:admin&limit=1000")
        .await;
    assert_eq!(
        by_actor["items"].as_array().unwrap().len(),
        73 + 1,
        "the import's 73 entities and the patch"
    );
    let (_, later) = server.get("/api/v1/audit?since=2030-01-01T00:00:00Z").await;
    assert_eq!(later["items"].as_array().unwrap().len(), 0);

    // Pages of 10 cover everything once, newest first.
    let mut seqs = Vec::new();
    let mut path = "/api/v1/audit?limit=10".to_string();
    loop {
        let (_, page) = server.get(&path).await;
        seqs.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/audit?limit=10&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seqs, (1..=75).rev().collect::<Vec<i64>>());

    let (status, body) = send(
        server
            .request(Method::PATCH, "/api/v1/services/identity")
            .header("x-muster-reason", "%1b[31mred%0aline")
            .json(&json!({"tier": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["path"], "X-Muster-Reason");

    let (status, body) = server.get("/api/v1/audit?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["path"], "since");
}

async fn verify_catches_altered_removed_and_truncated_entries(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let (_, head) = server.get("/api/v1/audit/head").await;
    let head_hash = head["hash"].as_str().unwrap().to_string();
    assert_eq!(head["seq"], 74);
    let ok = db.cli_ok(&["audit", "verify", "--expect-head", &head_hash], None);
    assert!(ok.contains("intact: 74 entries"), "{ok}");
    db.cli_ok(
        &[
            "audit",
            "verify",
            "--expect-head",
            &head_hash.to_uppercase(),
        ],
        None,
    );
    for typo in ["XYZ", &head_hash[..12]] {
        let out = db.cli(&["audit", "verify", "--expect-head", typo], None);
        assert_eq!(
            out.status.code(),
            Some(1),
            "a malformed head is an error, not an alarm"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not an audit head"));
    }

    // A head recorded earlier still verifies after more writes.
    let (status, _) = server
        .post(
            "/api/v1/teams",
            serde_json::json!({"id": "later", "name": "Later"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    db.cli_ok(&["audit", "verify", "--expect-head", &head_hash], None);
    let unknown = "0bad".repeat(16);
    let out = db.cli(&["audit", "verify", "--expect-head", &unknown], None);
    assert_eq!(
        out.status.code(),
        Some(3),
        "an unknown head is not in the chain"
    );

    // Someone rewrites history: entry 10 now says a different actor did it.
    db.execute("UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 10")
        .await;
    let out = db.cli(&["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit entry 10"),
        "{out:?}"
    );
    db.execute("UPDATE audit_log SET actor = 'token:admin' WHERE seq = 10")
        .await;
    db.cli_ok(&["audit", "verify"], None);

    // An entry removed from the middle.
    db.execute("DELETE FROM audit_log WHERE seq = 20").await;
    let out = db.cli(&["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit entry 20 is missing"),
        "{out:?}"
    );

    // The log truncated and the head row rewritten to match: only a head kept
    // elsewhere catches it.
    db.execute("DELETE FROM audit_log WHERE seq >= 20").await;
    db.execute("UPDATE audit_head SET seq = 19, hash = (SELECT hash FROM audit_log WHERE seq = 19) WHERE id = 1").await;
    db.cli_ok(&["audit", "verify"], None);
    let out = db.cli(&["audit", "verify", "--expect-head", &head_hash], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&head_hash),
        "{out:?}"
    );
}
