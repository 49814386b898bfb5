//! Alert intake over HTTP: integration keys, Alertmanager's API v2 (status codes and
//! bodies as Alertmanager answers), silences, PagerDuty events, webhook receivers,
//! the alert event stream, and nothing lost when the server is killed.

use crate::common::{Backend, Database, Server, problems, seeded, send, texts_at};
use crate::on_both_databases;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashSet;

/// A new key for `service`, made by the server's admin token.
pub async fn service_key(server: &Server, service: &str, name: &str) -> String {
    let (status, body) = server
        .post(
            &format!("/api/v1/services/{service}/integration-keys"),
            json!({ "name": name }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["key"].as_str().unwrap().to_string()
}

pub async fn post_alerts(server: &Server, key: &str, body: &str) -> (StatusCode, Value) {
    send(
        server
            .as_token(Method::POST, "/api/v2/alerts", key)
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

async fn get_as(server: &Server, key: &str, path: &str) -> (StatusCode, Value) {
    send(server.as_token(Method::GET, path, key)).await
}

async fn integration_keys(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let (status, body) = server
        .post(
            "/api/v1/services/forms-printing/integration-keys",
            json!({"name": "prometheus-eu"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 32);
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(body["service"], "forms-printing");
    let id = body["id"].as_str().unwrap().to_string();

    // Listed without the key; only its hash is stored.
    let (_, list) = server
        .get("/api/v1/services/forms-printing/integration-keys")
        .await;
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(list["items"][0].get("key").is_none());
    assert!(!list.to_string().contains(&key));
    let hashes = db.texts("SELECT key_hash FROM integration_keys").await;
    assert!(hashes.iter().all(|h| h != &key && h.len() == 64));

    // Bad input names the field; the wrong role or team is refused.
    let (status, body) = server
        .post(
            "/api/v1/services/forms-printing/integration-keys",
            json!({"name": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problems(&body)[0].starts_with("name:"), "{body}");
    let (status, _) = server
        .post(
            "/api/v1/services/nope/integration-keys",
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let viewer = db.token("viewer", "viewer", &[]);
    let (status, _) = send(
        server
            .as_token(
                Method::POST,
                "/api/v1/services/forms-printing/integration-keys",
                &viewer,
            )
            .json(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other_team = db.token("hosting-editor", "editor", &["--team", "hosting"]);
    let (status, _) = send(
        server
            .as_token(
                Method::POST,
                "/api/v1/services/forms-printing/integration-keys",
                &other_team,
            )
            .json(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Global keys: admins only, with a known fallback service.
    let (status, body) = server
        .post(
            "/api/v1/integration-keys",
            json!({"name": "central", "fallback_service": "nope", "service_label": "1bad"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = problems(&body);
    assert!(
        fields.iter().any(|f| f.starts_with("fallback_service:")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("service_label:")),
        "{fields:?}"
    );

    // The key works until revoked, then is refused at once.
    let (status, _) = post_alerts(&server, &key, r#"[{"labels":{"alertname":"x"}}]"#).await;
    assert_eq!(status, StatusCode::OK);
    let (status, revoked) = send(server.request(
        Method::DELETE,
        &format!("/api/v1/services/forms-printing/integration-keys/{id}"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (status, body) = post_alerts(&server, &key, r#"[{"labels":{"alertname":"x"}}]"#).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = send(server.request(
        Method::DELETE,
        &format!("/api/v1/services/forms-printing/integration-keys/{id}"),
    ))
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, audit) = server.get("/api/v1/audit?limit=1000").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"integration_key.create") && actions.contains(&"integration_key.revoke")
    );
}

async fn alertmanager_answers(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let key = service_key(&server, "forms-printing", "prom").await;

    // Empty batch: 200 with an empty body.
    let response = server
        .as_token(Method::POST, "/api/v2/alerts", &key)
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "");

    // Whole-request refusals, in Alertmanager's shapes.
    let (status, body) = post_alerts(&server, &key, r#"{"labels":{}}"#).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(400)),
        "{body}"
    );
    let (status, body) = post_alerts(&server, &key, r#"[{"annotations":{}}]"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({"code": 602, "message": "0.labels in body is required"})
    );
    let (status, body) = post_alerts(
        &server,
        &key,
        r#"[{"labels":{"a":"b"},"generatorURL":"::x"}]"#,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(601))
    );
    let (status, body) = send(
        server
            .as_token(Method::POST, "/api/v2/alerts", &key)
            .header("content-type", "text/plain")
            .body("[]"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some(415))
    );
    let (status, _) = send(
        server
            .client
            .post(format!("{}/api/v2/alerts", server.base))
            .header("content-type", "application/json")
            .body("[]"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = post_alerts(&server, server.token.as_deref().unwrap(), "[]").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a user's token posts no alerts: {body}"
    );

    // A mixed batch keeps the valid alert and still answers 400 with a string.
    let (status, body) = post_alerts(
        &server,
        &key,
        r#"[{"labels":{"alertname":"x","empty":""},"annotations":{"summary":"disk"}},{"labels":{}},{"labels":{"1bad":"v"}}]"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!("at least one label pair required; invalid label set: invalid name \"1bad\"")
    );
    let (status, alerts) = get_as(&server, &key, "/api/v2/alerts").await;
    assert_eq!(status, StatusCode::OK);
    let alert = &alerts[0];
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    assert_eq!(
        alert["fingerprint"], "d240efc3896bf266",
        "Alertmanager's fingerprint"
    );
    assert_eq!(alert["labels"], json!({"alertname": "x"}));
    assert_eq!(alert["receivers"], json!([{"name": "forms-printing"}]));
    assert_eq!(alert["startsAt"], "2026-11-23T10:00:00.000Z");
    assert_eq!(
        alert["endsAt"], "2026-11-23T10:05:00.000Z",
        "resolve_timeout 5m"
    );
    assert_eq!(alert["status"]["state"], "active");

    // Re-posting keeps the first start (merge), and filters select.
    server
        .post("/api/v1/test/clock", json!({"advance": "1m"}))
        .await;
    let (status, _) = post_alerts(
        &server,
        &key,
        r#"[{"labels":{"alertname":"x"}},{"labels":{"alertname":"y","severity":"page"}}]"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, alerts) = get_as(&server, &key, "/api/v2/alerts?filter=alertname%3D%22x%22").await;
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    assert_eq!(alerts[0]["startsAt"], "2026-11-23T10:00:00.000Z");
    assert_eq!(alerts[0]["endsAt"], "2026-11-23T10:06:00.000Z");
    let (_, alerts) = get_as(
        &server,
        &key,
        "/api/v2/alerts?filter=severity%3D~%22pa.*%22&filter=alertname!%3Dx",
    )
    .await;
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    assert_eq!(alerts[0]["labels"]["alertname"], "y");
    let (status, body) = get_as(&server, &key, "/api/v2/alerts?filter=%3Dbad").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = get_as(&server, &key, "/api/v2/alerts?active=maybe").await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(400))
    );

    // Another service's key sees only its own alerts.
    let other = service_key(&server, "identity", "other").await;
    post_alerts(&server, &other, r#"[{"labels":{"alertname":"x"}}]"#).await;
    let (_, mine) = get_as(&server, &other, "/api/v2/alerts").await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["receivers"][0]["name"], "identity");
    let (_, all) = server.get("/api/v2/alerts").await;
    assert_eq!(
        all.as_array().unwrap().len(),
        3,
        "a user sees every service"
    );
    let (_, groups) = server.get("/api/v2/alerts/groups").await;
    let receivers = texts_at(&groups, "/receiver/name");
    assert_eq!(receivers, ["forms-printing", "identity"]);

    // An explicitly resolved alert is no longer listed, and its end is recorded.
    post_alerts(
        &server,
        &key,
        r#"[{"labels":{"alertname":"y","severity":"page"},"endsAt":"2026-11-23T10:00:30Z"}]"#,
    )
    .await;
    let (_, alerts) = get_as(&server, &key, "/api/v2/alerts").await;
    let names = texts_at(&alerts, "/labels/alertname");
    assert_eq!(names, ["x"]);

    // Status, receivers and health answer as Alertmanager's do.
    let (_, status_body) = get_as(&server, &key, "/api/v2/status").await;
    for field in ["cluster", "versionInfo", "config", "uptime"] {
        assert!(status_body.get(field).is_some(), "{field} in {status_body}");
    }
    let (_, receivers) = get_as(&server, &key, "/api/v2/receivers").await;
    assert_eq!(receivers, json!([{"name": "forms-printing"}]));
    let (status, _) = send(server.client.get(format!("{}/-/healthy", server.base))).await;
    assert_eq!(status, StatusCode::OK);

    // The same API under the /i/{key} prefix.
    let (status, alerts) = send(
        server
            .client
            .get(format!("{}/i/{key}/api/v2/alerts", server.base)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    let (status, _) = send(server.client.get(format!(
        "{}/i/{}/api/v2/alerts",
        server.base,
        "a".repeat(32)
    )))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    drop(db);
}

async fn silences(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let key = service_key(&server, "forms-printing", "prom").await;
    let other = service_key(&server, "identity", "other").await;
    post_alerts(
        &server,
        &key,
        r#"[{"labels":{"alertname":"Disk","instance":"a"}}]"#,
    )
    .await;
    post_alerts(
        &server,
        &other,
        r#"[{"labels":{"alertname":"Disk","instance":"a"}}]"#,
    )
    .await;
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "Disk", "isRegex": false, "isEqual": true}],
        "startsAt": "2026-11-23T09:00:00Z", "endsAt": "2026-11-23T11:00:00Z",
        "createdBy": "ana", "comment": "replacing the disk"
    });
    let post = |body: Value, as_key: String| {
        let server = &server;
        async move {
            send(
                server
                    .as_token(Method::POST, "/api/v2/silences", &as_key)
                    .json(&body),
            )
            .await
        }
    };
    let (status, body) = post(silence.clone(), key.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["silenceID"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);

    // It mutes this service's alert only, and shows as active from now (not 09:00).
    let (_, mine) = get_as(&server, &key, "/api/v2/alerts").await;
    assert_eq!(mine[0]["status"]["state"], "suppressed");
    assert_eq!(mine[0]["status"]["silencedBy"], json!([id]));
    let (_, theirs) = get_as(&server, &other, "/api/v2/alerts").await;
    assert_eq!(theirs[0]["status"]["state"], "active");
    let (_, unsilenced) = get_as(&server, &key, "/api/v2/alerts?silenced=false").await;
    assert_eq!(unsilenced, json!([]));
    let (_, got) = get_as(&server, &key, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(got["status"]["state"], "active");
    assert_eq!(got["startsAt"], "2026-11-23T10:00:00.000Z");
    let (status, _) = get_as(&server, &other, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another service's key does not see it"
    );

    // Extending an active silence keeps its id; changing its matchers replaces it.
    let mut extended = got.clone();
    extended["endsAt"] = json!("2026-11-23T12:00:00Z");
    let (_, body) = post(extended, key.clone()).await;
    assert_eq!(body["silenceID"], id.as_str());
    let mut changed = got.clone();
    changed["matchers"][0]["value"] = json!("Disk.*");
    changed["matchers"][0]["isRegex"] = json!(true);
    let (_, body) = post(changed, key.clone()).await;
    let new_id = body["silenceID"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    let (_, old) = get_as(&server, &key, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(old["status"]["state"], "expired");

    // Alertmanager's refusals.
    let mut bad = silence.clone();
    bad["matchers"] = json!([{"name": "alertname", "value": ".*", "isRegex": true}]);
    let (status, body) = post(bad, key.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.as_str()
            .unwrap()
            .contains("must not match the empty string"),
        "{body}"
    );
    let mut past = silence.clone();
    past["endsAt"] = json!("2026-11-23T09:30:00Z");
    let (status, body) = post(past, key.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let mut empty = silence.clone();
    empty["matchers"] = json!([]);
    let (status, _) = post(empty, key.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut unknown = silence.clone();
    unknown["id"] = json!("00000000-0000-4000-8000-000000000000");
    let (status, body) = post(unknown, key.clone()).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!("silence not found"))
    );
    let (status, body) = get_as(&server, &key, "/api/v2/silence/not-a-uuid").await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(601))
    );

    // DELETE expires; expiring twice is Alertmanager's 500.
    let (status, _) =
        send(server.as_token(Method::DELETE, &format!("/api/v2/silence/{new_id}"), &key)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        send(server.as_token(Method::DELETE, &format!("/api/v2/silence/{new_id}"), &key)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.as_str().unwrap().contains("already expired"));
    let (_, list) = get_as(&server, &key, "/api/v2/silences?filter=alertname%3DDisk").await;
    let states = texts_at(&list, "/status/state");
    // Alertmanager's filter compares with the silence's matcher values: the regex
    // silence's value is "Disk.*", which `alertname=Disk` does not select.
    assert_eq!(states, ["expired"]);
    let (_, list) = get_as(&server, &key, "/api/v2/silences").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, mine) = get_as(&server, &key, "/api/v2/alerts").await;
    assert_eq!(mine[0]["status"]["state"], "active");

    // A viewer may read silences but not make them; silences are audited.
    let viewer = _db.token("viewer", "viewer", &[]);
    let (status, _) = post(silence.clone(), viewer.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get_as(&server, &viewer, "/api/v2/silences").await;
    assert_eq!(status, StatusCode::OK);
    let (_, audit) = server.get("/api/v1/audit?limit=1000").await;
    assert!(audit.to_string().contains("silence.save"));

    // A silence for every service (a user's) mutes and shows to a service's key, which
    // may not expire it.
    let (status, body) = post(silence.clone(), server.token.clone().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let global = body["silenceID"].as_str().unwrap().to_string();
    let (_, theirs) = get_as(&server, &other, "/api/v2/alerts").await;
    assert_eq!(theirs[0]["status"]["silencedBy"], json!([global]));
    let (status, _) = get_as(&server, &other, &format!("/api/v2/silence/{global}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        send(server.as_token(Method::DELETE, &format!("/api/v2/silence/{global}"), &other)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn alert_history_and_expiry(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let key = service_key(&server, "forms-printing", "prom").await;
    post_alerts(
        &server,
        &key,
        r#"[{"labels":{"alertname":"x"},"annotations":{"summary":"one"}}]"#,
    )
    .await;
    post_alerts(
        &server,
        &key,
        r#"[{"labels":{"alertname":"x"},"annotations":{"summary":"two"}}]"#,
    )
    .await;
    let (_, list) = server.get("/api/v1/alerts?service=forms-printing").await;
    let id = list["items"][0]["id"].as_i64().unwrap();
    assert_eq!(list["items"][0]["source"], "alertmanager");
    // Past its end (no re-post within resolve_timeout), the engine records it resolved.
    server
        .post("/api/v1/test/clock", json!({"advance": "6m"}))
        .await;
    let mut kinds = Vec::new();
    for _ in 0..40 {
        let (_, alert) = server.get(&format!("/api/v1/alerts/{id}")).await;
        kinds = texts_at(&alert["events"], "/kind");
        if kinds.len() == 3 {
            assert_eq!(alert["state"], "resolved");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(kinds, ["fired", "updated", "resolved"]);
    let (_, firing) = server.get("/api/v1/alerts").await;
    assert_eq!(firing["items"], json!([]));
    // Firing again is a new instance with its own history.
    post_alerts(&server, &key, r#"[{"labels":{"alertname":"x"}}]"#).await;
    let (_, all) = server.get("/api/v1/alerts?state=all").await;
    let ids: Vec<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], id);
    let (status, body) = server.get("/api/v1/alerts?state=odd").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problems(&body)[0].starts_with("state:"));
}

const KEY_CHARS: &str = "abcdefghijklmnopqrstuvwxyz0123456789";

async fn pagerduty_events(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let key = service_key(&server, "forms-printing", "pd").await;
    let enqueue = |body: Value| {
        let server = &server;
        async move {
            send(
                server
                    .client
                    .post(format!("{}/v2/enqueue", server.base))
                    .json(&body),
            )
            .await
        }
    };
    let trigger = json!({"routing_key": key, "event_action": "trigger", "dedup_key": "db-1",
        "payload": {"summary": "DB down", "source": "db-1", "severity": "critical", "custom_details": {"free": "0%"}}});
    let (status, body) = enqueue(trigger.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed", "dedup_key": "db-1"})
    );
    let (status, body) = enqueue(json!({"routing_key": key, "event_action": "trigger",
        "payload": {"summary": "no key", "source": "x", "severity": "info"}}))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        body["dedup_key"].as_str().unwrap().len(),
        32,
        "a generated dedup key"
    );

    // Acknowledge and resolve act on the alert; with no open alert they are dropped.
    let (status, _) =
        enqueue(json!({"routing_key": key, "event_action": "acknowledge", "dedup_key": "db-1"}))
            .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) =
        enqueue(json!({"routing_key": key, "event_action": "resolve", "dedup_key": "never-seen"}))
            .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, list) = server.get("/api/v1/alerts?service=forms-printing").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the dropped resolve made nothing: {list}");
    let db1 = items.iter().find(|a| a["dedup_key"] == "db-1").unwrap();
    assert!(db1["acknowledged_at"].is_string());
    assert_eq!(db1["labels"]["severity"], "critical");
    assert_eq!(db1["annotations"]["summary"], "DB down");
    let first_id = db1["id"].as_i64().unwrap();
    enqueue(json!({"routing_key": key, "event_action": "resolve", "dedup_key": "db-1"})).await;
    let (_, alert) = server.get(&format!("/api/v1/alerts/{first_id}")).await;
    let kinds = texts_at(&alert["events"], "/kind");
    assert_eq!(kinds, ["fired", "acknowledged", "resolved"]);
    // After resolution the same dedup key opens a new alert.
    enqueue(trigger).await;
    let (_, list) = server.get("/api/v1/alerts?service=forms-printing").await;
    let again = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["dedup_key"] == "db-1")
        .unwrap();
    assert_ne!(again["id"].as_i64().unwrap(), first_id);

    // Refusals in PagerDuty's shape, nothing stored.
    let (status, body) =
        enqueue(json!({"routing_key": "short", "event_action": "trigger", "payload": {}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "invalid event");
    assert!(body["errors"].as_array().unwrap().len() >= 3, "{body}");
    let (status, body) = send(
        server
            .client
            .post(format!("{}/v2/enqueue", server.base))
            .body("{not json"),
    )
    .await;
    assert_eq!(
        (status, body["errors"].clone()),
        (StatusCode::BAD_REQUEST, json!(["JSON parse error"]))
    );
    let unknown: String = KEY_CHARS.chars().cycle().take(32).collect();
    let (status, body) =
        enqueue(json!({"routing_key": unknown, "event_action": "resolve", "dedup_key": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"][0].as_str().unwrap().contains("routing key"));
    let huge = "x".repeat(600 * 1024);
    let (status, body) = enqueue(json!({"routing_key": key, "event_action": "trigger",
        "payload": {"summary": "big", "source": "x", "severity": "info", "custom_details": {"blob": huge}}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["errors"][0].as_str().unwrap().contains("too large"),
        "{body}"
    );
    let (status, body) = enqueue(json!({"routing_key": key, "event_action": "trigger",
        "payload": {"summary": "nul \u{0} inside", "source": "x", "severity": "info"}}))
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "refused on both databases alike"
    );
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("payload.summary"),
        "{body}"
    );
    let (_, list) = server.get("/api/v1/alerts?service=forms-printing").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Dedup keys are scoped by routing key: another key's events never touch the alert.
    let second = service_key(&server, "forms-printing", "pd-2").await;
    enqueue(json!({"routing_key": second, "event_action": "resolve", "dedup_key": "db-1"})).await;
    let (_, list) = server.get("/api/v1/alerts?service=forms-printing").await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["dedup_key"] == "db-1"),
        "still firing: {list}"
    );

    // Change events are kept for the service.
    let (status, body) = send(server.client.post(format!("{}/v2/change/enqueue", server.base)).json(&json!({
        "routing_key": key, "payload": {"summary": "Deployed forms v42", "source": "ci", "timestamp": "2026-11-23T09:58:00Z"},
        "links": [{"href": "https://ci.example.test/42", "text": "build"}]}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, changes) = server
        .get("/api/v1/services/forms-printing/change-events")
        .await;
    assert_eq!(changes["items"][0]["summary"], "Deployed forms v42");
    assert_eq!(changes["items"][0]["links"][0]["text"], "build");
}

async fn webhook_receivers(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let key = service_key(&server, "forms-printing", "am-front").await;
    let firing = json!({"version": "4", "groupKey": "{}:{alertname=\"HighCPU\"}", "status": "firing", "receiver": "muster",
        "groupLabels": {"alertname": "HighCPU"}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "labels": {"alertname": "HighCPU", "instance": "a"}, "annotations": {"summary": "hot"},
                    "startsAt": "2026-11-23T09:55:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "x"}]});
    let (status, body) = send(
        server
            .client
            .post(format!("{}/i/{key}/integrations/alertmanager", server.base))
            .json(&firing),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["alerts"], 1);
    let (_, alerts) = get_as(&server, &key, "/api/v2/alerts").await;
    assert_eq!(alerts[0]["labels"]["alertname"], "HighCPU");
    assert_eq!(alerts[0]["startsAt"], "2026-11-23T09:55:00.123Z");
    // Still firing long after: a webhook alert stays open until resolved.
    server
        .post("/api/v1/test/clock", json!({"advance": "3h"}))
        .await;
    let (_, alerts) = get_as(&server, &key, "/api/v2/alerts").await;
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    let mut resolved = firing.clone();
    resolved["status"] = json!("resolved");
    resolved["alerts"][0]["status"] = json!("resolved");
    resolved["alerts"][0]["endsAt"] = json!("2026-11-23T12:59:00Z");
    let (status, _) = send(
        server
            .as_token(Method::POST, "/integrations/alertmanager", &key)
            .json(&resolved),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, alerts) = get_as(&server, &key, "/api/v2/alerts").await;
    assert_eq!(alerts, json!([]));

    let grafana = json!({"version": "1", "state": "alerting", "orgId": 1, "title": "[FIRING:1]", "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "Latency", "__alert_rule_uid__": "u1"},
                    "annotations": {"summary": "slow"}, "startsAt": "2026-11-23T12:59:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "dashboardURL": "https://grafana.example.test/d/1", "values": {"B": 1.5}}]});
    let (status, _) = send(
        server
            .as_token(Method::POST, "/integrations/grafana", &key)
            .json(&grafana),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, alerts) = get_as(&server, &key, "/api/v2/alerts").await;
    assert_eq!(alerts[0]["labels"], json!({"alertname": "Latency"}));
    assert_eq!(
        alerts[0]["annotations"]["dashboard_url"],
        "https://grafana.example.test/d/1"
    );
    let (_, list) = server.get("/api/v1/alerts").await;
    assert_eq!(list["items"][0]["source"], "grafana_webhook");

    // Invalid alerts are named; the valid ones are kept.
    let mixed = json!({"alerts": [{"status": "firing", "labels": {}}, {"status": "firing", "labels": {"alertname": "Kept"}}]});
    let (status, body) = send(
        server
            .as_token(Method::POST, "/integrations/alertmanager", &key)
            .json(&mixed),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        problems(&body)[0].starts_with("alerts[0].labels:"),
        "{body}"
    );
    let (_, alerts) = get_as(&server, &key, "/api/v2/alerts?filter=alertname%3DKept").await;
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    let (status, body) = send(
        server
            .as_token(Method::POST, "/integrations/grafana", &key)
            .body("{}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problems(&body)[0].starts_with("alerts:"));
}

async fn global_keys_route_by_label(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (status, body) = server
        .post(
            "/api/v1/integration-keys",
            json!({"name": "central-prometheus", "fallback_service": "helpdesk-portal"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let global = body["key"].as_str().unwrap().to_string();
    let service = service_key(&server, "forms-printing", "prom").await;
    post_alerts(&server, &global, r#"[{"labels":{"alertname":"a","service":"identity"}},{"labels":{"alertname":"b","service":"no-such"}},{"labels":{"alertname":"c"}}]"#).await;
    // The service key wins over a disagreeing label.
    post_alerts(
        &server,
        &service,
        r#"[{"labels":{"alertname":"d","service":"identity"}}]"#,
    )
    .await;
    let (_, list) = server.get("/api/v1/alerts").await;
    let mut routed: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap().to_string(),
                a["service"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    routed.sort();
    let expected = [
        ("a", "identity"),
        ("b", "helpdesk-portal"),
        ("c", "helpdesk-portal"),
        ("d", "forms-printing"),
    ];
    assert_eq!(
        routed,
        expected.map(|(a, s)| (a.to_string(), s.to_string()))
    );
    let (_, all) = get_as(&server, &global, "/api/v2/alerts").await;
    assert_eq!(
        all.as_array().unwrap().len(),
        4,
        "a global key reads every service"
    );
}

/// Posts batches on many connections, kills the server with SIGKILL mid-stream,
/// restarts it, and finds every alert that was answered 200.
async fn acknowledged_alerts_survive_sigkill(backend: Backend) {
    let db = Database::fresh(backend).await;
    let admin = db.token("admin", "admin", &[]);
    let mut server = db.serve().unwrap().with_token(&admin);
    server.import_seed().await;
    let key = service_key(&server, "forms-printing", "load").await;
    let url = format!("{}/api/v2/alerts", server.base);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (url, key, stop) = (url.clone(), key.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            let mut batch = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let names: Vec<String> =
                    (0..64).map(|i| format!("w{worker}b{batch}i{i}")).collect();
                let body: Vec<Value> = names
                    .iter()
                    .map(|n| json!({"labels": {"alertname": "Load", "instance": n}}))
                    .collect();
                let sent = client.post(&url).bearer_auth(&key).json(&body).send().await;
                match sent {
                    Ok(r) if r.status() == StatusCode::OK => acknowledged.extend(names),
                    _ => break,
                }
                batch += 1;
            }
            acknowledged
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = HashSet::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(
        acknowledged.len() >= 64,
        "the load reached the server before the kill"
    );
    let server = db.serve().unwrap().with_token(&admin);
    let (_, alerts) = server.get("/api/v2/alerts").await;
    let stored: HashSet<String> = texts_at(&alerts, "/labels/instance").into_iter().collect();
    let lost: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged alerts lost, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(5)]
    );
}

on_both_databases!(
    integration_keys,
    alertmanager_answers,
    silences,
    alert_history_and_expiry,
    pagerduty_events,
    webhook_receivers,
    global_keys_route_by_label,
    acknowledged_alerts_survive_sigkill,
);

/// Two servers on one PostgreSQL database are one alert store: alerts posted to
/// either are one set, and the same alert posted to both at once is one instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_alert_store() {
    let db = Database::fresh(Backend::Postgres).await;
    let admin = db.token("admin", "admin", &[]);
    let first = db.serve().unwrap().with_token(&admin);
    first.import_seed().await;
    let second = db.serve().unwrap().with_token(&admin);
    let key = service_key(&first, "forms-printing", "ha").await;
    post_alerts(&first, &key, r#"[{"labels":{"alertname":"a"}}]"#).await;
    post_alerts(&second, &key, r#"[{"labels":{"alertname":"b"}}]"#).await;
    let mut racing = Vec::new();
    for i in 0..20 {
        let base = if i % 2 == 0 {
            first.base.clone()
        } else {
            second.base.clone()
        };
        let key = key.clone();
        racing.push(tokio::spawn(async move {
            send(
                reqwest::Client::new()
                    .post(format!("{base}/api/v2/alerts"))
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(r#"[{"labels":{"alertname":"same"}},{"labels":{"alertname":"a"}}]"#),
            )
            .await
        }));
    }
    for task in racing {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for server in [&first, &second] {
        let (_, alerts) = get_as(server, &key, "/api/v2/alerts").await;
        let mut names = texts_at(&alerts, "/labels/alertname");
        names.sort();
        assert_eq!(names, ["a", "b", "same"]);
    }
    let rows = db.texts("SELECT fingerprint FROM alerts").await;
    assert_eq!(rows.len(), 3, "one instance per alert: {rows:?}");

    // Each instance remembers "a" as it last wrote it. The first changes what it says;
    // the second, posting the old content over its stale memory, must find the row
    // changed and merge with what is stored, not just move the times.
    let annotated = r#"[{"labels":{"alertname":"a"},"annotations":{"summary":"from first"}}]"#;
    post_alerts(&first, &key, annotated).await;
    post_alerts(&second, &key, r#"[{"labels":{"alertname":"a"}}]"#).await;
    for server in [&first, &second] {
        let (_, alerts) = get_as(server, &key, "/api/v2/alerts?filter=alertname%3D%22a%22").await;
        assert_eq!(
            alerts[0]["annotations"],
            serde_json::json!({}),
            "the latest post says no summary: {alerts}"
        );
    }
    // And the first, now stale in turn, still writes through.
    post_alerts(&first, &key, annotated).await;
    let (_, alerts) = get_as(&second, &key, "/api/v2/alerts?filter=alertname%3D%22a%22").await;
    assert_eq!(alerts[0]["annotations"]["summary"], "from first");
    let rows = db.texts("SELECT fingerprint FROM alerts").await;
    assert_eq!(rows.len(), 3, "still one instance per alert: {rows:?}");
}
