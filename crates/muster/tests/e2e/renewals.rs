//! Renewals end to end on the demo world: reminders go out once per offset and
//! expiry, to the owner and buyer teams, and those missed while Muster was not running
//! are caught up as one message.

use crate::common::*;
use crate::incidents::{open_incidents, settle, wait_for};
use crate::on_both_databases;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

/// Waits until `sql` (one text column) answers at least one row; answers them all.
async fn wait_for_rows(db: &Database, sql: &str) -> Vec<String> {
    for _ in 0..100 {
        let rows = db.texts(sql).await;
        if !rows.is_empty() {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no rows for {sql}");
}

async fn reminder_count(db: &Database) -> usize {
    db.texts("SELECT dedup_key FROM notifications WHERE dedup_key LIKE 'renewal:%'")
        .await
        .len()
}

async fn reminders_go_out_once_per_offset_and_catch_up_after_downtime(backend: Backend) {
    let (db, server) = seeded(backend).await;
    // 23 November: the FormPrint licence (expiring 1 February) passed its 90-day
    // reminder on 3 November; the certificate's first is 30 days before 15 January.
    let subjects = wait_for_rows(
        &db,
        "SELECT DISTINCT subject FROM notifications WHERE dedup_key LIKE 'renewal:formprint-licence:%'",
    )
    .await;
    assert_eq!(
        subjects,
        ["Renewal due: FormPrint server licence key expires in 69 days (2027-02-01)"]
    );
    let recipients = db
        .texts("SELECT DISTINCT recipient FROM notifications WHERE dedup_key LIKE 'renewal:%' ORDER BY recipient")
        .await;
    assert_eq!(
        recipients,
        ["paul", "sam", "tara", "uma"],
        "the owner team (service-desk) and the buyer (procurement)"
    );
    let body = db
        .texts("SELECT body FROM notifications WHERE dedup_key LIKE 'renewal:formprint-licence:%' LIMIT 1")
        .await;
    assert!(
        body[0].contains("This is the 90-day reminder."),
        "{}",
        body[0]
    );
    assert!(body[0].contains("11 targets: org-01"), "{}", body[0]);
    // Looked at again (another minute, the same state): nothing more goes out.
    let first = reminder_count(&db).await;
    let (status, _) = server
        .post("/api/v1/test/clock", json!({"advance": "2m"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    settle().await;
    assert_eq!(reminder_count(&db).await, first);

    // Muster was down from then until ten days before the licence expires: the 60-,
    // 30- and 14-day reminders go out as one message; the certificate, expired a week
    // ago, gets one message for all five of its reminders.
    let (status, _) = server
        .post("/api/v1/test/clock", json!({"now": "2027-01-22T00:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let caught_up = wait_for_rows(
        &db,
        "SELECT DISTINCT body FROM notifications WHERE dedup_key LIKE 'renewal:formprint-licence:%:14:%'",
    )
    .await;
    assert!(
        caught_up[0].contains("This is the 14-day reminder; it includes the 60-, 30-day reminders missed while Muster was not running."),
        "{}",
        caught_up[0]
    );
    let expired = wait_for_rows(
        &db,
        "SELECT DISTINCT subject FROM notifications WHERE dedup_key LIKE 'renewal:api-certificate:%'",
    )
    .await;
    assert_eq!(
        expired,
        ["Renewal due: api.example.test TLS certificate expired 7 days ago (2027-01-15)"]
    );
    // Inside its last offset and not verified live: platform's escalation policy is
    // paged through an incident on the service that depends on it.
    let incidents = wait_for(&server, "/api/v1/incidents?status=open", |b| {
        b["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    assert_eq!(
        texts_at(&incidents["items"], "/title"),
        ["api.example.test TLS certificate expired 7 days ago (2027-01-15), not verified live"]
    );
    assert_eq!(incidents["items"][0]["service"], "public-api");
    let (_, certificate) = server.get("/api/v1/renewables/api-certificate").await;
    assert_eq!(certificate["alarms"][0]["stage"], "expiry");
    assert_eq!(certificate["alarms"][0]["targets"], json!(["default"]));
    settle().await;
    let offsets = db
        .texts("SELECT DISTINCT dedup_key FROM notifications WHERE dedup_key LIKE 'renewal:formprint-licence:%' AND recipient = 'sam'")
        .await;
    assert_eq!(
        offsets.len(),
        2,
        "one message per pass that found something: {offsets:?}"
    );
    let recorded = db
        .texts("SELECT renewable_id || ':' || offset_days FROM renewal_reminders ORDER BY renewable_id, offset_days")
        .await;
    assert_eq!(
        recorded,
        [
            "api-certificate:1",
            "api-certificate:3",
            "api-certificate:7",
            "api-certificate:14",
            "api-certificate:30",
            "formprint-licence:14",
            "formprint-licence:30",
            "formprint-licence:60",
            "formprint-licence:90",
        ]
    );
}

async fn the_registry_lists_what_expires_soonest_first(backend: Backend) {
    let (db, server) = seeded(backend).await;
    wait_for_rows(
        &db,
        "SELECT dedup_key FROM notifications WHERE dedup_key LIKE 'renewal:formprint-licence:%'",
    )
    .await;
    let (status, all) = server.get("/api/v1/renewables").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        texts_at(&all["items"], "/id"),
        [
            "api-certificate",
            "formprint-licence",
            "authco-subscription"
        ]
    );
    let (_, soon) = server
        .get("/api/v1/renewables?expiring_within=60d&team=platform")
        .await;
    assert_eq!(texts_at(&soon["items"], "/id"), ["api-certificate"]);
    let (status, licence) = server.get("/api/v1/renewables/formprint-licence").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(licence["kind"], "licence");
    assert_eq!(licence["days_left"], 69);
    assert_eq!(licence["targets"].as_array().unwrap().len(), 11);
    assert_eq!(licence["targets"][10]["organisation"], "northwind");
    assert_eq!(licence["verify"]["method"], "manual");
    assert_eq!(licence["reminders"][0]["days"], 90);
    assert_eq!(licence["reminders"][0]["due_at"], "2026-11-03T00:00:00Z");
    assert!(licence["reminders"][0]["sent_at"].is_string(), "{licence}");
    assert!(licence["reminders"][1]["sent_at"].is_null());
    let (_, certificate) = server.get("/api/v1/renewables/api-certificate").await;
    assert_eq!(
        certificate["verify"],
        json!({"method": "tls", "host": "api.example.test:443", "sni": null})
    );
    assert_eq!(certificate["targets"][0]["key"], "default");
    for (query, field) in [
        ("expiring_within=soon", "expiring_within"),
        ("expiring_within=-5d", "expiring_within"),
        ("kind=lease", "kind"),
        ("team=nope", "team"),
        ("limit=0", "limit"),
    ] {
        let (status, body) = server.get(&format!("/api/v1/renewables?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            problems(&body)[0].starts_with(&format!("{field}:")),
            "{query}: {body}"
        );
    }
    let (status, _) = server.get("/api/v1/renewables/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Registered through the API too: each target has its own expiry, the renewable
    // the earliest.
    let edge = json!({"id": "edge-certs", "name": "Edge certificates", "kind": "certificate",
                      "owner": "platform", "services": ["public-api"],
                      "targets": [{"host": "edge-1.example.test:443", "expires_at": "2027-03-01T00:00:00Z"},
                                  {"host": "edge-2.example.test:443", "expires_at": "2027-01-20T00:00:00Z"}],
                      "verify": {"tls": "edge-1.example.test:443"}});
    let (status, created) = server.post("/api/v1/renewables", edge.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, shown) = server.get("/api/v1/renewables/edge-certs").await;
    assert_eq!(shown["expires_at"], "2027-01-20T00:00:00Z");
    assert_eq!(shown["targets"][0]["expires_at"], "2027-03-01T00:00:00Z");
    assert_eq!(shown["deadlines"]["apply"], "2d");
    let (status, again) = server.post("/api/v1/renewables", edge).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    for (bad, field) in [
        (json!({"kind": "lease"}), "kind"),
        (json!({"deadlines": {"apply": "soon"}}), "deadlines.apply"),
        (
            json!({"targets": [{"host": "edge-3.example.test:443"}]}),
            "targets[0]",
        ),
        (json!({"owner": "nobody"}), "owner"),
    ] {
        let (status, answer) = send(
            server
                .request(Method::PATCH, "/api/v1/renewables/edge-certs")
                .json(&bad),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {answer}");
        assert!(
            problems(&answer).iter().any(|p| p.contains(field)),
            "{bad}: {answer}"
        );
    }
    let (_, unchanged) = server.get("/api/v1/renewables/edge-certs").await;
    assert_eq!(unchanged["kind"], "certificate", "nothing stored changed");
    let (status, _) = send(
        server
            .request(Method::PATCH, "/api/v1/renewables/edge-certs")
            .json(&json!({"deadlines": {"apply": "4h"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, patched) = server.get("/api/v1/renewables/edge-certs").await;
    assert_eq!(patched["deadlines"]["apply"], "4h");
    let (status, _) = send(server.request(Method::DELETE, "/api/v1/renewables/edge-certs")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server.get("/api/v1/renewables/edge-certs").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn renew(server: &Server, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
    server
        .post("/api/v1/renewables/formprint-licence/renewal", body)
        .await
}

async fn the_licence_is_renewed_only_when_verified_on_every_target(backend: Backend) {
    let (db, server) = seeded(backend).await;
    // The 90-day reminder (on 3 November) started the renewal.
    wait_for_rows(
        &db,
        "SELECT stage FROM renewals WHERE renewable_id = 'formprint-licence'",
    )
    .await;
    // Out of order, or naming what is not there: refused, naming the field.
    for (body, field) in [
        (
            json!({"stage": "received", "by": "paul", "new_expires_at": "2028-02-01T00:00:00Z"}),
            "stage",
        ),
        (json!({"stage": "bought", "by": "paul"}), "stage"),
        (json!({"stage": "ordered", "by": "zed"}), "by"),
        (
            json!({"stage": "ordered", "by": "paul", "target": "org-01"}),
            "target",
        ),
    ] {
        let (status, answer) = renew(&server, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(
            problems(&answer)[0].starts_with(&format!("{field}:")),
            "{body}: {answer}"
        );
    }
    let (status, answer) = renew(&server, json!({"stage": "ordered", "color": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

    // Procurement orders, the keys arrive.
    let (status, ordered) = renew(
        &server,
        json!({"stage": "ordered", "by": "paul", "reference": "PO-4471", "note": "two-year term"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ordered}");
    assert_eq!(ordered["renewal"]["stage"], "ordered");
    assert_eq!(
        texts_at(&ordered["renewal"]["history"], "/text"),
        [
            "Due: the 90-day reminder went out",
            "Ordered by paul (reference PO-4471): two-year term"
        ]
    );
    let (_, early) = renew(
        &server,
        json!({"stage": "received", "by": "sam", "new_expires_at": "2027-01-01T00:00:00Z"}),
    )
    .await;
    assert!(
        problems(&early)[0].starts_with("new_expires_at:"),
        "{early}"
    );
    let (status, received) = renew(
        &server,
        json!({"stage": "received", "by": "sam", "new_expires_at": "2028-02-01T00:00:00Z",
               "identity": "sha256:4f2a"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{received}");
    assert_eq!(received["renewal"]["identity"], "sha256:4f2a");
    // Applied on three of eleven; verified on two: the board shows it received.
    for org in ["org-01", "org-02", "org-03"] {
        let (status, body) = renew(
            &server,
            json!({"stage": "applied", "by": "sam", "target": org}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, twice) = renew(
        &server,
        json!({"stage": "applied", "by": "sam", "target": "org-01"}),
    )
    .await;
    assert!(problems(&twice)[0].contains("applied already"), "{twice}");
    let (_, nowhere) = renew(
        &server,
        json!({"stage": "applied", "by": "sam", "target": "org-99"}),
    )
    .await;
    assert!(problems(&nowhere)[0].starts_with("target:"), "{nowhere}");
    let (_, bare) = renew(
        &server,
        json!({"stage": "verified", "by": "tara", "target": "org-01"}),
    )
    .await;
    assert!(problems(&bare)[0].starts_with("evidence:"), "{bare}");
    for org in ["org-01", "org-02"] {
        renew(
            &server,
            json!({"stage": "verified", "by": "tara", "target": org,
                   "evidence": "forms print; licence screen shows 2028-02-01"}),
        )
        .await;
    }
    let (_, licence) = server.get("/api/v1/renewables/formprint-licence").await;
    let renewal = &licence["renewal"];
    assert_eq!(renewal["stage"], "received");
    assert_eq!(
        renewal["progress"],
        json!({"targets": 11, "applied": 3, "verified": 2})
    );
    assert_eq!(renewal["targets"]["org-01"]["stage"], "verified");
    assert_eq!(renewal["targets"]["org-04"]["stage"], "received");
    assert_eq!(
        licence["expires_at"], "2027-02-01T00:00:00Z",
        "moves only when done"
    );
    assert_eq!(renewal["history"].as_array().unwrap().len(), 8);
    assert_eq!(
        renewal["status"],
        "received today; applied 3 of 11; verified 2 of 11"
    );

    // Applied and verified everywhere: done, and the expiry moves.
    let targets: Vec<String> = renewal["targets"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut last = serde_json::Value::Null;
    for target in &targets {
        renew(
            &server,
            json!({"stage": "applied", "by": "sam", "target": target}),
        )
        .await;
        let (status, body) = renew(
            &server,
            json!({"stage": "verified", "by": "tara", "target": target, "evidence": "checked"}),
        )
        .await;
        if status == StatusCode::OK {
            last = body;
        }
    }
    assert_eq!(last["expires_at"], "2028-02-01T00:00:00Z", "{last}");
    assert_eq!(last["renewal"]["stage"], "verified");
    assert!(last["renewal"]["done_at"].is_string());
    let history = texts_at(&last["renewal"]["history"], "/text");
    assert_eq!(
        history.last().unwrap(),
        "Done: verified on all 11 targets; the expiry moves to 2028-02-01"
    );
    let (_, after) = server.get("/api/v1/renewables/formprint-licence").await;
    assert_eq!(after["expires_at"], "2028-02-01T00:00:00Z");
    assert!(
        after["renewal"].is_null(),
        "the new expiry has no renewal yet"
    );
    let (_, audit) = server.get("/api/v1/audit?limit=1000").await;
    let actions = texts_at(&audit["items"], "/action");
    assert!(
        actions.contains(&"renewal.update".to_string()),
        "{actions:?}"
    );
    // The catalog export carries the new expiry.
    let (_, catalog) = server.get("/api/v1/renewables?kind=licence").await;
    assert_eq!(catalog["items"][0]["expires_at"], "2028-02-01T00:00:00Z");
}

/// The organisations the story's renewal is not applied on for too long.
const STILL_ON_THE_OLD_KEY: [&str; 8] = [
    "org-04",
    "org-05",
    "org-06",
    "org-07",
    "org-08",
    "org-09",
    "org-10",
    "northwind",
];

async fn renew_ok(server: &Server, body: serde_json::Value) -> serde_json::Value {
    let (status, answer) = renew(server, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn set_clock(server: &Server, now: &str) {
    let (status, body) = server.post("/api/v1/test/clock", json!({"now": now})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The licence story: reminded, ordered and received by procurement, applied on 3 of
/// 11, stalled past the 2-day deadline — service desk told, a day later paged through
/// its escalation policy naming the 8 organisations still on the old key; the key
/// expires and a report flood counts those 8 apart; then applied and verified
/// everywhere, and only then done.
async fn a_stalled_licence_renewal_notifies_then_pages_naming_the_targets_left(backend: Backend) {
    let (db, server) = seeded(backend).await;
    wait_for_rows(
        &db,
        "SELECT stage FROM renewals WHERE renewable_id = 'formprint-licence'",
    )
    .await;
    for body in [
        json!({"stage": "ordered", "by": "paul", "reference": "PO-4471"}),
        json!({"stage": "received", "by": "paul", "new_expires_at": "2028-02-01T00:00:00Z"}),
    ] {
        renew_ok(&server, body).await;
    }
    // Applied on three organisations, where printing works again.
    for org in ["org-01", "org-02", "org-03"] {
        renew_ok(
            &server,
            json!({"stage": "applied", "by": "sam", "target": org}),
        )
        .await;
        renew_ok(
            &server,
            json!({"stage": "verified", "by": "tara", "target": org, "evidence": "a form printed"}),
        )
        .await;
    }
    // A day later: within the 2-day deadline, nothing stalls.
    set_clock(&server, "2026-11-24T10:00:00Z").await;
    settle().await;
    let (_, stalled) = server.get("/api/v1/renewables?stalled=true").await;
    assert_eq!(stalled["items"], json!([]));
    let told = "SELECT DISTINCT recipient FROM notifications WHERE dedup_key LIKE 'renewal:formprint-licence:%:applied:notified:%' ORDER BY recipient";
    assert!(db.texts(told).await.is_empty());

    // Past it: the team holding the stage (service desk) is told, once.
    set_clock(&server, "2026-11-25T10:01:00Z").await;
    assert_eq!(wait_for_rows(&db, told).await, ["sam", "tara", "uma"]);
    let told_rows = "SELECT dedup_key FROM notifications WHERE dedup_key LIKE 'renewal:formprint-licence:%:applied:notified:%'";
    let messages = db.texts(told_rows).await.len();
    let subject = db
        .texts("SELECT DISTINCT subject FROM notifications WHERE dedup_key LIKE 'renewal:formprint-licence:%:applied:notified:%'")
        .await;
    assert_eq!(
        subject,
        ["Renewal stalled: FormPrint server licence key not applied on 8 of 11 targets"]
    );
    let (_, stalled) = server.get("/api/v1/renewables?stalled=true").await;
    assert_eq!(texts_at(&stalled["items"], "/id"), ["formprint-licence"]);
    let (_, calm) = server.get("/api/v1/renewables?stalled=false").await;
    assert_eq!(
        texts_at(&calm["items"], "/id"),
        ["api-certificate", "authco-subscription"]
    );
    let (status, bad) = server.get("/api/v1/renewables?stalled=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problems(&bad)[0].starts_with("stalled:"), "{bad}");
    let stall = &stalled["items"][0]["stalls"][0];
    assert_eq!(stall["stage"], "applied");
    assert_eq!(stall["team"], "service-desk");
    assert_eq!(stall["deadline"], "2026-11-25T10:00:00Z");
    assert_eq!(stall["targets"].as_array().unwrap().len(), 8);
    assert!(open_incidents(&server).await.is_empty(), "not paged yet");

    // Still stalled a day after telling them: its escalation policy is paged through
    // an incident that names the organisations still on the old key.
    set_clock(&server, "2026-11-26T10:02:00Z").await;
    let incidents = wait_for(&server, "/api/v1/incidents?status=open", |b| {
        b["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    let incident = &incidents["items"][0];
    assert_eq!(
        incident["title"],
        "Renewal stalled: FormPrint server licence key not applied on 8 of 11 targets"
    );
    assert_eq!(incident["service"], "print-licence-server");
    let id = incident["id"].as_i64().unwrap();
    let paged = wait_for_rows(
        &db,
        &format!("SELECT body FROM notifications WHERE dedup_key LIKE 'incident:{id}:page:%'"),
    )
    .await;
    assert!(
        paged[0].contains(
            "Still on the old item: org-04, org-05, org-06, org-07, org-08, org-09, org-10, northwind."
        ),
        "{}",
        paged[0]
    );
    assert!(
        paged[0].contains("Held by team service-desk."),
        "{}",
        paged[0]
    );
    let (_, licence) = server.get("/api/v1/renewables/formprint-licence").await;
    let alarms: Vec<String> = licence["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["stage"].as_str().unwrap(),
                a["level"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(alarms, ["applied notified", "applied paged"]);
    assert_eq!(licence["alarms"][1]["incident"], format!("INC-{id}"));
    let history = texts_at(&licence["renewal"]["history"], "/text");
    assert!(
        history.contains(&format!(
            "Still stalled; team service-desk paged (INC-{id})"
        )),
        "{history:?}"
    );
    // Looked at again: nobody is told or paged twice.
    settle().await;
    assert_eq!(open_incidents(&server).await.len(), 1);
    assert_eq!(db.texts(told_rows).await.len(), messages);

    // The 60-day reminder goes to service desk only: procurement's part is done.
    set_clock(&server, "2026-12-03T00:01:00Z").await;
    let sixty = wait_for_rows(
        &db,
        "SELECT DISTINCT recipient FROM notifications WHERE dedup_key LIKE 'renewal:formprint-licence:%:60:%' ORDER BY recipient",
    )
    .await;
    assert_eq!(sixty, ["sam", "tara", "uma"]);
    let body = db
        .texts("SELECT body FROM notifications WHERE dedup_key LIKE 'renewal:formprint-licence:%:60:%' LIMIT 1")
        .await;
    assert!(
        body[0].contains("Renewal: received 9 days ago; applied 3 of 11; verified 3 of 11."),
        "{}",
        body[0]
    );

    // Story step 4: nobody acts; the old key expires and organisations report that
    // they cannot print. The flood rule opens one incident with three counts apart.
    set_clock(&server, "2027-02-01T09:00:00Z").await;
    let mut flood = serde_json::Value::Null;
    for (organisation, channel) in [
        ("org-04", "phone"),
        ("org-05", "social"),
        ("org-04", "social"),
        ("org-06", "phone"),
        ("org-07", "phone"),
    ] {
        let (status, body) = server
            .post(
                "/api/v1/reports",
                json!({"organisation": organisation, "service": "forms-printing",
                       "summary": "Cannot print forms", "channel": channel}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        flood = body;
    }
    let number = flood["incident"].as_str().expect("the flood opened one");
    let (_, incident) = server.get(&format!("/api/v1/incidents/{number}")).await;
    let counts = &incident["organisations"];
    assert_eq!(counts["reported"], 4);
    assert_eq!(counts["using_impacted_services"], 11);
    assert_eq!(counts["targets_on_expired_item"], 8, "{counts}");
    assert_eq!(counts["expired_items"][0]["renewable"], "formprint-licence");
    assert_eq!(
        counts["expired_items"][0]["targets"],
        json!(STILL_ON_THE_OLD_KEY)
    );

    // Story step 6: applied everywhere — the stall's page is settled by itself …
    for org in STILL_ON_THE_OLD_KEY {
        renew_ok(
            &server,
            json!({"stage": "applied", "by": "sam", "target": org}),
        )
        .await;
    }
    let settled = wait_for(&server, &format!("/api/v1/incidents/{id}"), |b| {
        b["state"] == "resolved"
    })
    .await;
    let last = texts_at(&settled["timeline"], "/text");
    assert!(
        last.iter()
            .any(|t| t.contains("The renewal moved on: applied 11 of 11; verified 3 of 11")),
        "{last:?}"
    );

    // … and verified on every target: only then is it done and the expiry moved.
    let mut done = serde_json::Value::Null;
    for org in STILL_ON_THE_OLD_KEY {
        done = renew_ok(
            &server,
            json!({"stage": "verified", "by": "tara", "target": org, "evidence": "a form printed"}),
        )
        .await;
    }
    assert_eq!(done["expires_at"], "2028-02-01T00:00:00Z");
    assert!(done["renewal"]["done_at"].is_string());
    let (_, incident) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(incident["organisations"]["targets_on_expired_item"], 0);
    // Every incident the renewal raised (the stall, the expiry) is resolved.
    let raised = wait_for(&server, "/api/v1/incidents?status=open", |b| {
        b["items"]
            .as_array()
            .is_some_and(|i| i.iter().all(|i| i["service"] != "print-licence-server"))
    })
    .await;
    assert!(
        texts_at(&raised["items"], "/number").contains(&number.to_string()),
        "the flood incident is people's to resolve"
    );
    let (_, stalled) = server.get("/api/v1/renewables?stalled=true").await;
    assert_eq!(stalled["items"], json!([]));
}

on_both_databases!(
    the_licence_is_renewed_only_when_verified_on_every_target,
    a_stalled_licence_renewal_notifies_then_pages_naming_the_targets_left,
    reminders_go_out_once_per_offset_and_catch_up_after_downtime,
    the_registry_lists_what_expires_soonest_first,
);
