//! Incidents end to end: grouping of alerts (groups, silences, refire after a
//! resolution by hand, auto-resolve, PagerDuty acknowledgements), the lifecycle and its
//! refusals, escalation through steps and a repeat with time travel, acknowledgement
//! links, two servers never firing one step twice, and reports with the flood rule.

use crate::common::*;
use crate::intake::{post_alerts, service_key};
use crate::on_both_databases;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// Polls `path` until `done` holds (the engine works on a 250 ms tick).
pub(crate) async fn wait_for(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, body) = server.get(path).await;
        if status == StatusCode::OK && done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never reached the expected state; last: {last:#}");
}

/// Gives the engine several ticks to act (or, when asserting nothing happens, to
/// have had the chance).
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(900)).await;
}

pub(crate) async fn open_incidents(server: &Server) -> Vec<Value> {
    let (_, list) = server.get("/api/v1/incidents?status=open").await;
    list["items"].as_array().unwrap().clone()
}

/// Waits for exactly one open incident and answers its number.
async fn the_open_incident(server: &Server) -> String {
    let open = wait_for(server, "/api/v1/incidents?status=open", |b| {
        b["items"].as_array().unwrap().len() == 1
    })
    .await;
    open["items"][0]["number"].as_str().unwrap().to_string()
}

/// Triggers a PagerDuty alert on forms-printing (it fires until resolved) and answers
/// the event, to send again or to act on its dedup key.
async fn pagerduty_trigger(server: &Server, summary: &str, severity: &str) -> Value {
    let key = service_key(server, "forms-printing", "pd").await;
    let trigger = json!({"routing_key": key, "event_action": "trigger", "dedup_key": "q-1",
                         "payload": {"summary": summary, "source": "spooler", "severity": severity}});
    let (status, _) = send(server.request(Method::POST, "/v2/enqueue").json(&trigger)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    trigger
}

pub(crate) async fn advance(servers: &[&Server], by: &str) {
    for server in servers {
        let (status, body) = server
            .post("/api/v1/test/clock", json!({"advance": by}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

pub(crate) fn alerts_json(names: &[&str]) -> String {
    let alerts: Vec<Value> = names
        .iter()
        .map(|n| json!({"labels": {"alertname": n, "severity": "critical"}, "annotations": {"summary": format!("{n} is failing")}}))
        .collect();
    Value::Array(alerts).to_string()
}

async fn grouping_folds_alerts_into_one_incident_per_group(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let key = service_key(&server, "forms-printing", "prom").await;
    post_alerts(&server, &key, &alerts_json(&["QueueStuck"])).await;
    // Intake answers only once its alerts are in their incident: no waiting here.
    let open = open_incidents(&server).await;
    assert_eq!(open.len(), 1, "{open:?}");
    let incident = &open[0];
    assert_eq!(incident["service"], "forms-printing");
    assert_eq!(incident["state"], "triggered");
    assert_eq!(incident["severity"], "critical");
    assert_eq!(incident["title"], "QueueStuck is failing");
    let number = incident["number"].as_str().unwrap().to_string();
    assert!(number.starts_with("INC-"));

    // Another alert on the service joins it (one group per service by default).
    post_alerts(&server, &key, &alerts_json(&["QueueStuck", "SpoolerDown"])).await;
    let (_, detail) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(detail["alerts"].as_array().unwrap().len(), 2, "{detail:#}");
    assert_eq!(open_incidents(&server).await.len(), 1);
    let kinds = texts_at(&detail["timeline"], "/kind");
    assert_eq!(
        kinds.iter().filter(|k| *k == "alert_joined").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds[0], "opened");
    assert_eq!(detail["organisations"]["using_impacted_services"], 11);
    assert_eq!(detail["dependent_services"], json!([]));
    // When identity breaks, everything that depends on it breaks too: the count covers
    // the organisations using those services, as the catalog's impact says.
    let (status, login) = server
        .post(
            "/api/v1/incidents",
            json!({"service": "identity", "title": "Logins fail"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{login}");
    let (_, impact) = server.get("/api/v1/services/identity/impact").await;
    assert_eq!(
        login["organisations"]["using_ids"],
        json!(texts_at(&impact["organisations"], "/id")),
    );
    assert_eq!(
        login["dependent_services"],
        json!(texts_at(&impact["dependents"], "/service"))
    );
    assert!(
        login["organisations"]["using_impacted_services"]
            .as_u64()
            .unwrap()
            >= 11
    );
    // The id and the number both name it.
    let id = detail["id"].as_i64().unwrap();
    let (status, by_id) = server.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!((status, &by_id["number"]), (StatusCode::OK, &json!(number)));

    // With group_by, alert names split the service into groups.
    let (status, body) = send(
        server
            .request(Method::PATCH, "/api/v1/services/helpdesk-portal")
            .json(&json!({"incidents": {"group_by": ["alertname"]}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let portal = service_key(&server, "helpdesk-portal", "prom").await;
    post_alerts(&server, &portal, &alerts_json(&["LoginSlow", "SearchDown"])).await;
    post_alerts(&server, &portal, &alerts_json(&["LoginSlow"])).await;
    let (_, portal_open) = server
        .get("/api/v1/incidents?status=open&service=helpdesk-portal")
        .await;
    let mut keys = Vec::new();
    for _ in 0..50 {
        let (_, list) = server
            .get("/api/v1/incidents?status=open&service=helpdesk-portal")
            .await;
        keys = texts_at(&list["items"], "/group_key");
        if keys.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    keys.sort();
    assert_eq!(
        keys,
        ["alertname=\"LoginSlow\"", "alertname=\"SearchDown\""],
        "{portal_open}"
    );
}

async fn silenced_alerts_join_nothing_until_their_silence_ends(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let key = service_key(&server, "forms-printing", "prom").await;
    let (status, silence) = send(
        server
            .as_token(Method::POST, "/api/v2/silences", &key)
            .json(&json!({"matchers": [{"name": "alertname", "value": "Noisy", "isRegex": false, "isEqual": true}],
                         "startsAt": START, "endsAt": "2026-11-23T11:00:00Z", "createdBy": "t", "comment": "known"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{silence}");
    post_alerts(&server, &key, &alerts_json(&["Noisy"])).await;
    settle().await;
    assert!(
        open_incidents(&server).await.is_empty(),
        "a silenced alert opens nothing"
    );
    // The silence ends early: the alert, still firing, is treated as newly firing.
    let id = silence["silenceID"].as_str().unwrap();
    let (status, _) =
        send(server.as_token(Method::DELETE, &format!("/api/v2/silence/{id}"), &key)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, detail) = server
        .get(&format!(
            "/api/v1/incidents/{}",
            the_open_incident(&server).await
        ))
        .await;
    let joined: Vec<String> = texts_at(&detail["timeline"], "/text")
        .into_iter()
        .filter(|t| t.contains("joined"))
        .collect();
    assert!(joined[0].contains("its silence ended"), "{joined:?}");
}

async fn a_resolution_by_hand_holds_firing_alerts_for_refire_after(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    // A PagerDuty alert fires until its sender resolves it.
    let trigger = pagerduty_trigger(&server, "Queue stuck", "error").await;
    let first = the_open_incident(&server).await;
    let (status, body) = server
        .post(
            &format!("/api/v1/incidents/{first}/resolve"),
            json!({"by": "dana", "reason": "fixed the spooler"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "resolved");
    assert_eq!(body["resolved_by"], "dana");
    // Still firing: no new incident at once, nor within refire_after (4h).
    for step in ["2m", "1h", "2h"] {
        advance(&[&server], step).await;
        send(server.request(Method::POST, "/v2/enqueue").json(&trigger)).await;
        settle().await;
        assert!(
            open_incidents(&server).await.is_empty(),
            "after {step} more"
        );
    }
    // Past 4h and still firing: a new incident opens.
    advance(&[&server], "1h").await;
    assert_ne!(the_open_incident(&server).await, first);
}

async fn incidents_follow_their_alerts(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let key = service_key(&server, "forms-printing", "prom").await;
    // Auto-resolve: every alert resolved resolves the incident.
    post_alerts(&server, &key, &alerts_json(&["A", "B"])).await;
    let number = the_open_incident(&server).await;
    let resolved = json!([{"labels": {"alertname": "A", "severity": "critical"}, "endsAt": START}])
        .to_string();
    post_alerts(&server, &key, &resolved).await;
    settle().await;
    let (_, detail) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(detail["state"], "triggered", "B still fires");
    let both = json!([{"labels": {"alertname": "A", "severity": "critical"}, "endsAt": START},
                      {"labels": {"alertname": "B", "severity": "critical"}, "endsAt": START}])
    .to_string();
    post_alerts(&server, &key, &both).await;
    let detail = wait_for(&server, &format!("/api/v1/incidents/{number}"), |b| {
        b["state"] == "resolved"
    })
    .await;
    assert_eq!(detail["resolved_by"], "muster");

    // PagerDuty: acknowledging the alert acknowledges the incident.
    let mut event = pagerduty_trigger(&server, "Print DB down", "error").await;
    let number = the_open_incident(&server).await;
    event["event_action"] = json!("acknowledge");
    send(server.request(Method::POST, "/v2/enqueue").json(&event)).await;
    let detail = wait_for(&server, &format!("/api/v1/incidents/{number}"), |b| {
        b["state"] == "acknowledged"
    })
    .await;
    assert_eq!(detail["acknowledged_by"], "pagerduty");
    event["event_action"] = json!("resolve");
    send(server.request(Method::POST, "/v2/enqueue").json(&event)).await;
    wait_for(&server, &format!("/api/v1/incidents/{number}"), |b| {
        b["state"] == "resolved"
    })
    .await;

    // A trigger and its acknowledgement in one grouping batch: the incident opened by
    // the first is acknowledged by the second (grouping never stalls on it).
    let key = service_key(&server, "forms-printing", "pd-burst").await;
    let mut burst = json!({"routing_key": key, "event_action": "trigger", "dedup_key": "q-2",
                           "payload": {"summary": "Spooler stuck", "source": "spooler", "severity": "error"}});
    send(server.request(Method::POST, "/v2/enqueue").json(&burst)).await;
    burst["event_action"] = json!("acknowledge");
    send(server.request(Method::POST, "/v2/enqueue").json(&burst)).await;
    let open = wait_for(&server, "/api/v1/incidents?status=open", |b| {
        b["items"].as_array().unwrap().len() == 1
    })
    .await;
    let number = open["items"][0]["number"].as_str().unwrap().to_string();
    wait_for(&server, &format!("/api/v1/incidents/{number}"), |b| {
        b["state"] == "acknowledged"
    })
    .await;
}

async fn the_lifecycle_refuses_what_is_out_of_order(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let (status, incident) = server
        .post("/api/v1/incidents", json!({"service": "forms-printing", "title": "Printing is slow", "severity": "minor", "by": "dana"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    assert_eq!(incident["opened_by"], "dana");
    let number = incident["number"].as_str().unwrap().to_string();
    let act = |action: &str, body: Value| {
        let path = format!("/api/v1/incidents/{number}/{action}");
        let server = &server;
        async move { server.post(&path, body).await }
    };
    // A token linked to a person acts as that person only.
    let fran = db.token("fran", "responder", &["--person", "fran"]);
    let (status, body) = server
        .post_as(
            &fran,
            &format!("/api/v1/incidents/{number}/acknowledge"),
            json!({"by": "eli"}),
        )
        .await;
    assert_eq!(
        (status, problems(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["by: you act as \"fran\": a user or token linked to a person acts only as that person".to_string()]
        )
    );
    // A shared token says for whom it acts.
    let (status, body) = act("acknowledge", json!({"by": "eli"})).await;
    assert_eq!(
        (status, &body["state"], &body["acknowledged_by"]),
        (StatusCode::OK, &json!("acknowledged"), &json!("eli"))
    );
    let (status, body) = act("acknowledge", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["detail"],
        "cannot acknowledge: the incident is already acknowledged"
    );
    let (status, _) = act("note", json!({"text": "Spooler restarted on print-02"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = act(
        "severity",
        json!({"severity": "critical", "reason": "all printing down"}),
    )
    .await;
    assert_eq!(
        (status, &body["severity"]),
        (StatusCode::OK, &json!("critical"))
    );
    let (status, _) = act("mitigate", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = act("resolve", json!({"reason": "spooler fixed"})).await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("resolved"))
    );
    let (status, body) = act("resolve", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"], "cannot resolve: the incident is resolved");
    // The timeline recorded every step by itself, in order (step one of escalation
    // may have paged before the acknowledgement, on the engine's tick, and that page's
    // delivery may have failed: both left out).
    let (_, detail) = server.get(&format!("/api/v1/incidents/{number}")).await;
    let steps: Vec<String> = texts_at(&detail["timeline"], "/kind")
        .into_iter()
        .filter(|kind| kind != "paged" && kind != "delivery_failed")
        .collect();
    assert_eq!(
        steps,
        [
            "opened",
            "acknowledged",
            "note",
            "severity",
            "mitigated",
            "resolved"
        ]
    );
    // Bad input names the field and changes nothing.
    let (status, body) = act("note", json!({"text": ""})).await;
    assert_eq!(
        (status, problems(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["text: is required".to_string()]
        )
    );
    let (status, body) = act(
        "severity",
        json!({"severity": "apocalyptic", "by": "nobody"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = problems(&body);
    fields.sort();
    assert_eq!(
        fields,
        [
            "by: no person with id \"nobody\"",
            "severity: \"apocalyptic\" is not a severity: use critical, major or minor"
        ]
    );
    let (status, body) = act("close", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = act("note", json!({"txt": "typo"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("txt"), "{body}");
    let (status, body) = act("note", json!(["text"])).await;
    assert_eq!(
        (status, &body["detail"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!("the body must be a JSON object")
        )
    );
    // A title is one line: it cannot add lines to the pages that carry it.
    let (status, body) = server
        .post(
            "/api/v1/incidents",
            json!({"service": "forms-printing", "title": "Printing\r\nAcknowledge: https://evil.test"}),
        )
        .await;
    assert_eq!(
        (status, problems(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["title: must be one line: no line breaks, tabs or control characters".to_string()]
        )
    );
    // Filters name what is wrong with them rather than answering an empty list.
    for (path, status, field) in [
        (
            "/api/v1/incidents?service=nope",
            StatusCode::BAD_REQUEST,
            "service: no service",
        ),
        (
            "/api/v1/incidents?team=hosting",
            StatusCode::BAD_REQUEST,
            "team: is not a parameter here",
        ),
        (
            "/api/v1/reports?incident=INC-99999",
            StatusCode::NOT_FOUND,
            "no incident INC-99999",
        ),
    ] {
        let (got, body) = server.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().starts_with(field),
            "{path}: {body}"
        );
    }
    let (status, _) = server.get("/api/v1/incidents/INC-99999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.get("/api/v1/incidents/not-a-number").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = server.get("/api/v1/incidents?status=closed").await;
    assert_eq!(
        (status, problems(&body).len()),
        (StatusCode::BAD_REQUEST, 1)
    );
    let (status, body) = server
        .post(
            "/api/v1/incidents",
            json!({"service": "ghost", "title": "", "severity": "bad"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problems(&body).len(), 3, "{body}");
    // Refusals change nothing (the delivery of step one's page may still land).
    let (_, detail_after) = server.get(&format!("/api/v1/incidents/{number}")).await;
    let kept = |detail: &Value| -> Vec<Value> {
        detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] != "delivery_failed")
            .cloned()
            .collect()
    };
    assert_eq!(
        kept(&detail_after),
        kept(&detail),
        "refusals change nothing"
    );
}

/// Who was paged for each fired step of an incident, as `pass.step:people`.
fn fired(detail: &Value) -> Vec<String> {
    detail["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}.{}:{}",
                p["pass"],
                p["step"],
                texts_at(&p["people"], "").join(",")
            )
        })
        .collect()
}

async fn escalation_pages_step_by_step_and_repeats_until_acknowledged(backend: Backend) {
    let (db, server) = seeded(backend).await;
    // A PagerDuty alert fires until resolved, so the incident stays triggered.
    pagerduty_trigger(&server, "QueueStuck is failing", "critical").await;
    let number = the_open_incident(&server).await;
    let path = format!("/api/v1/incidents/{number}");
    // print-platform: the on-call schedule at once, the whole team after 15m, then
    // two repeats 30m apart.
    let detail = wait_for(&server, &path, |b| {
        b["pages"].as_array().unwrap().len() == 1
    })
    .await;
    assert_eq!(fired(&detail), ["0.0:dana"]);
    assert_eq!(detail["next_step"]["due_at"], "2026-11-23T10:15:00Z");
    advance(&[&server], "14m").await;
    settle().await;
    let (_, detail) = server.get(&path).await;
    assert_eq!(fired(&detail), ["0.0:dana"], "not before escalate_after");
    advance(&[&server], "1m").await;
    let detail = wait_for(&server, &path, |b| {
        b["pages"].as_array().unwrap().len() == 2
    })
    .await;
    assert_eq!(fired(&detail), ["0.0:dana", "0.1:dana,eli,fran"]);
    advance(&[&server], "30m").await;
    let detail = wait_for(&server, &path, |b| {
        b["pages"].as_array().unwrap().len() == 3
    })
    .await;
    assert_eq!(
        fired(&detail),
        ["0.0:dana", "0.1:dana,eli,fran", "1.0:dana"],
        "the repeat starts over"
    );
    settle().await;
    let (_, again) = server.get(&path).await;
    assert_eq!(fired(&again), fired(&detail), "each step fires once");

    // Every page carries the number, title, service, counts, severity and a link.
    let bodies = db
        .texts("SELECT body FROM notifications WHERE recipient = 'dana' ORDER BY id")
        .await;
    assert!(!bodies.is_empty());
    for part in [
        number.as_str(),
        "QueueStuck is failing",
        "Forms",
        "0 reported, 11 use the service or what depends on it",
        "Severity: critical",
        "/ack/",
    ] {
        assert!(
            bodies[0].contains(part),
            "{part} missing from {}",
            bodies[0]
        );
    }
    let subjects = db
        .texts("SELECT subject FROM notifications WHERE recipient = 'eli'")
        .await;
    assert!(subjects.iter().all(|s| s.contains(&number)), "{subjects:?}");

    // Acknowledging stops further steps.
    let (status, _) = server
        .post(&format!("{path}/acknowledge"), json!({"by": "eli"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    advance(&[&server], "3h").await;
    settle().await;
    let (_, detail) = server.get(&path).await;
    assert_eq!(fired(&detail).len(), 3);
    assert!(detail["next_step"].is_null());
    let paged = texts_at(&detail["timeline"], "/kind")
        .into_iter()
        .filter(|k| k == "paged")
        .count();
    assert_eq!(
        paged, 3,
        "one line a step: dana, then dana, eli and fran, then dana"
    );
}

async fn escalation_runs_to_the_end_and_links_acknowledge_once(backend: Backend) {
    let (db, server) = seeded(backend).await;
    // helpdesk has no policy: the whole team is paged once.
    let (_, incident) = server
        .post(
            "/api/v1/incidents",
            json!({"service": "helpdesk-portal", "title": "Tickets lost"}),
        )
        .await;
    let number = incident["number"].as_str().unwrap().to_string();
    let path = format!("/api/v1/incidents/{number}");
    let detail = wait_for(&server, &path, |b| {
        b["pages"].as_array().unwrap().len() == 1
    })
    .await;
    assert_eq!(fired(&detail), ["0.0:hal,hope"]);
    advance(&[&server], "3h").await;
    settle().await;
    let (_, detail) = server.get(&path).await;
    assert_eq!(
        fired(&detail).len(),
        1,
        "no repeat: it stops after the last step"
    );
    assert!(texts_at(&detail["timeline"], "/kind").contains(&"escalation_done".to_string()));

    // The link in hope's page: a GET shows a confirmation and changes nothing.
    let body = db
        .texts("SELECT body FROM notifications WHERE recipient = 'hope' ORDER BY id LIMIT 1")
        .await;
    let link = body[0]
        .lines()
        .find_map(|l| l.strip_prefix("Acknowledge (stops further escalation): "))
        .unwrap()
        .to_string();
    let token_path = link
        .split_once("/ack/")
        .map(|(_, t)| format!("/ack/{t}"))
        .unwrap();
    let page = server
        .client
        .get(format!("{}{token_path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Acknowledge as hope"));
    let (_, detail) = server.get(&path).await;
    assert_eq!(detail["state"], "triggered", "a GET must not acknowledge");
    // Confirming acknowledges, without signing in; once.
    let confirm = server
        .client
        .post(format!("{}{token_path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), StatusCode::OK);
    let (_, detail) = server.get(&path).await;
    assert_eq!(
        (&detail["state"], &detail["acknowledged_by"]),
        (&json!("acknowledged"), &json!("hope"))
    );
    let again = server
        .client
        .post(format!("{}{token_path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    // A forged link is not recognised; after resolution the real one has expired.
    let forged = server
        .client
        .post(format!("{}/ack/forged-token", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::NOT_FOUND);
    // A real link moved to another person is not recognised either.
    assert!(token_path.contains(".hope."), "{token_path}");
    let moved = server
        .client
        .post(format!(
            "{}{}",
            server.base,
            token_path.replacen(".hope.", ".hal.", 1)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::NOT_FOUND);
    server.post(&format!("{path}/resolve"), json!({})).await;
    let expired = server
        .client
        .get(format!("{}{token_path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::GONE);
    let (_, audit) = server
        .get(&format!("/api/v1/audit?entity=incident:{number}"))
        .await;
    let actions = texts_at(&audit["items"], "/action");
    assert!(
        actions.contains(&"incident.acknowledge".to_string()),
        "{actions:?}"
    );
}

/// Servers share a PostgreSQL (SQLite is one server's file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_never_fire_one_step_twice() {
    let db = Database::fresh(Backend::Postgres).await;
    let admin = db.token("admin", "admin", &[]);
    let first = db.serve().unwrap().with_token(&admin);
    first.import_seed().await;
    let second = db.serve().unwrap().with_token(&admin);
    let mut numbers = Vec::new();
    for i in 0..12 {
        let server = if i % 2 == 0 { &first } else { &second };
        let (status, incident) = server
            .post(
                "/api/v1/incidents",
                json!({"service": "forms-printing", "title": format!("Problem {i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{incident}");
        numbers.push(incident["number"].as_str().unwrap().to_string());
    }
    for by in ["15m", "30m", "15m", "30m", "15m"] {
        advance(&[&first, &second], by).await;
        settle().await;
    }
    settle().await;
    for number in &numbers {
        let (_, detail) = first.get(&format!("/api/v1/incidents/{number}")).await;
        assert_eq!(
            fired(&detail),
            [
                "0.0:dana",
                "0.1:dana,eli,fran",
                "1.0:dana",
                "1.1:dana,eli,fran",
                "2.0:dana",
                "2.1:dana,eli,fran"
            ],
            "{number}"
        );
        let paged = texts_at(&detail["timeline"], "/kind")
            .into_iter()
            .filter(|k| k == "paged")
            .count();
        assert_eq!(paged, 6, "{number}: one line for each step");
    }
    let per_key = db
        .texts("SELECT dedup_key FROM notifications WHERE dedup_key LIKE 'incident:%' GROUP BY dedup_key HAVING COUNT(*) > 1")
        .await;
    assert!(per_key.is_empty());
}

async fn the_report_flood_opens_one_incident_with_counts_kept_apart(backend: Backend) {
    // Story 1, step 4: the old key expired; organisations report "cannot print".
    let (db, server) = seeded(backend).await;
    let report = |organisation: &str, channel: &str| {
        json!({"organisation": organisation, "service": "forms-printing", "summary": "Cannot print forms",
               "details": "Printing fails with a licence error", "reporter": "front desk", "channel": channel})
    };
    for (organisation, channel) in [
        ("org-04", "phone"),
        ("org-05", "social"),
        ("org-04", "social"),
        ("org-06", "phone"),
    ] {
        let (status, body) = server
            .post("/api/v1/reports", report(organisation, channel))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(body["incident"].is_null(), "below the flood rule: {body}");
    }
    let (_, waiting) = server.get("/api/v1/reports").await;
    assert_eq!(
        waiting["items"].as_array().unwrap().len(),
        4,
        "waiting in triage"
    );
    assert!(open_incidents(&server).await.is_empty());
    // The fifth report (a fourth organisation) reaches 5 reports from at least 3.
    let (status, body) = server
        .post("/api/v1/reports", report("org-07", "phone"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let number = body["incident"]
        .as_str()
        .expect("the flood opened an incident")
        .to_string();
    let (_, incident) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(incident["opened_by"], "flood");
    assert_eq!(
        incident["reports"].as_array().unwrap().len(),
        5,
        "the reports that counted joined it"
    );
    assert_eq!(incident["organisations"]["reported"], 4);
    assert_eq!(incident["organisations"]["using_impacted_services"], 11);
    assert_eq!(
        incident["organisations"]["targets_on_expired_item"], 0,
        "the licence has not expired yet"
    );
    // A later report joins the same incident; still one.
    let (_, body) = server
        .post("/api/v1/reports", report("org-05", "email"))
        .await;
    assert_eq!(body["incident"], json!(number));
    assert_eq!(open_incidents(&server).await.len(), 1);
    let (_, waiting) = server.get("/api/v1/reports").await;
    assert!(waiting["items"].as_array().unwrap().is_empty());
    // The owner team's on-call is paged about it.
    let detail = wait_for(&server, &format!("/api/v1/incidents/{number}"), |b| {
        !b["pages"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(fired(&detail), ["0.0:dana"]);

    // A report without a service joins the incident it resembles, else waits.
    let (_, body) = server
        .post("/api/v1/reports", json!({"organisation": "org-02", "summary": "Our forms will not print", "channel": "email"}))
        .await;
    assert_eq!(body["incident"], json!(number));
    let (_, body) = server
        .post("/api/v1/reports", json!({"organisation": "org-01", "summary": "Password reset email never arrives", "channel": "portal"}))
        .await;
    assert!(body["incident"].is_null());
    let waiting_id = body["id"].as_i64().unwrap();
    // A person routes it from triage.
    let (status, body) = server
        .post(
            &format!("/api/v1/reports/{waiting_id}/route"),
            json!({"incident": number}),
        )
        .await;
    assert_eq!(
        (status, &body["incident"]),
        (StatusCode::OK, &json!(number))
    );
    let (status, _) = server
        .post(
            &format!("/api/v1/reports/{waiting_id}/route"),
            json!({"incident": number}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "routed already");

    // Bad reports name the field and store nothing.
    let (status, body) = server
        .post(
            "/api/v1/reports",
            json!({"organisation": "org-99", "service": "ghost", "summary": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut named = problems(&body);
    named.sort();
    assert_eq!(
        named,
        [
            "organisation: no organisation with id \"org-99\"",
            "service: no service with id \"ghost\""
        ]
    );
    let (status, body) = server
        .post(
            "/api/v1/reports",
            json!({"organisation": "org-01", "summary": "x", "channel": "pigeon"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problems(&body)[0].starts_with("channel:"), "{body}");
    let (_, incident) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(incident["reports"].as_array().unwrap().len(), 8);

    // A team's responder records reports about the team's services; one naming no
    // service may land in any team's incident, so it needs an unscoped responder.
    let hosting = db.token("hosting-responder", "responder", &["--team", "hosting"]);
    let (status, body) = server
        .post_as(
            &hosting,
            "/api/v1/reports",
            json!({"organisation": "northwind", "service": "northwind-login", "summary": "Logins time out"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for body in [
        json!({"organisation": "northwind", "summary": "Something is off"}),
        json!({"organisation": "org-04", "service": "forms-printing", "summary": "No printing"}),
    ] {
        let (status, answer) = server
            .post_as(&hosting, "/api/v1/reports", body.clone())
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}: {answer}");
    }
    let (_, incident) = server.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(incident["reports"].as_array().unwrap().len(), 8);
}

async fn merging_moves_signals_and_resolves_the_merged_incident(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let declare = |title: &str| {
        let body = json!({"service": "forms-printing", "title": title});
        let server = &server;
        async move {
            let (status, incident) = server.post("/api/v1/incidents", body).await;
            assert_eq!(status, StatusCode::CREATED, "{incident}");
            incident["number"].as_str().unwrap().to_string()
        }
    };
    let target = declare("Printing fails").await;
    let duplicate = declare("Forms will not print").await;
    // A report naming the service joins its newest open incident: the duplicate.
    let (_, report) = server
        .post("/api/v1/reports", json!({"organisation": "org-03", "service": "forms-printing", "summary": "No printing"}))
        .await;
    assert_eq!(report["incident"], json!(duplicate));

    let (status, body) = server
        .post(
            &format!("/api/v1/incidents/{duplicate}/merge"),
            json!({"into": duplicate}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = server
        .post(&format!("/api/v1/incidents/{duplicate}/merge"), json!({}))
        .await;
    assert_eq!(
        (status, problems(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["into: is required: the incident to merge into".to_string()]
        )
    );
    let (status, merged) = server
        .post(
            &format!("/api/v1/incidents/{duplicate}/merge"),
            json!({"into": target, "reason": "same outage"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["state"], "resolved");
    assert_eq!(
        merged["merged_into"],
        json!(target.trim_start_matches("INC-").parse::<i64>().unwrap())
    );
    assert!(merged["reports"].as_array().unwrap().is_empty());
    let (_, kept) = server.get(&format!("/api/v1/incidents/{target}")).await;
    assert_eq!(texts_at(&kept["reports"], "/organisation"), ["org-03"]);
    assert_eq!(kept["organisations"]["reported"], 1);
    assert!(
        texts_at(&kept["timeline"], "/text")
            .iter()
            .any(|t| t.contains(&format!("{duplicate} merged in")))
    );
    // Nothing merges into a resolved incident.
    let third = declare("Another").await;
    let (status, body) = server
        .post(
            &format!("/api/v1/incidents/{third}/merge"),
            json!({"into": duplicate}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["detail"],
        format!("cannot merge: {duplicate} is resolved")
    );

    // A team-scoped responder merges only what its team answers for: both incidents.
    let declared = server
        .request(Method::POST, "/api/v1/incidents")
        .json(&json!({"service": "northwind-login", "title": "Logins slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), StatusCode::CREATED);
    let location = declared.headers()["location"].to_str().unwrap().to_string();
    let elsewhere: Value = declared.json().await.unwrap();
    assert_eq!(
        location,
        format!(
            "/api/v1/incidents/{}",
            elsewhere["number"].as_str().unwrap()
        )
    );
    let hosting = db.token("hosting-responder", "responder", &["--team", "hosting"]);
    let login = elsewhere["number"].as_str().unwrap();
    let (status, body) = server
        .post_as(
            &hosting,
            &format!("/api/v1/incidents/{login}/merge"),
            json!({ "into": third }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "into print-platform's: {body}"
    );
    let (_, untouched) = server.get(&format!("/api/v1/incidents/{third}")).await;
    assert_eq!(untouched["state"], "triggered");
    assert!(
        !texts_at(&untouched["timeline"], "/kind").contains(&"merged".to_string()),
        "{untouched:#}"
    );

    // An alert's incident merged into a declared one: when the alert resolves, the
    // declared incident stays open — people opened it, people close it.
    let trigger = pagerduty_trigger(&server, "Spooler down", "critical").await;
    let alerted = open_incidents(&server)
        .await
        .into_iter()
        .find(|i| i["opened_by"] == "alert")
        .expect("the alert opened its own incident");
    let alerted = alerted["number"].as_str().unwrap().to_string();
    let (status, _) = server
        .post(
            &format!("/api/v1/incidents/{alerted}/merge"),
            json!({ "into": third }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut resolve = trigger.clone();
    resolve["event_action"] = json!("resolve");
    let (status, _) = send(server.request(Method::POST, "/v2/enqueue").json(&resolve)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let held = wait_for(&server, &format!("/api/v1/incidents/{third}"), |b| {
        texts_at(&b["timeline"], "/kind").contains(&"alerts_resolved".to_string())
    })
    .await;
    assert_eq!(held["state"], "triggered", "{held:#}");
    assert!(
        texts_at(&held["timeline"], "/text").contains(&format!(
            "{alerted} merged in by token:admin: 1 alert and 0 reports moved here"
        )),
        "{held:#}"
    );
}

on_both_databases!(
    grouping_folds_alerts_into_one_incident_per_group,
    silenced_alerts_join_nothing_until_their_silence_ends,
    a_resolution_by_hand_holds_firing_alerts_for_refire_after,
    incidents_follow_their_alerts,
    the_lifecycle_refuses_what_is_out_of_order,
    escalation_pages_step_by_step_and_repeats_until_acknowledged,
    escalation_runs_to_the_end_and_links_acknowledge_once,
    the_report_flood_opens_one_incident_with_counts_kept_apart,
    merging_moves_signals_and_resolves_the_merged_incident,
);
