//! The five stories (`shared/world/stories.md`): the catalog facts each story reads
//! from the graph, and story 5 (four launches in a month) replayed through changes,
//! incidents and reports. The other stories are replayed where their capability lives:
//! story 1 in `renewals.rs` (its report flood in `incidents.rs`), stories 2 and 4 in
//! `changes.rs`, story 3 in `probes.rs`.

use crate::changes::{act_as_ok, act_ok, create, helpdesk_launch, kinds, person_token, record};
use crate::common::{Backend, Server, seeded, texts_at};
use crate::intake::{post_alerts, service_key};
use crate::on_both_databases;
use reqwest::StatusCode;
use serde_json::json;

on_both_databases!(
    licence_story_counts_the_organisations_behind_forms_printing,
    sandbox_story_sees_both_teams_serving_the_agent_portal,
    pinned_certificate_story_reaches_the_desktop_client_customers,
    insisted_change_story_knows_the_login_servers_and_their_owner,
    four_launches_story_folds_helpdesk_reports_into_one_incident,
);

async fn licence_story_counts_the_organisations_behind_forms_printing(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    // The licence server breaks: forms printing breaks for every organisation using it.
    let (_, impact) = server
        .get("/api/v1/services/print-licence-server/impact")
        .await;
    assert_eq!(
        texts_at(&impact["dependents"], "/service"),
        ["forms-printing"]
    );
    let orgs = texts_at(&impact["organisations"], "/id");
    assert_eq!(
        orgs.len(),
        11,
        "11 organisations use forms-printing: {orgs:?}"
    );
    let uses = |org: &str| orgs.iter().any(|o| o == org);
    assert!(uses("northwind") && uses("org-10") && !uses("reservations"));
    assert_eq!(texts_at(&impact["teams"], "/team"), ["print-platform"]);
    // The renewable that will drive the story is stored with its 11 targets.
    let (_, catalog) = crate::common::send(
        server
            .request(reqwest::Method::GET, "/api/v1/catalog")
            .header("accept", "application/json"),
    )
    .await;
    let licence = catalog["renewables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "formprint-licence")
        .unwrap();
    assert_eq!(licence["targets"].as_array().unwrap().len(), 11);
    assert_eq!(licence["buyer"], "procurement");
}

async fn sandbox_story_sees_both_teams_serving_the_agent_portal(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (_, switch) = server.get("/api/v1/services/phone-switch/impact").await;
    let (_, ges) = server.get("/api/v1/services/ges/impact").await;
    assert_eq!(
        texts_at(&switch["dependents"], "/service"),
        ["agent-portal"]
    );
    assert_eq!(texts_at(&ges["dependents"], "/service"), ["agent-portal"]);
    // Two hops apart through the portal, owned by two different teams.
    let (_, portal) = server
        .get("/api/v1/services/agent-portal/dependencies")
        .await;
    let direct: Vec<&str> = portal["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["distance"] == 1)
        .map(|d| d["service"].as_str().unwrap())
        .collect();
    assert_eq!(direct, ["ges", "phone-switch"]);
    assert_eq!(
        texts_at(&ges["teams"], "/team"),
        ["contact-centre", "ges-team"]
    );
    assert_eq!(texts_at(&switch["organisations"], "/id"), ["reservations"]);
}

async fn pinned_certificate_story_reaches_the_desktop_client_customers(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (_, impact) = server.get("/api/v1/services/public-api/impact").await;
    assert_eq!(
        texts_at(&impact["dependents"], "/service"),
        ["desktop-client"]
    );
    assert_eq!(
        texts_at(&impact["organisations"], "/id"),
        ["org-03", "org-05", "org-07"]
    );
}

async fn insisted_change_story_knows_the_login_servers_and_their_owner(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (_, login) = server.get("/api/v1/services/northwind-login").await;
    let (_, backup) = server.get("/api/v1/services/northwind-login-backup").await;
    assert_eq!(
        (login["owner"].as_str(), backup["owner"].as_str()),
        (Some("hosting"), Some("hosting"))
    );
    assert_eq!(login["depends_on"], backup["depends_on"]);
    let (_, impact) = server.get("/api/v1/services/northwind-login/impact").await;
    assert_eq!(texts_at(&impact["organisations"], "/id"), ["northwind"]);
    let (_, team) = server.get("/api/v1/teams/hosting").await;
    assert_eq!(team["members"], serde_json::json!(["hank", "hiro"]));
}

/// Takes a helpdesk change by `hal` through submission, `hope`'s approval, start and
/// completion.
async fn carry_out(server: &Server, hope: &str, number: &str) {
    act_ok(server, number, "submit", json!({"by": "hal"})).await;
    act_as_ok(server, hope, number, "approve", json!({})).await;
    act_ok(server, number, "start", json!({"by": "hal"})).await;
    act_ok(server, number, "complete", json!({"by": "hal"})).await;
}

/// Story 5: the third launch in a month needs an acknowledgement; after a launch, the
/// helpdesk's reports with no service fold into the open incident instead of becoming
/// tickets of their own; the fix that causes a new incident counts as a failed change.
async fn four_launches_story_folds_helpdesk_reports_into_one_incident(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let hope = person_token(&db, "hope");
    // The first launch goes live; two more follow within the month, and the third
    // needs an explicit acknowledgement.
    let first = create(
        &server,
        helpdesk_launch("Launch ticket forms", "2026-11-23T11:00:00Z"),
    )
    .await;
    assert!(kinds(&first).is_empty());
    let first = first["number"].as_str().unwrap();
    carry_out(&server, &hope, first).await;
    let second = create(
        &server,
        helpdesk_launch("Launch chat", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert!(kinds(&second).is_empty());
    let third = create(
        &server,
        helpdesk_launch("Launch self-service", "2026-12-15T09:00:00Z"),
    )
    .await;
    assert_eq!(kinds(&third), ["launch_density"], "{third}");

    // After it, the portal's ticket submissions fail: one incident opens.
    let key = service_key(&server, "helpdesk-portal", "prom").await;
    let alert = json!([{"labels": {"alertname": "TicketSubmitErrors", "severity": "critical"},
                        "annotations": {"summary": "Ticket submissions failing on the helpdesk portal"}}]);
    let (status, _) = post_alerts(&server, &key, &alert.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, open) = server.get("/api/v1/incidents?status=open").await;
    let open = open["items"].as_array().unwrap().clone();
    assert_eq!(open.len(), 1, "{open:?}");
    let number = open[0]["number"].as_str().unwrap().to_string();

    // Organisations call the helpdesk, which records what they say without naming a
    // service: each report joins the incident it resembles, none becomes a ticket.
    for (organisation, channel, summary) in [
        (
            "org-01",
            "phone",
            "Cannot submit tickets on the helpdesk portal",
        ),
        ("org-10", "email", "Ticket submission fails with an error"),
        ("org-02", "portal", "Our tickets will not submit"),
        (
            "org-01",
            "chat",
            "Still failing: the ticket form will not submit",
        ),
    ] {
        let (status, report) = server
            .post(
                "/api/v1/reports",
                json!({"organisation": organisation, "summary": summary,
                       "reporter": "helpdesk", "channel": channel}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{report}");
        assert_eq!(report["incident"], json!(number), "{summary}: {report}");
    }
    // A report about something else is not swallowed: it waits in triage.
    let (_, unrelated) = server
        .post(
            "/api/v1/reports",
            json!({"organisation": "northwind", "summary": "Password reset email never arrives",
                   "channel": "phone"}),
        )
        .await;
    assert!(unrelated["incident"].is_null(), "{unrelated}");
    let (_, waiting) = server.get("/api/v1/reports").await;
    assert_eq!(texts_at(&waiting["items"], "/organisation"), ["northwind"]);
    let (_, incident) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(incident["reports"].as_array().unwrap().len(), 4);
    assert_eq!(incident["organisations"]["reported"], 3, "{incident:#}");
    assert_eq!(incident["organisations"]["using_impacted_services"], 2);
    let (_, open) = server.get("/api/v1/incidents?status=open").await;
    assert_eq!(
        open["items"].as_array().unwrap().len(),
        1,
        "still one incident"
    );

    // The fix ships as a change; it breaks search, and the new incident is marked
    // caused by it: the helpdesk's change failure rate counts it.
    let mut fix = record(
        "Fix ticket form validation",
        &["helpdesk-portal"],
        "2026-11-23T14:00:00Z",
        1,
        "hal",
    );
    fix["fixes"] = json!([number]);
    let fix = create(&server, fix).await;
    let fix = fix["number"].as_str().unwrap();
    carry_out(&server, &hope, fix).await;
    let (_, incident) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(incident["changes"][0]["relation"], "fixes", "{incident:#}");
    assert!(
        texts_at(&incident["timeline"], "/text").contains(&format!(
            "Fix {fix} \"Fix ticket form validation\": Completed by hal"
        )),
        "the fix's progress is on the incident's timeline: {incident:#}"
    );
    let (status, _) = server
        .post(
            &format!("/api/v1/incidents/{number}/resolve"),
            json!({"by": "hal", "reason": "fixed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, search) = server
        .post(
            "/api/v1/incidents",
            json!({"service": "helpdesk-portal", "title": "Ticket search returns nothing"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{search}");
    let (status, marked) = server
        .post(
            &format!("/api/v1/incidents/{}/caused-by", search["number"].as_str().unwrap()),
            json!({"change": fix, "by": "hope", "reason": "the validation fix broke the search index"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    let (_, search) = server
        .get(&format!(
            "/api/v1/incidents/{}",
            search["number"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        search["changes"],
        json!([{"change": fix, "title": "Fix ticket form validation",
                "state": "completed", "relation": "caused"}])
    );
    let (_, rate) = server
        .get("/api/v1/reports/change-failure-rate?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&team=helpdesk")
        .await;
    assert_eq!(
        rate["overall"],
        json!({"ended": 2, "failed": 1, "rate": 0.5}),
        "{rate}"
    );
    let (_, every) = server.get("/api/v1/incidents?status=all").await;
    assert_eq!(
        texts_at(&every["items"], "/state"),
        ["triggered", "resolved"]
    );
}
