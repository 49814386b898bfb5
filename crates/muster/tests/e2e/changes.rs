//! Changes end to end on the demo world: story 4 (a change at a customer's insistence,
//! approved only after a recorded risk acceptance, rolled back), the sandbox story's
//! conflict over the dependency graph, story 5's launch density, edits after
//! submission, freezes, and bad input refused with nothing changed.

use crate::common::*;
use crate::incidents::{advance, alerts_json, open_incidents, settle, wait_for};
use crate::intake::{post_alerts, service_key};
use crate::on_both_databases;
use crate::oncall::{calendar_events, parse_ical};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A normal change record on `services` from `start` for `hours`.
pub(crate) fn record(
    title: &str,
    services: &[&str],
    start: &str,
    hours: i64,
    implementer: &str,
) -> Value {
    let start: jiff::Timestamp = start.parse().unwrap();
    let end = start + jiff::SignedDuration::from_hours(hours);
    json!({"title": title, "services": services, "start": start.to_string(), "end": end.to_string(),
           "implementer": implementer, "requested_by": implementer,
           "rollback_plan": "Restore the saved configuration"})
}

pub(crate) async fn create(server: &Server, body: Value) -> Value {
    let (status, created) = server.post("/api/v1/changes", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

pub(crate) async fn act(
    server: &Server,
    number: &str,
    action: &str,
    body: Value,
) -> (StatusCode, Value) {
    server
        .post(&format!("/api/v1/changes/{number}/{action}"), body)
        .await
}

pub(crate) async fn act_ok(server: &Server, number: &str, action: &str, body: Value) -> Value {
    let (status, answer) = act(server, number, action, body).await;
    assert_eq!(status, StatusCode::OK, "{action}: {answer}");
    answer
}

/// A responder token linked to `person`: approvals and rejections are given by people.
pub(crate) fn person_token(db: &Database, person: &str) -> String {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    db.token(&format!("{person}-{n}"), "responder", &["--person", person])
}

pub(crate) async fn act_as(
    server: &Server,
    token: &str,
    number: &str,
    action: &str,
    body: Value,
) -> (StatusCode, Value) {
    server
        .post_as(token, &format!("/api/v1/changes/{number}/{action}"), body)
        .await
}

pub(crate) async fn act_as_ok(
    server: &Server,
    token: &str,
    number: &str,
    action: &str,
    body: Value,
) -> Value {
    let (status, answer) = act_as(server, token, number, action, body).await;
    assert_eq!(status, StatusCode::OK, "{action}: {answer}");
    answer
}

pub(crate) fn kinds(change: &Value) -> Vec<String> {
    texts_at(&change["conflicts"], "/kind")
}

async fn story_4_the_change_the_customer_insisted_on(backend: Backend) {
    let (db, server) = seeded(backend).await;
    // hank: a normal change on northwind-login at Northwind's request, high risk, no
    // test evidence (the recommended test on the backup server was declined).
    let mut body = record(
        "Change the login config",
        &["northwind-login"],
        "2026-11-24T20:00:00Z",
        2,
        "hank",
    );
    body["requested_by"] = json!("Northwind IT manager");
    body["risk"] = json!("high");
    body["rollback_plan"] = json!("");
    let change = create(&server, body).await;
    let number = change["number"].as_str().unwrap().to_string();
    assert_eq!(change["state"], "draft");
    assert_eq!(change["requested_by"], "Northwind IT manager");
    assert_eq!(change["risk"]["computed"], "high");
    assert!(
        texts_at(&change["risk"]["reasons"], "")
            .contains(&"tier 1 (northwind-login) without test evidence".to_string()),
        "{change}"
    );
    assert_eq!(change["safeguards_missing"].as_array().unwrap().len(), 2);
    act_ok(&server, &number, "submit", json!({"by": "hank"})).await;

    // Approval is refused until a risk acceptance is recorded; nothing changes.
    let (status, refused) = act_as(
        &server,
        &person_token(&db, "hiro"),
        &number,
        "approve",
        json!({"by": "hiro"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .starts_with("cannot approve: safeguards: the change lacks a rollback plan"),
        "{refused}"
    );
    let (_, unchanged) = server.get(&format!("/api/v1/changes/{number}")).await;
    assert_eq!(unchanged["state"], "submitted");
    assert!(unchanged["approvals"].as_array().unwrap().is_empty());

    let acceptance = json!({"accepted_by": "Northwind IT manager", "on_behalf_of": "Northwind Traders",
                            "reason": "Logins must change before the quarter closes",
                            "declined_recommendation": "Test the change on northwind-login-backup first"});
    let (status, accepted) = server
        .post(
            &format!("/api/v1/changes/{number}/risk-acceptance"),
            acceptance,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    let recorded = &accepted["risk_acceptances"][0];
    assert_eq!(recorded["on_behalf_of"], "Northwind Traders");
    assert_eq!(
        recorded["declined_recommendation"],
        "Test the change on northwind-login-backup first"
    );
    assert_eq!(recorded["missing"].as_array().unwrap().len(), 2);

    // The implementer cannot approve their own change; hiro (hosting) can.
    let (status, own) = act_as(
        &server,
        &person_token(&db, "hank"),
        &number,
        "approve",
        json!({"by": "hank"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        own["detail"].as_str().unwrap().contains("self-approval"),
        "{own}"
    );
    let approved = act_as_ok(
        &server,
        &person_token(&db, "hiro"),
        &number,
        "approve",
        json!({"by": "hiro", "reason": "risk accepted by the customer"}),
    )
    .await;
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["approval"]["complete"], true);
    assert_eq!(approved["approval"]["required"][0]["approved_by"], "hiro");

    // Logins break: the change is rolled back.
    act_ok(&server, &number, "start", json!({"by": "hank"})).await;
    let rolled = act_ok(
        &server,
        &number,
        "rollback",
        json!({"by": "hank", "reason": "logins broke"}),
    )
    .await;
    assert_eq!(rolled["state"], "rolled_back");
    assert!(rolled["started_at"].is_string() && rolled["ended_at"].is_string());
    let log = texts_at(&rolled["log"], "/kind");
    assert_eq!(
        log,
        [
            "created",
            "submit",
            "risk_accepted",
            "approve",
            "start",
            "rollback"
        ]
    );

    // The incident is marked caused by the change: an outcome kept apart from its state.
    let (status, incident) = server
        .post(
            "/api/v1/incidents",
            json!({"service": "northwind-login", "title": "Northwind logins fail"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    let inc = incident["number"].as_str().unwrap().to_string();
    let caused_by = format!("/api/v1/incidents/{inc}/caused-by");
    let (status, marked) = server
        .post(
            &caused_by,
            json!({"change": number, "by": "hank", "reason": "config change broke logins"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    assert_eq!(marked["caused_incidents"], json!([inc]));
    assert_eq!(marked["state"], "rolled_back", "the state is unchanged");
    let (status, _) = server
        .post(&caused_by, json!({"change": number, "by": "hank"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "marked once");
    let (status, body) = server
        .post(&caused_by, json!({"change": "yesterday's", "by": "hank"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problems(&body)[0].starts_with("change:"), "{body}");
    let (status, body) = server
        .post(&caused_by, json!({"change": "CHG-999", "by": "hank"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problems(&body), ["change: no change CHG-999"]);
    let (_, timeline) = server.get(&format!("/api/v1/incidents/{inc}")).await;
    assert!(
        texts_at(&timeline["timeline"], "/kind").contains(&"caused_by".to_string()),
        "{timeline}"
    );

    // A change on the backup server completes cleanly: hosting's failure rate is 1 of 2.
    let backup = create(
        &server,
        record(
            "Rotate backup logs",
            &["northwind-login-backup"],
            "2026-11-24T22:00:00Z",
            1,
            "hank",
        ),
    )
    .await;
    let backup = backup["number"].as_str().unwrap();
    act_ok(&server, backup, "submit", json!({"by": "hank"})).await;
    act_as_ok(
        &server,
        &person_token(&db, "hiro"),
        backup,
        "approve",
        json!({}),
    )
    .await;
    act_ok(&server, backup, "start", json!({"by": "hank"})).await;
    act_ok(&server, backup, "complete", json!({"by": "hank"})).await;
    let (status, rate) = server
        .get("/api/v1/reports/change-failure-rate?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&team=hosting")
        .await;
    assert_eq!(status, StatusCode::OK, "{rate}");
    assert_eq!(
        rate["overall"],
        json!({"ended": 2, "failed": 1, "rate": 0.5})
    );
    assert_eq!(rate["services"]["northwind-login"]["failed"], 1);
    assert_eq!(rate["services"]["northwind-login-backup"]["failed"], 0);
    let (status, body) = server
        .get("/api/v1/reports/change-failure-rate?team=nope")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problems(&body)[0].starts_with("team:"), "{body}");

    // The paper trail: the audit log and a message to every party at each step.
    let audited = db
        .texts(&format!(
            "SELECT action FROM audit_log WHERE entity = 'change:{number}' ORDER BY seq"
        ))
        .await;
    assert_eq!(
        audited,
        [
            "change.create",
            "change.submit",
            "change.risk_acceptance",
            "change.approve",
            "change.start",
            "change.rollback",
            "change.caused_incident"
        ]
    );
    let told = db
        .texts(&format!(
            "SELECT DISTINCT recipient FROM notifications WHERE dedup_key LIKE 'change:{}:%' ORDER BY recipient",
            number.trim_start_matches("CHG-")
        ))
        .await;
    assert_eq!(told, ["hank", "hiro"]);
    let per_step = db
        .texts(&format!(
            "SELECT DISTINCT subject FROM notifications WHERE dedup_key LIKE 'change:{}:%' AND recipient = 'hiro' ORDER BY subject",
            number.trim_start_matches("CHG-")
        ))
        .await;
    assert_eq!(
        per_step.len(),
        5,
        "submit, risk acceptance, approve, start, rollback: {per_step:?}"
    );
}

/// rodney's phone-switch change from `start` for three hours, approved. Nothing
/// conflicts with it; it is tier 1 without test evidence, so contact-centre records a
/// risk acceptance and rita approves. Answers its number.
async fn approved_phone_switch_change(db: &Database, server: &Server, start: &str) -> String {
    let switch = create(
        server,
        record(
            "Patch and fail over the phone switch",
            &["phone-switch"],
            start,
            3,
            "rodney",
        ),
    )
    .await;
    assert!(kinds(&switch).is_empty(), "{switch}");
    let number = switch["number"].as_str().unwrap().to_string();
    act_ok(server, &number, "submit", json!({"by": "rodney"})).await;
    let (status, accepted) = server
        .post(
            &format!("/api/v1/changes/{number}/risk-acceptance"),
            json!({"accepted_by": "rita", "on_behalf_of": "contact-centre", "reason": "Routine patch",
                   "declined_recommendation": "Test on the backup switch"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    let approved = act_as_ok(
        server,
        &person_token(db, "rita"),
        &number,
        "approve",
        json!({}),
    )
    .await;
    assert_eq!(approved["state"], "approved", "{approved}");
    number
}

async fn the_sandbox_conflict_runs_through_the_agent_portal(backend: Backend) {
    let (db, server) = seeded(backend).await;
    // rodney: the phone switch, 03:00–06:00 America/Denver. Nothing conflicts.
    let number = approved_phone_switch_change(&db, &server, "2026-11-25T03:00:00-07:00").await;

    // A dry run for GES work in the same window shows the collision two hops away.
    let ges = record(
        "Deploy GES 4.2",
        &["ges"],
        "2026-11-25T04:00:00-07:00",
        1,
        "jared",
    );
    let (status, check) = server.post("/api/v1/changes/check", ges.clone()).await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(kinds(&check), ["dependency"]);
    assert_eq!(
        texts_at(&check["conflicts"][0]["path"], ""),
        ["ges", "agent-portal", "phone-switch"]
    );
    assert_eq!(check["conflicts"][0]["change"]["state"], "approved");
    let (_, none) = server.get("/api/v1/changes").await;
    assert_eq!(
        none["items"].as_array().unwrap().len(),
        1,
        "a dry run stores nothing"
    );

    // Recording it tells both implementers and lands in the approved change's log.
    let recorded = create(&server, ges).await;
    assert_eq!(kinds(&recorded), ["dependency"]);
    let (_, switch_now) = server.get(&format!("/api/v1/changes/{number}")).await;
    assert_eq!(kinds(&switch_now), ["dependency"]);
    assert!(
        texts_at(&switch_now["log"], "/kind").contains(&"conflict".to_string()),
        "{switch_now}"
    );
    let told = db
        .texts("SELECT DISTINCT recipient FROM notifications WHERE dedup_key LIKE '%:conflict:%' ORDER BY recipient")
        .await;
    assert_eq!(told, ["jared", "rodney"]);
    // Approving the GES change means acknowledging the conflict.
    let ges_number = recorded["number"].as_str().unwrap();
    act_ok(&server, ges_number, "submit", json!({"by": "jared"})).await;
    server
        .post(
            &format!("/api/v1/changes/{ges_number}/risk-acceptance"),
            json!({"accepted_by": "jo", "on_behalf_of": "ges-team", "reason": "hotfix",
                   "declined_recommendation": "Test on staging"}),
        )
        .await;
    let (status, refused) = act_as(
        &server,
        &person_token(&db, "jo"),
        ges_number,
        "approve",
        json!({"by": "jo"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("acknowledge_conflicts"),
        "{refused}"
    );
    let approved = act_as_ok(
        &server,
        &person_token(&db, "jo"),
        ges_number,
        "approve",
        json!({"by": "jo", "acknowledge_conflicts": true}),
    )
    .await;
    // High risk (tier 1 with a conflict) also needs agent-portal's owner.
    assert_eq!(approved["state"], "submitted", "{approved}");
    assert_eq!(
        approved["approval"]["required"][1]["teams"][0],
        "contact-centre"
    );
}

/// A two-hour launch on `helpdesk-portal` by `hal`.
pub(crate) fn helpdesk_launch(title: &str, start: &str) -> Value {
    let mut body = record(title, &["helpdesk-portal"], start, 2, "hal");
    body["launch"] = json!(true);
    body
}

async fn the_third_launch_in_a_month_needs_an_acknowledgement(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let first = create(
        &server,
        helpdesk_launch("Launch self-service", "2026-11-25T09:00:00Z"),
    )
    .await;
    let second = create(
        &server,
        helpdesk_launch("Launch chat", "2026-12-02T09:00:00Z"),
    )
    .await;
    assert!(kinds(&first).is_empty() && kinds(&second).is_empty());
    let third = create(
        &server,
        helpdesk_launch("Launch forms", "2026-12-15T09:00:00Z"),
    )
    .await;
    assert_eq!(kinds(&third), ["launch_density"]);
    assert_eq!(third["conflicts"][0]["team"], "helpdesk");
    assert_eq!(
        third["conflicts"][0]["changes"].as_array().unwrap().len(),
        2
    );
    let number = third["number"].as_str().unwrap();
    act_ok(&server, number, "submit", json!({"by": "hal"})).await;
    let (status, _) = act_as(
        &server,
        &person_token(&db, "hope"),
        number,
        "approve",
        json!({"by": "hope"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let approved = act_as_ok(
        &server,
        &person_token(&db, "hope"),
        number,
        "approve",
        json!({"by": "hope", "acknowledge_conflicts": true}),
    )
    .await;
    assert_eq!(approved["state"], "approved");
    // A launch beyond the month is fine.
    let later = create(
        &server,
        helpdesk_launch("Launch mobile", "2027-02-01T09:00:00Z"),
    )
    .await;
    assert!(kinds(&later).is_empty());
}

async fn an_edit_after_submission_clears_approvals_and_stales_evidence(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let mut body = record(
        "Rotate identity keys",
        &["identity"],
        "2026-11-26T09:00:00Z",
        1,
        "pia",
    );
    body["test_evidence"] = json!({"environment": "staging", "result": "logins work", "tested_at": "2026-11-20T09:00:00Z"});
    let change = create(&server, body.clone()).await;
    assert_eq!(change["risk"]["computed"], "medium");
    assert!(change["safeguards_missing"].as_array().unwrap().is_empty());
    let number = change["number"].as_str().unwrap();
    act_ok(&server, number, "submit", json!({"by": "pia"})).await;
    let approved = act_as_ok(
        &server,
        &person_token(&db, "pete"),
        number,
        "approve",
        json!({"by": "pete"}),
    )
    .await;
    assert_eq!(approved["state"], "approved");
    // A new description: back to submitted, approvals cleared, the evidence stale.
    body["description"] = json!("Also rotate the vendor-auth client secret");
    let (status, edited) = send(
        server
            .request(Method::PUT, &format!("/api/v1/changes/{number}"))
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["state"], "submitted");
    assert!(edited["approvals"].as_array().unwrap().is_empty());
    assert_eq!(edited["test_evidence"]["stale"], true);
    assert_eq!(edited["risk"]["computed"], "high");
    assert!(
        edited["safeguards_missing"][0]
            .as_str()
            .unwrap()
            .starts_with("fresh test evidence")
    );
    // A later edit of the title alone keeps the same evidence stale.
    body["title"] = json!("Rotate identity keys (v2)");
    let (_, retitled) = send(
        server
            .request(Method::PUT, &format!("/api/v1/changes/{number}"))
            .json(&body),
    )
    .await;
    assert_eq!(retitled["test_evidence"]["stale"], true, "{retitled}");
    // New evidence makes it fresh again.
    body["test_evidence"]["tested_at"] = json!("2026-11-23T09:00:00Z");
    let (_, fresh) = send(
        server
            .request(Method::PUT, &format!("/api/v1/changes/{number}"))
            .json(&body),
    )
    .await;
    assert_eq!(fresh["test_evidence"]["stale"], false, "{fresh}");
    // Under way, the record is no longer edited.
    act_as_ok(
        &server,
        &person_token(&db, "pete"),
        number,
        "approve",
        json!({"by": "pete"}),
    )
    .await;
    act_ok(&server, number, "start", json!({"by": "pia"})).await;
    let (status, refused) = send(
        server
            .request(Method::PUT, &format!("/api/v1/changes/{number}"))
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .starts_with("cannot edit: the change is in progress")
    );
}

async fn freezes_hold_all_but_emergencies(backend: Backend) {
    let (db, server) = seeded(backend).await;
    // The seed world's year-end freeze covers every service.
    let mut body = record(
        "Holiday patch",
        &["helpdesk-portal"],
        "2026-12-22T09:00:00Z",
        1,
        "hal",
    );
    let frozen = create(&server, body.clone()).await;
    assert_eq!(kinds(&frozen), ["freeze"]);
    assert_eq!(frozen["conflicts"][0]["blocking"], true);
    let number = frozen["number"].as_str().unwrap();
    act_ok(&server, number, "submit", json!({"by": "hal"})).await;
    let (status, refused) = act_as(
        &server,
        &person_token(&db, "hope"),
        number,
        "approve",
        json!({"by": "hope", "acknowledge_conflicts": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .starts_with("cannot approve: freeze: inside freeze year-end"),
        "{refused}"
    );
    // An emergency starts first and is approved while in progress.
    body["type"] = json!("emergency");
    let emergency = create(&server, body).await;
    assert_eq!(emergency["conflicts"][0]["blocking"], false);
    let number = emergency["number"].as_str().unwrap();
    act_ok(&server, number, "submit", json!({"by": "hal"})).await;
    act_ok(&server, number, "start", json!({"by": "hal"})).await;
    let approved = act_as_ok(
        &server,
        &person_token(&db, "hope"),
        number,
        "approve",
        json!({"by": "hope", "acknowledge_conflicts": true}),
    )
    .await;
    assert_eq!(approved["state"], "in_progress");
    assert_eq!(approved["approval"]["complete"], true);
}

async fn bad_input_is_refused_naming_the_field_and_nothing_changes(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let good = record("Patch", &["ges"], "2026-11-25T10:00:00Z", 1, "jared");
    let mut bad = good.clone();
    bad["end"] = json!("2026-11-25T09:00:00Z");
    bad["services"] = json!(["ges", "nope", "ges"]);
    bad["implementer"] = json!("zed");
    bad["type"] = json!("urgent");
    let (status, body) = server.post("/api/v1/changes", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let named = problems(&body);
    for field in ["end", "services[1]", "services[2]", "implementer", "type"] {
        assert!(
            named.iter().any(|p| p.starts_with(&format!("{field}:"))),
            "{field} in {named:?}"
        );
    }
    let mut no_offset = good.clone();
    no_offset["start"] = json!("2026-11-25 10:00");
    let (status, body) = server.post("/api/v1/changes", no_offset).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problems(&body)[0].starts_with("start:"), "{body}");
    let (status, _) = send(
        server
            .request(Method::POST, "/api/v1/changes")
            .header("content-type", "application/json")
            .body("{\"title\": "),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut unknown = good.clone();
    unknown["owner"] = json!("me");
    let (status, body) = server.post("/api/v1/changes", unknown).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, list) = server.get("/api/v1/changes").await;
    assert!(
        list["items"].as_array().unwrap().is_empty(),
        "nothing stored"
    );

    // Out of order, unknown actions and people, someone else's name.
    let change = create(&server, good).await;
    let number = change["number"].as_str().unwrap();
    let (status, body) = act(&server, number, "start", json!({"by": "jared"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"], "cannot start: the change is draft");
    let (status, _) = act(&server, number, "close", json!({"by": "jared"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = act(&server, number, "submit", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problems(&body)[0].starts_with("by:"),
        "an automation token names who acts: {body}"
    );
    let (status, body) = act(&server, number, "submit", json!({"by": "zed"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problems(&body)[0].starts_with("by: no person"), "{body}");
    act_ok(&server, number, "submit", json!({"by": "jared"})).await;
    // Decisions are a person's: a token without one cannot approve, and nobody approves
    // under another's name.
    let (status, body) = act(&server, number, "approve", json!({"by": "jo"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not linked to a person"),
        "{body}"
    );
    let (status, body) = act_as(
        &server,
        &person_token(&db, "jo"),
        number,
        "approve",
        json!({"by": "jared"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        problems(&body)[0].starts_with("by: you act as \"jo\""),
        "{body}"
    );
    let (status, body) = act_as(
        &server,
        &person_token(&db, "jo"),
        number,
        "reject",
        json!({"by": "jo"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(problems(&body)[0].starts_with("reason:"));
    let (status, _) = server.get("/api/v1/changes/CHG-999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, after) = server.get(&format!("/api/v1/changes/{number}")).await;
    assert_eq!(after["state"], "submitted");
    assert_eq!(texts_at(&after["log"], "/kind"), ["created", "submit"]);
}

/// The timeline lines of `kind` on incident `number`.
async fn timeline_of(server: &Server, number: &str, kind: &str) -> Vec<String> {
    let (_, incident) = server.get(&format!("/api/v1/incidents/{number}")).await;
    incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == kind)
        .map(|t| t["text"].as_str().unwrap().to_string())
        .collect()
}

/// Story 5's "a fix ships as a change linked to the incident": the link is refused
/// for incidents that do not exist or were merged away and for callers who do not
/// answer for the incident, kept across edits that do not mention it, made without
/// touching approvals when it is all an edit changes, and the fix's progress lands on
/// the incident's timeline by itself.
async fn a_fix_is_linked_to_its_incident_and_its_progress_lands_on_the_timeline(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let declare = |title: &'static str| {
        let server = &server;
        async move {
            let (status, incident) = server
                .post(
                    "/api/v1/incidents",
                    json!({"service": "ges", "title": title}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{incident}");
            incident["number"].as_str().unwrap().to_string()
        }
    };
    let merge = |from: &str, into: &str| {
        let server = &server;
        let path = format!("/api/v1/incidents/{from}/merge");
        let body = json!({ "into": into });
        async move {
            let (status, answer) = server.post(&path, body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    };
    let number = declare("GES drops calls after the deploy").await;
    let merged = declare("GES calls drop").await;
    merge(&merged, &number).await;
    let fix = |fixes: Value| {
        let mut body = record(
            "Roll GES back to 4.1",
            &["ges"],
            "2026-11-23T14:00:00Z",
            1,
            "jared",
        );
        body["fixes"] = fixes;
        body
    };

    // Bad references are named, in the record and in the form's live check, and
    // nothing is stored.
    let too_many: Vec<String> = (1..=21).map(|n| format!("INC-{n}")).collect();
    for (fixes, expected) in [
        (
            json!(["INC-999"]),
            vec!["fixes[0]: no incident INC-999".to_string()],
        ),
        (
            json!(["soon", number, number.to_lowercase(), merged]),
            vec![
                "fixes[0]: \"soon\" is not an incident id or number, e.g. INC-42".to_string(),
                format!("fixes[2]: {:?} is named twice", number.to_lowercase()),
                format!("fixes[3]: {merged} was merged into {number}: name that one"),
            ],
        ),
        (
            json!(too_many),
            vec!["fixes: names at most 20 incidents".to_string()],
        ),
        (
            json!(["x".repeat(100_000)]),
            vec![format!(
                "fixes[0]: {:?}… is not an incident id or number, e.g. INC-42",
                "x".repeat(40)
            )],
        ),
    ] {
        for path in ["/api/v1/changes", "/api/v1/changes/check"] {
            let (status, body) = server.post(path, fix(fixes.clone())).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
            assert_eq!(problems(&body), expected, "{path}");
        }
    }
    let (status, body) = server.post("/api/v1/changes", fix(json!("INC-1"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Linking writes on the incident: a responder for another team may not.
    let hosting = db.token("hosting-responder", "responder", &["--team", "hosting"]);
    let mut elsewhere = record(
        "Restart the login servers",
        &["northwind-login"],
        "2026-11-23T14:00:00Z",
        1,
        "hank",
    );
    elsewhere["fixes"] = json!([number]);
    let (status, body) = server.post_as(&hosting, "/api/v1/changes", elsewhere).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, list) = server.get("/api/v1/changes").await;
    assert!(
        list["items"].as_array().unwrap().is_empty(),
        "nothing stored"
    );
    assert!(timeline_of(&server, &number, "fix_linked").await.is_empty());

    // Linked: both records say so, the incident's timeline tells it, the audit trail
    // keeps it.
    let change = create(&server, fix(json!([number]))).await;
    let change_number = change["number"].as_str().unwrap().to_string();
    assert_eq!(change["fixes"], json!([number]));
    assert!(
        change["log"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with(&format!("; fixes {number}")),
        "{change}"
    );
    assert_eq!(
        timeline_of(&server, &number, "fix_linked").await,
        [format!(
            "Fix {change_number} \"Roll GES back to 4.1\" linked (draft; by token:admin)"
        )]
    );
    let (_, detail) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(
        detail["changes"],
        json!([{"change": change_number, "title": "Roll GES back to 4.1",
                "state": "draft", "relation": "fixes"}])
    );

    // The fix's steps reach the incident. An edit that changes nothing but the link
    // keeps the risk accepted and the approval given; any other edit keeps the link
    // it does not mention.
    act_ok(&server, &change_number, "submit", json!({"by": "jared"})).await;
    assert_eq!(
        timeline_of(&server, &number, "fix_progress").await,
        [format!(
            "Fix {change_number} \"Roll GES back to 4.1\": Submitted by jared"
        )]
    );
    let (status, accepted) = server
        .post(
            &format!("/api/v1/changes/{change_number}/risk-acceptance"),
            json!({"accepted_by": "jo", "on_behalf_of": "ges-team", "reason": "Rolling back is the fix",
                   "declined_recommendation": "Test the rollback first"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    advance(&[&server], "1m").await;
    let put = |body: Value| {
        let server = &server;
        let path = format!("/api/v1/changes/{change_number}");
        async move {
            let (status, edited) = send(server.request(Method::PUT, &path).json(&body)).await;
            assert_eq!(status, StatusCode::OK, "{edited}");
            edited
        }
    };
    let unlinked = put(fix(json!([]))).await;
    assert_eq!(unlinked["fixes"], json!([]));
    assert_eq!(
        unlinked["log"].as_array().unwrap().last().unwrap()["text"],
        format!("Links edited; no longer fixes {number}")
    );
    assert_eq!(
        timeline_of(&server, &number, "fix_unlinked").await,
        [format!(
            "{change_number} \"Roll GES back to 4.1\" is no longer a fix for this incident (by token:admin)"
        )]
    );
    let (_, detail) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(detail["changes"], json!([]));
    let jo = person_token(&db, "jo");
    let approved = act_as_ok(&server, &jo, &change_number, "approve", json!({})).await;
    assert_eq!(approved["approvals"][0]["person"], "jo", "{approved}");
    let progress = timeline_of(&server, &number, "fix_progress").await;
    assert_eq!(
        progress.len(),
        2,
        "an unlinked change no longer writes: {progress:?}"
    );
    assert!(
        progress[1].starts_with(&format!(
            "Fix {change_number} \"Roll GES back to 4.1\": Risk accepted by jo"
        )),
        "{progress:?}"
    );
    let relinked = put(fix(json!([number]))).await;
    assert_eq!(relinked["fixes"], json!([number]));
    assert_eq!(
        (&relinked["state"], &relinked["approvals"]),
        (&approved["state"], &approved["approvals"]),
        "only the link moved"
    );
    // A merge hands the merged incident's fixes to the one it joins (once).
    let later = declare("GES calls drop again").await;
    put(fix(json!([number, later]))).await;
    merge(&later, &number).await;
    let (_, merged_away) = server
        .get(&format!("/api/v1/changes/{change_number}"))
        .await;
    assert_eq!(merged_away["fixes"], json!([number]));
    let edited = put(record(
        "Roll GES back to 4.1.3",
        &["ges"],
        "2026-11-23T14:00:00Z",
        1,
        "jared",
    ))
    .await;
    assert_eq!(edited["fixes"], json!([number]), "kept when not mentioned");
    assert_eq!(edited["state"], "submitted");
    assert_eq!(edited["approvals"], json!([]));
    act_ok(&server, &change_number, "cancel", json!({"by": "jared"})).await;
    assert_eq!(
        timeline_of(&server, &number, "fix_progress")
            .await
            .last()
            .unwrap(),
        &format!("Fix {change_number} \"Roll GES back to 4.1.3\": Cancelled by jared")
    );

    // From the incident's side, a change in any state is linked by its number, once,
    // by someone who answers for the incident.
    let other = declare("GES search is slow").await;
    let fixed_by = format!("/api/v1/incidents/{other}/fixed-by");
    let body = json!({"change": change_number, "by": "jared"});
    let (status, answer) = server.post_as(&hosting, &fixed_by, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = server.post(&fixed_by, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["fixes"], json!([number, other]));
    assert_eq!(
        timeline_of(&server, &other, "fix_linked").await,
        [format!(
            "Fix {change_number} \"Roll GES back to 4.1.3\" linked (cancelled; by jared)"
        )]
    );
    let (status, answer) = server.post(&fixed_by, body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(
        answer["detail"],
        format!("{change_number} is already a fix for {other}")
    );
    let (status, answer) = server
        .post(&format!("/api/v1/incidents/{merged}/fixed-by"), body)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(
        answer["detail"],
        format!("{merged} was merged into {number}: link the fix to that one")
    );
    // Merged into a new incident, `other` hands it the fix.
    let target = declare("GES is down").await;
    merge(&other, &target).await;
    let (_, handed_on) = server
        .get(&format!("/api/v1/changes/{change_number}"))
        .await;
    assert_eq!(handed_on["fixes"], json!([number, target]));
    assert_eq!(
        handed_on["log"].as_array().unwrap().last().unwrap()["text"],
        format!("Fixes {target} now: {other} was merged into it (by token:admin)")
    );
    let (_, joined) = server.get(&format!("/api/v1/incidents/{target}")).await;
    assert_eq!(
        joined["changes"][0]["change"],
        json!(change_number),
        "{joined:#}"
    );
    assert!(
        texts_at(&joined["timeline"], "/text")
            .iter()
            .any(|t| t.ends_with("moved here; 1 change linked as its fix now fixes this one")),
        "{joined:#}"
    );
    let (status, answer) = server
        .post(
            &format!("/api/v1/incidents/{target}/fixed-by"),
            json!({"change": "CHG-999", "by": "jared"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(problems(&answer), ["change: no change CHG-999"]);
    let (_, audit) = server
        .get(&format!("/api/v1/audit?entity=change:{change_number}"))
        .await;
    let actions = texts_at(&audit["items"], "/action");
    let count = |action: &str| actions.iter().filter(|a| *a == action).count();
    assert_eq!(
        (count("change.fix_linked"), count("change.fix_unlinked")),
        (4, 1),
        "{actions:?}"
    );
}

async fn unscheduled_work_near_a_change_tells_both_sides_at_once(backend: Backend) {
    let (db, server) = seeded(backend).await;
    // Story 2: rodney's phone-switch change, 03:00–06:00 America/Denver, under way.
    let number = approved_phone_switch_change(&db, &server, "2026-11-23T03:00:00-07:00").await;
    act_ok(&server, &number, "start", json!({"by": "rodney"})).await;
    let (status, _) = server
        .post("/api/v1/test/clock", json!({"advance": "30m"}))
        .await;
    assert_eq!(status, StatusCode::OK);

    // The GES team deploys with no change record; their pipeline sends a PagerDuty
    // change event with the ges integration key.
    let key = service_key(&server, "ges", "pipeline").await;
    let event = json!({"routing_key": key, "payload": {"summary": "Deploy GES 4.2 to production",
                       "source": "ges-pipeline", "timestamp": "2026-11-23T10:20:00Z"},
                       "links": [{"href": "https://ci.client.test/ges/812", "text": "build 812"}]});
    let (status, body) = send(
        server
            .request(Method::POST, "/v2/change/enqueue")
            .json(&event),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, events) = server.get("/api/v1/services/ges/change-events").await;
    let recorded = &events["items"][0];
    assert_eq!(recorded["unscheduled"], true, "{events}");
    assert_eq!(recorded["nearby"][0]["number"], number.as_str());
    assert_eq!(
        texts_at(&recorded["nearby"][0]["path"], ""),
        ["ges", "agent-portal", "phone-switch"]
    );
    // rodney learns who is working on GES and how to reach its on-call; the GES on-call
    // learns whose change is in progress and how to reach rodney.
    let to_rodney = db
        .texts(
            "SELECT body FROM notifications WHERE dedup_key LIKE 'change-event:%:theirs:rodney:%'",
        )
        .await;
    assert_eq!(to_rodney.len(), 1, "{to_rodney:?}");
    assert!(
        to_rodney[0].contains("Unscheduled work on GES reservations application (ges)"),
        "{}",
        to_rodney[0]
    );
    assert!(
        to_rodney[0].contains("GES reservations application on-call (ges-team): "),
        "{}",
        to_rodney[0]
    );
    let ours = db
        .texts("SELECT recipient FROM notifications WHERE dedup_key LIKE 'change-event:%:ours:%'")
        .await;
    assert!(!ours.is_empty(), "the GES on-call is told");
    let to_ges = db
        .texts("SELECT body FROM notifications WHERE dedup_key LIKE 'change-event:%:ours:%'")
        .await;
    assert!(
        to_ges[0].contains("Rodney Blake (rodney, rodney@example.test)"),
        "{}",
        to_ges[0]
    );
    let (_, change) = server.get(&format!("/api/v1/changes/{number}")).await;
    assert!(texts_at(&change["log"], "/kind").contains(&"unscheduled_nearby".to_string()));

    // The sandbox view of the agent portal shows who is doing what around it.
    let (status, sandbox) = server
        .get("/api/v1/sandbox?service=agent-portal&at=2026-11-23T10:30:00Z")
        .await;
    assert_eq!(status, StatusCode::OK, "{sandbox}");
    assert_eq!(sandbox["changes"][0]["number"], number.as_str());
    assert_eq!(sandbox["changes"][0]["state"], "in_progress");
    assert_eq!(
        sandbox["changes"][0]["implementer"]["email"],
        "rodney@example.test"
    );
    assert_eq!(
        sandbox["changes"][0]["near"]["path"],
        json!(["agent-portal", "phone-switch"])
    );
    assert_eq!(sandbox["change_events"][0]["unscheduled"], true);
    assert_eq!(sandbox["change_events"][0]["near"]["service"], "ges");
    assert!(sandbox["freezes"].as_array().unwrap().is_empty());
    let (_, later) = server
        .get("/api/v1/sandbox?service=agent-portal&at=2026-11-24T10:30:00Z")
        .await;
    assert!(
        later["changes"].as_array().unwrap().is_empty(),
        "a day later: {later}"
    );
    for (query, field) in [
        ("", "service"),
        ("service=nope", "service"),
        ("service=ges&hours=0", "hours"),
        ("service=ges&at=soon", "at"),
    ] {
        let (status, body) = server.get(&format!("/api/v1/sandbox?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            problems(&body)[0].starts_with(&format!("{field}:")),
            "{query}: {body}"
        );
    }

    // Agents report GES broken in the portal: the incident on agent-portal shows both
    // pieces of work near it, the unscheduled GES deploy first.
    let (status, incident) = server
        .post(
            "/api/v1/incidents",
            json!({"service": "agent-portal", "title": "GES broken in the agent portal"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    let (status, near) = server
        .get(&format!(
            "/api/v1/incidents/{}/changes",
            incident["number"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{near}");
    assert_eq!(
        texts_at(&near["items"], "/kind"),
        ["change_event", "change"],
        "{near}"
    );
    assert_eq!(near["items"][0]["unscheduled"], true);
    assert_eq!(near["items"][0]["service"], "ges");
    assert_eq!(near["items"][1]["number"], number.as_str());
    assert_eq!(
        near["items"][1]["path"],
        json!(["agent-portal", "phone-switch"])
    );
    let (status, _) = server.get("/api/v1/incidents/INC-999/changes").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Work the change covers is planned, not flagged.
    let (status, covered) = server
        .post(
            "/api/v1/change-events",
            json!({"service": "phone-switch", "summary": "Failover to backup", "actor": "rodney", "source": "runbook"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{covered}");
    assert_eq!(covered["unscheduled"], false);
    assert_eq!(covered["covered_by"], number.as_str());
    // Bad input names the field; nothing is stored.
    let (status, body) = server
        .post(
            "/api/v1/change-events",
            json!({"service": "nope", "summary": " "}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let named = problems(&body);
    assert!(
        named.iter().any(|p| p.starts_with("service:"))
            && named.iter().any(|p| p.starts_with("summary:")),
        "{named:?}"
    );
    let (status, _) = server
        .post(
            "/api/v1/change-events",
            json!({"service": "ges", "summary": "x", "at": "yesterday"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, events) = server.get("/api/v1/services/ges/change-events").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
}

async fn alerts_during_maintenance_page_nobody_until_the_change_ends(backend: Backend) {
    let (db, server) = seeded(backend).await;
    // Story 2: rodney's phone-switch change is under way.
    let number = approved_phone_switch_change(&db, &server, "2026-11-23T03:00:00-07:00").await;
    let started = act_ok(&server, &number, "start", json!({"by": "rodney"})).await;
    assert_eq!(started["suppress_alerts"], true, "normal changes suppress");

    // The switch alerts during its own window; GES alerts too, outside any change.
    let switch = service_key(&server, "phone-switch", "prom").await;
    post_alerts(&server, &switch, &alerts_json(&["SwitchFailover"])).await;
    let ges = service_key(&server, "ges", "prom").await;
    post_alerts(&server, &ges, &alerts_json(&["GesDown"])).await;
    wait_for(&server, "/api/v1/incidents?status=open", |b| {
        b["items"].as_array().unwrap().len() == 1
    })
    .await;
    settle().await;
    let open = open_incidents(&server).await;
    assert_eq!(
        texts_at(&Value::Array(open.clone()), "/service"),
        ["ges"],
        "only the GES alert opens an incident: {open:?}"
    );
    let (_, change) = server.get(&format!("/api/v1/changes/{number}")).await;
    let during = &change["maintenance_alerts"];
    assert_eq!(during.as_array().unwrap().len(), 1, "{change}");
    assert_eq!(during[0]["name"], "SwitchFailover");
    assert_eq!(during[0]["service"], "phone-switch");
    assert_eq!(during[0]["firing"], true);
    assert!(texts_at(&change["log"], "/kind").contains(&"maintenance_alert".to_string()));
    // Sent again (Alertmanager resends every minute), it is still recorded once.
    post_alerts(&server, &switch, &alerts_json(&["SwitchFailover"])).await;
    settle().await;
    let (_, again) = server.get(&format!("/api/v1/changes/{number}")).await;
    assert_eq!(again["maintenance_alerts"].as_array().unwrap().len(), 1);
    assert_eq!(open_incidents(&server).await.len(), 1);

    // Still firing when the change completes: it is newly firing, and pages.
    let completed = act_ok(&server, &number, "complete", json!({"by": "rodney"})).await;
    let last = completed["log"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["text"].as_str().unwrap().contains(
            "1 alert still firing from the maintenance is looked at again as newly firing"
        ),
        "{last}"
    );
    let open = wait_for(&server, "/api/v1/incidents?status=open", |b| {
        b["items"].as_array().unwrap().len() == 2
    })
    .await;
    let switch_incident = open["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["service"] == "phone-switch")
        .unwrap()["number"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, detail) = server
        .get(&format!("/api/v1/incidents/{switch_incident}"))
        .await;
    let texts = texts_at(&detail["timeline"], "/text");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("joined (still firing after its maintenance ended)")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("Paged")),
        "step one pages at once: {texts:?}"
    );

    // Emergency work does not suppress unless it says so; anyone may opt out.
    let mut emergency = record("Hotfix", &["ges"], "2026-11-23T12:00:00Z", 1, "jared");
    emergency["type"] = json!("emergency");
    assert_eq!(create(&server, emergency).await["suppress_alerts"], false);
    let mut loud = record("Loud", &["ges"], "2026-11-23T12:00:00Z", 1, "jared");
    loud["suppress_alerts"] = json!(false);
    assert_eq!(create(&server, loud).await["suppress_alerts"], false);
    let mut wrong = record("Wrong", &["ges"], "2026-11-23T12:00:00Z", 1, "jared");
    wrong["suppress_alerts"] = json!("yes");
    let (status, body) = server.post("/api/v1/changes", wrong).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(problems(&body)[0].contains("suppress_alerts"), "{body}");
}

async fn fetch_feed(url: &str) -> (StatusCode, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn the_change_calendar_is_a_revocable_icalendar_feed(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let switch = approved_phone_switch_change(&db, &server, "2026-11-25T03:00:00-07:00").await;
    let ges = create(
        &server,
        record(
            "Deploy GES 4.2",
            &["ges"],
            "2026-11-26T10:00:00Z",
            1,
            "jared",
        ),
    )
    .await["number"]
        .as_str()
        .unwrap()
        .to_string();
    let dropped = create(
        &server,
        record("Dropped idea", &["ges"], "2026-11-27T10:00:00Z", 1, "jared"),
    )
    .await["number"]
        .as_str()
        .unwrap()
        .to_string();
    act_ok(&server, &dropped, "cancel", json!({"by": "jared"})).await;

    // The contact-centre's feed holds its change only, approved.
    let (status, made) = server
        .post("/api/v1/change-feeds", json!({"team": "contact-centre"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["name"], "Changes: contact-centre");
    let url = made["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/calendar/changes/chcal_", server.base)),
        "{url}"
    );
    let events = calendar_events(&url).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0],
        [
            format!("{switch} Patch and fail over the phone switch (approved)"),
            "2026-11-25T10:00:00+00:00".to_string(),
            "2026-11-25T13:00:00+00:00".to_string(),
            format!("{switch}@{}", server.base.trim_start_matches("http://")),
        ]
    );

    // Everyone's feed holds all three; the cancelled one is marked so apps drop it.
    let (_, all) = server.post("/api/v1/change-feeds", json!({})).await;
    let (_, text) = fetch_feed(all["url"].as_str().unwrap()).await;
    let summaries: Vec<String> = parse_ical(&text)
        .into_iter()
        .map(|e| e[0].clone())
        .collect();
    assert_eq!(summaries.len(), 3, "{summaries:?}");
    assert!(summaries.contains(&format!("{ges} Deploy GES 4.2 (draft)")));
    assert!(summaries.contains(&format!("{dropped} Dropped idea (cancelled)")));
    assert!(text.contains("STATUS:CANCELLED\r\n") && text.contains("STATUS:TENTATIVE\r\n"));
    // A service feed follows the service.
    let (_, by_service) = server
        .post(
            "/api/v1/change-feeds",
            json!({"service": "ges", "name": "GES work"}),
        )
        .await;
    let (_, text) = fetch_feed(by_service["url"].as_str().unwrap()).await;
    assert!(text.contains("X-WR-CALNAME:GES work\r\n"));
    assert_eq!(parse_ical(&text).len(), 2);

    // The list never shows links; bad input names the field and stores nothing.
    let (_, listed) = server.get("/api/v1/change-feeds").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    assert!(!listed.to_string().contains("chcal_"), "{listed}");
    for (body, field, code) in [
        (
            json!({"team": "nope"}),
            "team",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"service": "nope"}),
            "service",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "x".repeat(201)}),
            "name",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"colour": "red"}),
            "colour",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, answer) = server.post("/api/v1/change-feeds", body.clone()).await;
        assert_eq!(status, code, "{body}: {answer}");
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }
    let (_, listed) = server.get("/api/v1/change-feeds").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);

    // Only its maker or an editor revokes it; then the link is gone for good.
    let id = made["id"].as_i64().unwrap();
    let jared = person_token(&db, "jared");
    let (status, _) = send(server.as_token(
        Method::DELETE,
        &format!("/api/v1/change-feeds/{id}"),
        &jared,
    ))
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) =
        send(server.request(Method::DELETE, &format!("/api/v1/change-feeds/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(fetch_feed(&url).await.0, StatusCode::NOT_FOUND);
    let (status, _) =
        send(server.request(Method::DELETE, &format!("/api/v1/change-feeds/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in ["nope.ics", "chcal_nope.ics", "cal_x", ""] {
        let (status, _) = fetch_feed(&format!("{}/calendar/changes/{bad}", server.base)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad:?}");
    }
    // A feed reads with its maker's rights: revoking the maker ends it.
    let (status, theirs) = send(
        server
            .as_token(Method::POST, "/api/v1/change-feeds", &jared)
            .json(&json!({"service": "ges"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let their_url = theirs["url"].as_str().unwrap().to_string();
    assert_eq!(fetch_feed(&their_url).await.0, StatusCode::OK);
    let maker = theirs["created_by"]
        .as_str()
        .unwrap()
        .trim_start_matches("token:");
    db.cli_ok(&["token", "revoke", maker], None);
    assert_eq!(fetch_feed(&their_url).await.0, StatusCode::NOT_FOUND);
    // A team and a service it does not own leave nothing to show: refused.
    let (status, body) = server
        .post(
            "/api/v1/change-feeds",
            json!({"team": "contact-centre", "service": "ges"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(problems(&body)[0].starts_with("service:"), "{body}");

    let (_, audit) = server.get("/api/v1/audit?limit=1000").await;
    let actions = texts_at(&audit["items"], "/action");
    assert!(actions.contains(&"change_feed.create".to_string()));
    assert!(actions.contains(&"change_feed.revoke".to_string()));
}

const SWITCH_TEMPLATE: &str = "change_templates:
  - id: phone-switch-patch
    title: Patch and fail over the phone switch
    services: [phone-switch]
    max_duration: 4h
    approved_by: rita
    approved_at: '2026-10-01T00:00:00Z'
";

async fn standard_changes_follow_a_template_approved_once(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    // The owner team approves a template once; only its members can.
    let (status, body) = server
        .put_yaml(
            "/api/v1/catalog",
            &SWITCH_TEMPLATE.replace("approved_by: rita", "approved_by: jared"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        problems(&body)[0].contains("approved_by: \"jared\" is not a member of contact-centre"),
        "{body}"
    );
    let (status, body) = server.put_yaml("/api/v1/catalog", SWITCH_TEMPLATE).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Story 2: rodney schedules the standard change; nothing conflicts, so submitting it
    // approves it by the template.
    let mut switch = record(
        "Patch and fail over the phone switch",
        &["phone-switch"],
        "2026-11-25T03:00:00-07:00",
        3,
        "rodney",
    );
    switch["type"] = json!("standard");
    switch["template"] = json!("phone-switch-patch");
    let created = create(&server, switch.clone()).await;
    assert!(kinds(&created).is_empty(), "{created}");
    assert_eq!(created["template"], "phone-switch-patch");
    assert_eq!(created["approval"]["required"], json!([]));
    assert_eq!(
        created["safeguards_missing"],
        json!([]),
        "judged with the template"
    );
    let number = created["number"].as_str().unwrap().to_string();
    let submitted = act_ok(&server, &number, "submit", json!({"by": "rodney"})).await;
    assert_eq!(submitted["state"], "approved", "{submitted}");
    let last = submitted["log"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["text"].as_str().unwrap().contains(
            "pre-approved by template phone-switch-patch (Patch and fail over the phone switch, approved by rita on 2026-10-01)"
        ),
        "{last}"
    );
    act_ok(&server, &number, "start", json!({"by": "rodney"})).await;

    // A standard change that collides is not pre-approved: it waits for the owners.
    let ges = create(
        &server,
        record(
            "Deploy GES 4.2",
            &["ges"],
            "2026-11-26T10:00:00Z",
            1,
            "jared",
        ),
    )
    .await;
    assert!(ges["number"].is_string());
    let mut second = switch.clone();
    second["start"] = json!("2026-11-26T09:30:00Z");
    second["end"] = json!("2026-11-26T11:30:00Z");
    let colliding = create(&server, second).await;
    assert_eq!(kinds(&colliding), ["dependency"]);
    let waiting = act_ok(
        &server,
        colliding["number"].as_str().unwrap(),
        "submit",
        json!({"by": "rodney"}),
    )
    .await;
    assert_eq!(waiting["state"], "submitted", "{waiting}");
    assert!(
        !waiting["approval"]["required"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // What does not fit is named, and nothing is stored.
    let (_, before) = server.get("/api/v1/changes").await;
    for (change, field) in [
        (json!({"template": null}), "template"),
        (json!({"type": "normal"}), "template"),
        (json!({"template": "nope"}), "template"),
        (json!({"end": "2026-11-25T08:00:00-07:00"}), "end"),
        (json!({"services": ["phone-switch", "ges"]}), "services[1]"),
    ] {
        let mut body = switch.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = server.post("/api/v1/changes", body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{change}: {answer}"
        );
        assert!(
            problems(&answer)
                .iter()
                .any(|p| p.starts_with(&format!("{field}:"))),
            "{change}: {answer}"
        );
    }
    let (_, after) = server.get("/api/v1/changes").await;
    assert_eq!(before["items"], after["items"]);
}

on_both_databases!(
    standard_changes_follow_a_template_approved_once,
    the_change_calendar_is_a_revocable_icalendar_feed,
    alerts_during_maintenance_page_nobody_until_the_change_ends,
    unscheduled_work_near_a_change_tells_both_sides_at_once,
    story_4_the_change_the_customer_insisted_on,
    the_sandbox_conflict_runs_through_the_agent_portal,
    the_third_launch_in_a_month_needs_an_acknowledgement,
    an_edit_after_submission_clears_approvals_and_stales_evidence,
    freezes_hold_all_but_emergencies,
    bad_input_is_refused_naming_the_field_and_nothing_changes,
    a_fix_is_linked_to_its_incident_and_its_progress_lands_on_the_timeline,
);
