//! The catalog through the API: import, export, validation, CRUD, graph, pagination.

use crate::common::{Backend, Database, SEED_WORLD, problems, seeded, send};
use crate::on_both_databases;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_databases!(
    seed_world_imports_and_reimports_unchanged,
    export_round_trips_to_the_identical_state,
    invalid_documents_are_rejected_whole_with_every_problem_named,
    malformed_and_oversized_bodies_get_clear_errors,
    crud_with_etags_and_referential_integrity,
    impact_and_dependencies_follow_the_graph,
    lists_paginate_and_filter,
    prune_removes_only_absent_catalog_entities,
    secrets_are_sealed_redacted_and_kept_on_reimport,
    renewable_expiry_never_moves_backwards,
);

/// `(service, distance)` pairs of a list of reached services.
fn service_distances(list: &Value) -> Vec<(String, u64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["service"].as_str().unwrap().to_string(),
                d["distance"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn seed_world_imports_and_reimports_unchanged(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (status, again) = server.put_yaml("/api/v1/catalog", SEED_WORLD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["changed"], 0, "{again}");
    assert_eq!(
        again["summary"]["services"]["unchanged"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
    assert_eq!(
        again["summary"]["people"]["unchanged"]
            .as_array()
            .unwrap()
            .len(),
        22
    );
    let (_, people) = server.get("/api/v1/people?limit=1000").await;
    assert_eq!(people["items"].as_array().unwrap().len(), 22);
    let (_, service) = server.get("/api/v1/services/forms-printing").await;
    assert_eq!(service["owner"], "print-platform");
    assert_eq!(
        service["depends_on"],
        json!(["print-licence-server", "identity"])
    );
    let (_, identity) = server.get("/api/v1/services/identity").await;
    assert_eq!(
        identity["dependents"],
        json!(["forms-printing", "ges", "helpdesk-portal", "public-api"])
    );
}

async fn export_round_trips_to_the_identical_state(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let response = server
        .request(Method::GET, "/api/v1/catalog")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/yaml")
    );
    let exported = response.text().await.unwrap();
    let (status, summary) = server
        .put_yaml("/api/v1/catalog?prune=true", &exported)
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(
        summary["changed"], 0,
        "re-importing the export changes nothing: {summary}"
    );
    let again = server.export().await;
    assert_eq!(exported, again);
    // JSON export on request.
    let (_, json_export) = send(
        server
            .request(Method::GET, "/api/v1/catalog")
            .header("accept", "application/json"),
    )
    .await;
    assert_eq!(json_export["services"].as_array().unwrap().len(), 12);
}

async fn invalid_documents_are_rejected_whole_with_every_problem_named(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let bad = SEED_WORLD
        .replace("owner: hosting\n    tier: 1", "owner: prnt\n    tier: 1")
        .replace("    depends_on: [identity]\n  - id: desktop-client", "    depends_on: [identity, desktop-client]\n  - id: desktop-client")
        .replace("timezone: Asia/Tokyo", "timezone: Asia/Atlantis")
        .replace("- {id: vic,", "- {id: Vic,")
        .replace("expires_at: \"2027-01-15T00:00:00Z\"", "expires_at: \"2027-01-32\"")
        .replace("  - {id: org-10, name: Jarrow Pharmacy,     uses: [forms-printing, helpdesk-portal]}", "  - {id: org-10, name: Jarrow Pharmacy,     uses: [forms-printing, helpdesk-portal]}\n  - {id: org-10, name: Twice, uses: []}");
    // Also add a brand-new service that must not be half-applied.
    let bad = bad.replace(
        "services:\n",
        "services:\n  - {id: brand-new, name: New, owner: platform}\n",
    );
    let (status, body) = server.put_yaml("/api/v1/catalog", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let got = problems(&body);
    let expect = [
        "people[13].timezone: unknown timezone \"Asia/Atlantis\"",
        "people[20].id: \"Vic\" is not a slug",
        "services[9].owner: unknown team \"prnt\"",
        "services[6].depends_on: dependency cycle: public-api -> desktop-client -> public-api",
        "organisations[11].id: duplicate organisation id \"org-10\"",
        "renewables[1].expires_at: \"2027-01-32\" is not an RFC 3339 instant",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g.starts_with(e) || g.contains(e)),
            "missing {e:?} in {got:#?}"
        );
    }
    assert_eq!(body["status"], 422);
    let (status, _) = server.get("/api/v1/services/brand-new").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing was partially applied"
    );
}

async fn malformed_and_oversized_bodies_get_clear_errors(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (status, body) = server
        .put_yaml("/api/v1/catalog", "teams: [\n  - {id: x")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("invalid YAML"),
        "{body}"
    );

    let (status, body) = server
        .put_yaml(
            "/api/v1/catalog",
            "services:\n  - {id: a, name: A, ownr: platform}\n",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problems(&body)[0].contains("unknown field `ownr`"),
        "{body}"
    );

    let (status, body) = send(
        server
            .request(Method::POST, "/api/v1/services")
            .header("content-type", "application/json")
            .body("{\"id\": "),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("invalid JSON"),
        "{body}"
    );

    let (status, body) = server
        .post(
            "/api/v1/services",
            json!({"id": "x", "name": "X", "owner": "platform", "tier": "one"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["path"], "tier", "{body}");

    let huge = "x".repeat(2 * 1024 * 1024);
    // A connection whose body was refused unread is closed: send it on a client of its own.
    let oversized = reqwest::Client::new()
        .post(format!("{}/api/v1/services", server.base))
        .bearer_auth(server.token.as_deref().unwrap())
        .json(&json!({"id": "x", "name": huge, "owner": "platform"}));
    let (status, body) = send(oversized).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["status"], 413);

    let (status, body) = server
        .put_yaml("/api/v1/catalog?prune=maybe", SEED_WORLD)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["path"], "prune");

    let (_, after) = server.get("/api/v1/services?limit=1000").await;
    assert_eq!(
        after["items"].as_array().unwrap().len(),
        12,
        "nothing stored was lost"
    );
}

async fn crud_with_etags_and_referential_integrity(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (status, created) = server
        .post("/api/v1/services", json!({"id": "fax-gateway", "name": "Fax gateway", "owner": "platform", "tier": 2, "depends_on": ["identity"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["dependents"], json!([]));
    let (status, dup) = server
        .post(
            "/api/v1/services",
            json!({"id": "fax-gateway", "name": "Again", "owner": "platform"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");

    let (status, bad) = server
        .post(
            "/api/v1/services",
            json!({"id": "bad", "name": "Bad", "owner": "prnt", "depends_on": ["ghost"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problems(&bad),
        vec![
            "owner: unknown team \"prnt\"",
            "depends_on[0]: unknown service \"ghost\""
        ]
    );

    let response = server
        .request(Method::GET, "/api/v1/services/fax-gateway")
        .send()
        .await
        .unwrap();
    let etag = response.headers()["etag"].to_str().unwrap().to_string();

    let (status, patched) = send(
        server
            .request(Method::PATCH, "/api/v1/services/fax-gateway")
            .header("if-match", &etag)
            .json(&json!({"tier": 1, "runbook": "https://runbooks.example.test/fax"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["tier"], 1);
    assert_eq!(
        patched["name"], "Fax gateway",
        "a merge patch keeps other fields"
    );

    let response = send(
        server
            .request(Method::PATCH, "/api/v1/services/fax-gateway")
            .header("if-match", &etag)
            .json(&json!({"tier": 3})),
    )
    .await;
    assert_eq!(
        response.0,
        StatusCode::PRECONDITION_FAILED,
        "a stale ETag is refused: {}",
        response.1
    );
    let (_, now) = server.get("/api/v1/services/fax-gateway").await;
    assert_eq!(now["tier"], 1, "the stale write changed nothing");

    let (status, body) = send(
        server
            .request(Method::PATCH, "/api/v1/services/fax-gateway")
            .json(&json!({"id": "renamed"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["path"], "id");

    let (status, body) = send(
        server
            .request(Method::PATCH, "/api/v1/services/fax-gateway")
            .json(&json!({"depends_on": ["desktop-client"], "owner": "nobody"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, body) = send(server.request(Method::DELETE, "/api/v1/teams/hosting")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("northwind-login") && detail.contains("northwind-login-backup"),
        "{detail}"
    );
    assert_eq!(body["errors"][0]["message"], "refers to team \"hosting\"");

    let (status, body) = server
        .post("/api/v1/services", json!({"id": "ownerless", "name": "O"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["errors"][0]["path"], "owner",
        "a missing field is named: {body}"
    );

    let (status, body) = send(server.request(Method::DELETE, "/api/v1/services")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["status"], 405, "405 is a problem document too: {body}");

    // The ETag covers the answer, dependents included.
    let etag = |r: &reqwest::Response| r.headers()["etag"].to_str().unwrap().to_string();
    let before = etag(
        &server
            .request(Method::GET, "/api/v1/services/vendor-auth")
            .send()
            .await
            .unwrap(),
    );
    assert!(!before.starts_with("W/"), "strong ETags");
    server.post("/api/v1/services", json!({"id": "sso-bridge", "name": "SSO bridge", "owner": "platform", "depends_on": ["vendor-auth"]})).await;
    let after = etag(
        &server
            .request(Method::GET, "/api/v1/services/vendor-auth")
            .send()
            .await
            .unwrap(),
    );
    assert_ne!(before, after, "a new dependent changes the ETag");
    let (status, _) = send(
        server
            .request(Method::PATCH, "/api/v1/services/vendor-auth")
            .header("if-match", format!("\"nope\", {after}"))
            .json(&json!({"tier": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "If-Match takes a list");

    let (status, body) = server.get("/api/v1/services/no-such-service").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("\"no-such-service\""),
        "{body}"
    );

    let (status, _) = send(server.request(Method::DELETE, "/api/v1/services/fax-gateway")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server.get("/api/v1/services/fax-gateway").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // People and organisations have the same collection shape.
    let (status, person) = server.post("/api/v1/people", json!({"id": "zed", "name": "Zed", "timezone": "Europe/Paris", "email": "zed@example.test"})).await;
    assert_eq!(status, StatusCode::CREATED, "{person}");
    let (status, org) = server
        .post(
            "/api/v1/organisations",
            json!({"id": "org-11", "name": "Kelso", "uses": ["helpdesk-portal"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    let (status, _) =
        send(server.request(Method::DELETE, "/api/v1/services/helpdesk-portal")).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an organisation still uses it"
    );
}

async fn impact_and_dependencies_follow_the_graph(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (status, impact) = server.get("/api/v1/services/vendor-auth/impact").await;
    assert_eq!(status, StatusCode::OK);
    let dependents: Vec<(String, u64)> = service_distances(&impact["dependents"]);
    assert_eq!(
        &dependents[..3],
        &[
            ("identity".into(), 1),
            ("northwind-login".into(), 1),
            ("northwind-login-backup".into(), 1)
        ]
    );
    let agent_portal = impact["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["service"] == "agent-portal")
        .unwrap();
    assert_eq!(agent_portal["distance"], 3);
    assert_eq!(
        agent_portal["path"],
        json!(["vendor-auth", "identity", "ges", "agent-portal"])
    );
    let desktop = impact["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["service"] == "desktop-client")
        .unwrap();
    assert_eq!(desktop["distance"], 3);
    let orgs: Vec<&str> = impact["organisations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        orgs.len(),
        12,
        "every organisation uses something behind vendor-auth: {orgs:?}"
    );
    let teams: Vec<&str> = impact["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["team"].as_str().unwrap())
        .collect();
    assert_eq!(
        teams,
        [
            "contact-centre",
            "desktop-client",
            "ges-team",
            "helpdesk",
            "hosting",
            "platform",
            "print-platform"
        ]
    );

    let (_, impact) = server.get("/api/v1/services/phone-switch/impact").await;
    let orgs: Vec<&str> = impact["organisations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(orgs, ["reservations"]);

    let (_, deps) = server
        .get("/api/v1/services/desktop-client/dependencies")
        .await;
    let got: Vec<(String, u64)> = service_distances(&deps["dependencies"]);
    assert_eq!(
        got,
        vec![
            ("public-api".into(), 1),
            ("identity".into(), 2),
            ("vendor-auth".into(), 3)
        ]
    );
    let (status, _) = server.get("/api/v1/services/ghost/impact").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn lists_paginate_and_filter(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/services?limit=5&cursor={c}"),
            None => "/api/v1/services?limit=5".into(),
        };
        let (status, page) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "pages are in order without repeats");
    assert_eq!(seen.len(), 12);

    let (_, platform) = server.get("/api/v1/services?team=platform").await;
    assert_eq!(ids(&platform), ["identity", "public-api", "vendor-auth"]);
    let (_, tier2) = server.get("/api/v1/services?tier=2").await;
    assert_eq!(ids(&tier2), ["desktop-client", "helpdesk-portal"]);
    let (_, search) = server.get("/api/v1/services?q=LOGIN").await;
    assert_eq!(
        ids(&search),
        ["identity", "northwind-login", "northwind-login-backup"]
    );
    let (_, members) = server.get("/api/v1/people?team=hosting").await;
    assert_eq!(ids(&members), ["hank", "hiro"]);

    let (status, body) = server.get("/api/v1/teams?tier=1").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "only services have a tier: {body}"
    );
    for bad in ["limit=0", "limit=5000", "limit=ten", "tier=top", "tier=9"] {
        let (status, body) = server.get(&format!("/api/v1/services?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["errors"][0]["path"], bad.split('=').next().unwrap());
    }
}

async fn prune_removes_only_absent_catalog_entities(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    // A document that declares nothing never prunes the catalog away.
    for empty in ["version: 1\n", "{}", "teams: []\n"] {
        let (status, body) = server.put_yaml("/api/v1/catalog?prune=true", empty).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{empty:?}: {body}"
        );
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("would delete the whole catalog")
        );
    }
    let (_, services) = server.get("/api/v1/services?limit=1000").await;
    assert_eq!(services["items"].as_array().unwrap().len(), 12);
    // Without prune, a partial document keeps everything else.
    let (status, body) = server
        .put_yaml(
            "/api/v1/catalog",
            "teams:\n  - {id: newcomers, name: Newcomers}\n",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["summary"]["teams"]["created"], json!(["newcomers"]));
    assert_eq!(
        body["summary"]["services"]["kept"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
    // With prune, the seed world alone removes the newcomers and nothing else.
    let (status, body) = server
        .put_yaml("/api/v1/catalog?prune=true", SEED_WORLD)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["summary"]["teams"]["deleted"], json!(["newcomers"]));
    assert_eq!(body["changed"], 1);
    let (status, _) = server.get("/api/v1/teams/newcomers").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn secrets_are_sealed_redacted_and_kept_on_reimport(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let doc = "people:\n  - id: sec\n    name: Secret Keeper\n    timezone: UTC\n    contacts:\n      - {type: slack, url: 'https://hooks.slack.test/T000/B000/XYZSECRET'}\n      - {type: webhook, url: 'https://hooks.example.test/in', secret: 'sig-key-123'}\n";
    let (status, body) = server.put_yaml("/api/v1/catalog", doc).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, person) = server.get("/api/v1/people/sec").await;
    assert_eq!(person["contacts"][0]["url"], "<redacted>");
    assert_eq!(person["contacts"][1]["secret"], "<redacted>");
    assert_eq!(
        person["contacts"][1]["url"], "https://hooks.example.test/in",
        "plain URLs stay visible"
    );

    let export = server.export().await;
    assert!(!export.contains("XYZSECRET") && !export.contains("sig-key-123"));
    let (_, again) = server.put_yaml("/api/v1/catalog", &export).await;
    assert_eq!(
        again["changed"], 0,
        "a redacted export re-imports without change: {again}"
    );

    // Nothing in the database holds the secret in clear.
    let stored = db
        .texts("SELECT body FROM people UNION ALL SELECT COALESCE(after_state, '') FROM audit_log")
        .await
        .join("\n");
    assert!(stored.contains("sealed:v1:"), "secrets are stored sealed");
    assert!(
        !stored.contains("XYZSECRET") && !stored.contains("sig-key-123"),
        "no secret in clear at rest"
    );

    // A redacted secret with nothing stored is refused, naming the field.
    let (status, body) = server.put_yaml("/api/v1/catalog", "people:\n  - {id: new, name: N, timezone: UTC, contacts: [{type: teams, url: '<redacted>'}]}\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["path"], "people[0].contacts[0].url");
}

async fn renewable_expiry_never_moves_backwards(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let older = SEED_WORLD.replace(
        "expires_at: \"2027-02-01T00:00:00Z\"",
        "expires_at: \"2026-12-01T00:00:00Z\"",
    );
    let (status, body) = server.put_yaml("/api/v1/catalog", &older).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["changed"], 0);
    assert_eq!(
        body["summary"]["notes"][0]["path"], "renewables[0].expires_at",
        "{body}"
    );
    let export = server.export().await;
    assert!(export.contains("2027-02-01T00:00:00Z"));
}

#[tokio::test]
async fn a_fresh_database_starts_empty() {
    let db = Database::fresh(Backend::Sqlite).await;
    let token = db.token("admin", "admin", &[]);
    let server = db.serve().unwrap().with_token(&token);
    let (status, body) = server.get("/api/v1/services").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"items": [], "next_cursor": null}));
}

on_both_databases!(the_cli_imports_and_exports_on_the_database_directly);

async fn the_cli_imports_and_exports_on_the_database_directly(backend: Backend) {
    let db = Database::fresh(backend).await;
    let world = db.dir.join("world.yaml");
    std::fs::write(&world, SEED_WORLD).unwrap();
    let out = db.cli(
        &[
            "catalog",
            "import",
            world.to_str().unwrap(),
            "--reason",
            "initial load",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("services: 12 created"), "{summary}");

    let broken = db.dir.join("broken.yaml");
    std::fs::write(
        &broken,
        SEED_WORLD.replace("owner: hosting\n    tier: 1", "owner: prnt\n    tier: 1"),
    )
    .unwrap();
    let out = db.cli(
        &["catalog", "import", broken.to_str().unwrap(), "--prune"],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("services[8].owner: unknown team \"prnt\"") && err.contains("nothing changed"),
        "{err}"
    );

    let exported = db.cli_ok(&["catalog", "export"], None);
    let reimport = db.dir.join("export.yaml");
    std::fs::write(&reimport, &exported).unwrap();
    let out = db.cli(
        &["catalog", "import", reimport.to_str().unwrap(), "--prune"],
        None,
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("services: 12 unchanged")
            && !summary.contains("created")
            && !summary.contains("deleted"),
        "{summary}"
    );

    let token = db.token("admin", "admin", &[]);
    let server = db.serve().unwrap().with_token(&token);
    let (_, audit) = server.get("/api/v1/audit?entity=service:identity").await;
    assert_eq!(audit["items"][0]["reason"], "initial load");
    assert!(
        audit["items"][0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("cli:")
    );
}
