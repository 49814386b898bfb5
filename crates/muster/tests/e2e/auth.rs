//! Authentication and roles through the API and the CLI.

use crate::common::{Backend, Database, seeded, send};
use crate::on_both_databases;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_databases!(
    every_api_route_needs_auth,
    roles_limit_what_callers_may_do,
    team_scoped_grants_act_only_inside_their_team,
    tokens_are_shown_once_and_can_be_revoked
);

pub const ROUTES: [(&str, &str); 68] = [
    ("GET", "/api/v1/artifacts"),
    ("POST", "/api/v1/artifacts/identity/retire"),
    ("POST", "/api/v1/renewables/identity/renewal"),
    ("POST", "/api/v1/renewables/identity/probe"),
    ("GET", "/api/v1/renewables"),
    ("POST", "/api/v1/renewables"),
    ("GET", "/api/v1/renewables/identity"),
    ("PATCH", "/api/v1/renewables/identity"),
    ("DELETE", "/api/v1/renewables/identity"),
    ("GET", "/api/v1/change-feeds"),
    ("POST", "/api/v1/change-feeds"),
    ("DELETE", "/api/v1/change-feeds/identity"),
    ("GET", "/api/v1/catalog"),
    ("PUT", "/api/v1/catalog"),
    ("GET", "/api/v1/services"),
    ("POST", "/api/v1/services"),
    ("GET", "/api/v1/services/identity"),
    ("PATCH", "/api/v1/services/identity"),
    ("DELETE", "/api/v1/services/identity"),
    ("GET", "/api/v1/services/identity/impact"),
    ("GET", "/api/v1/services/identity/dependencies"),
    ("GET", "/api/v1/teams"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/audit/head"),
    ("GET", "/api/v1/schedules"),
    ("POST", "/api/v1/schedules"),
    ("PATCH", "/api/v1/schedules/identity"),
    ("GET", "/api/v1/schedules/identity/revisions"),
    ("GET", "/api/v1/escalation_policies"),
    ("DELETE", "/api/v1/escalation_policies/identity"),
    ("GET", "/api/v1/schedules/identity/oncall"),
    ("GET", "/api/v1/schedules/identity/shifts"),
    ("GET", "/api/v1/schedules/identity/overrides"),
    ("POST", "/api/v1/schedules/identity/overrides"),
    ("DELETE", "/api/v1/schedules/identity/overrides/ovr-x"),
    ("GET", "/api/v1/services/identity/oncall"),
    ("POST", "/api/v1/people/identity/calendar-feed"),
    ("DELETE", "/api/v1/people/identity/calendar-feed"),
    ("GET", "/api/v1/notifications"),
    ("POST", "/api/v1/people/identity/test-notification"),
    ("GET", "/api/v1/services/identity/integration-keys"),
    ("POST", "/api/v1/services/identity/integration-keys"),
    ("DELETE", "/api/v1/services/identity/integration-keys/ik-x"),
    ("GET", "/api/v1/integration-keys"),
    ("POST", "/api/v1/integration-keys"),
    ("DELETE", "/api/v1/integration-keys/ik-x"),
    ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/alerts/identity"),
    ("GET", "/api/v1/services/identity/change-events"),
    ("GET", "/api/v1/incidents"),
    ("POST", "/api/v1/incidents"),
    ("GET", "/api/v1/incidents/identity"),
    ("POST", "/api/v1/incidents/identity/acknowledge"),
    ("GET", "/api/v1/reports"),
    ("POST", "/api/v1/reports"),
    ("POST", "/api/v1/reports/identity/route"),
    ("GET", "/api/v1/changes"),
    ("POST", "/api/v1/changes"),
    ("POST", "/api/v1/changes/check"),
    ("GET", "/api/v1/changes/identity"),
    ("PUT", "/api/v1/changes/identity"),
    ("POST", "/api/v1/changes/identity/risk-acceptance"),
    ("POST", "/api/v1/changes/identity/acknowledge"),
    ("POST", "/api/v1/change-events"),
    ("GET", "/api/v1/sandbox"),
    ("GET", "/api/v1/incidents/identity/changes"),
    ("POST", "/api/v1/incidents/identity/caused-by"),
    ("GET", "/api/v1/reports/change-failure-rate"),
];

async fn every_api_route_needs_auth(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    for (method, path) in ROUTES {
        let method: Method = method.parse().unwrap();
        let url = format!("{}{path}", server.base);
        let (status, body) = send(server.client.request(method.clone(), &url)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_eq!(body["status"], 401);
        let (status, _) = send(
            server
                .client
                .request(method.clone(), &url)
                .bearer_auth("mst_not-a-real-token"),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a bad token"
        );
        let (status, _) = send(
            server
                .client
                .request(method, &url)
                .header("authorization", "Basic YWRtaW46YWRtaW4="),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = send(
        server
            .client
            .get(format!("{}/api/v1/services", server.base))
            .header("cookie", "muster_session=forged"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an unknown session is no session"
    );
}

async fn roles_limit_what_callers_may_do(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let viewer = db.token("viewer", "viewer", &[]);
    let responder = db.token("responder", "responder", &[]);
    let editor = db.token("editor", "editor", &[]);

    let (status, _) = send(server.as_token(Method::GET, "/api/v1/services", &viewer)).await;
    assert_eq!(status, StatusCode::OK);
    let new_service = json!({"id": "fax", "name": "Fax", "owner": "platform"});
    for token in [&viewer, &responder] {
        let (status, body) = send(
            server
                .as_token(Method::POST, "/api/v1/services", token)
                .json(&new_service),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("may not edit"),
            "{body}"
        );
        let (status, _) = send(
            server
                .as_token(Method::PUT, "/api/v1/catalog", token)
                .body("teams: []"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = send(server.as_token(Method::DELETE, "/api/v1/people/vic", token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = server.get("/api/v1/services/fax").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "refused writes store nothing"
    );
    let (status, body) = send(
        server
            .as_token(Method::POST, "/api/v1/services", &editor)
            .json(&new_service),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn team_scoped_grants_act_only_inside_their_team(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let ges = db.token(
        "ges-editor",
        "editor",
        &["--team", "ges-team", "--person", "jared"],
    );
    let (status, body) = send(
        server
            .as_token(Method::PATCH, "/api/v1/services/ges", &ges)
            .json(&json!({"tier": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(
        server
            .as_token(Method::PATCH, "/api/v1/services/identity", &ges)
            .json(&json!({"tier": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("team ges-team"),
        "{body}"
    );
    let (status, _) = send(
        server
            .as_token(Method::PATCH, "/api/v1/services/ges", &ges)
            .json(&json!({"owner": "platform"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "cannot give a service away to another team"
    );
    let (status, _) = send(
        server
            .as_token(Method::POST, "/api/v1/services", &ges)
            .json(&json!({"id": "ges-batch", "name": "GES batch", "owner": "ges-team"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send(
        server
            .as_token(Method::POST, "/api/v1/services", &ges)
            .json(&json!({"id": "sneaky", "name": "S", "owner": "platform"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        server
            .as_token(Method::PUT, "/api/v1/catalog", &ges)
            .body("teams: []"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the whole catalog is not one team's"
    );
    let (status, _) = send(server.as_token(Method::GET, "/api/v1/services/identity", &ges)).await;
    assert_eq!(status, StatusCode::OK, "reads are global");
    let (status, _) = send(server.as_token(Method::DELETE, "/api/v1/teams/ges-team", &ges)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a team-scoped grant cannot delete its team"
    );
}

async fn tokens_are_shown_once_and_can_be_revoked(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let out = db.cli_ok(
        &["token", "create", "--name", "ci-deploy", "--role", "editor"],
        None,
    );
    let token = out.trim();
    assert_eq!(out.lines().count(), 1, "only the token on stdout: {out:?}");
    assert!(token.starts_with("mst_") && token.len() == 44, "{token}");
    let listing = db.cli_ok(&["token", "list"], None);
    assert!(
        listing.contains("ci-deploy\teditor\t-\tlive") && !listing.contains(token),
        "{listing}"
    );
    let (status, _) = send(server.as_token(Method::GET, "/api/v1/teams", token)).await;
    assert_eq!(status, StatusCode::OK);
    db.cli_ok(&["token", "revoke", "ci-deploy"], None);
    let (status, body) = send(server.as_token(Method::GET, "/api/v1/teams", token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].as_str().unwrap().contains("revoked"));

    let out = db.cli(
        &["token", "create", "--name", "ci-deploy", "--role", "editor"],
        None,
    );
    assert!(!out.status.success(), "names are unique");
    let out = db.cli(
        &[
            "token", "create", "--name", "x", "--role", "editor", "--person", "ghost",
        ],
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("person: unknown person \"ghost\""),
        "{out:?}"
    );
    let out = db.cli(&["token", "create", "--name", "x", "--role", "root"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("viewer, responder, editor or admin"));
    let out = db.cli(
        &[
            "user",
            "create",
            "--username",
            "ann",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some("short"),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password: must be at least 12 characters"),
        "{out:?}"
    );
    let create_ann = [
        "user",
        "create",
        "--username",
        "ann",
        "--role",
        "viewer",
        "--password-stdin",
    ];
    let out = db.cli(&create_ann, Some("              "));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("besides surrounding spaces"),
        "{out:?}"
    );
    db.cli_ok(&create_ann, Some("a long enough password"));
    db.cli_ok(&["user", "disable", "--username", "ann"], None);
    let listing = db.cli_ok(&["user", "list"], None);
    assert!(listing.contains("ann\tviewer\t-\t-\tdisabled"), "{listing}");
    let out = db.cli(&["user", "disable", "--username", "ann"], None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no active user named \"ann\""),
        "{out:?}"
    );
    let (_, audit) = server.get("/api/v1/audit?entity=user:ann").await;
    assert_eq!(audit["items"][0]["action"], "disable");
}

#[tokio::test]
async fn the_api_token_is_stored_only_as_a_hash() {
    let db = Database::fresh(Backend::Sqlite).await;
    let token = db.token("t", "viewer", &[]);
    let bytes = std::fs::read(db.dir.join("muster.db")).unwrap();
    let wal = std::fs::read(db.dir.join("muster.db-wal")).unwrap_or_default();
    let secret = token.trim_start_matches("mst_").as_bytes();
    let found = |hay: &[u8]| hay.windows(secret.len()).any(|w| w == secret);
    assert!(
        !found(&bytes) && !found(&wal),
        "the token is not in the database file"
    );
}
