//! On-call answers over HTTP, on the seed world's schedules.

use crate::common::{Backend, SEED_WORLD, problems, seeded, send};
use crate::on_both_databases;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_databases!(
    oncall_answers_follow_layers_overrides_and_dst,
    shifts_are_merged_with_gaps_and_bad_ranges_are_refused,
    run_time_overrides_apply_survive_imports_and_end_without_rewriting_history,
    a_service_answers_who_its_first_page_reaches,
    calendar_feeds_are_valid_icalendar_and_revocable,
    editing_a_schedule_keeps_its_past_and_can_be_scheduled
);

async fn oncall_answers_follow_layers_overrides_and_dst(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (status, body) = server
        .get("/api/v1/schedules/service-desk-primary/oncall?at=2026-11-04T12:00:00Z")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["oncall"],
        json!({"person": "tara", "layer": "weekday-office-hours", "override": null, "until": "2026-11-04T17:30:00Z"})
    );
    let (_, xmas) = server
        .get("/api/v1/schedules/platform-primary/oncall?at=2026-12-25T12:00:00%2B01:00")
        .await;
    assert_eq!(xmas["oncall"]["person"], "pia");
    assert_eq!(xmas["oncall"]["override"], "xmas-swap");
    assert_eq!(
        xmas["oncall"]["until"], "2026-12-26T23:00:00Z",
        "the override ends at midnight Stockholm"
    );
    // Denver's weekly Tuesday 10:00 handoff moves with DST: 17:00Z in winter, 16:00Z in summer.
    let (_, winter) = server
        .get("/api/v1/schedules/contact-centre-primary/oncall?at=2026-11-10T16:59:00Z")
        .await;
    let (_, winter_after) = server
        .get("/api/v1/schedules/contact-centre-primary/oncall?at=2026-11-10T17:00:00Z")
        .await;
    assert_eq!(
        (
            winter["oncall"]["person"].as_str(),
            winter_after["oncall"]["person"].as_str()
        ),
        (Some("rodney"), Some("rita"))
    );
    let (_, summer) = server
        .get("/api/v1/schedules/contact-centre-primary/oncall?at=2027-06-01T16:00:00Z")
        .await;
    assert_eq!(summer["oncall"]["until"], "2027-06-08T16:00:00Z");
    // Without `at`, the server's clock decides (the test clock starts 2026-11-23T10:00Z).
    let (_, now) = server
        .get("/api/v1/schedules/print-platform-primary/oncall")
        .await;
    assert_eq!(now["at"], "2026-11-23T10:00:00Z");
    assert_eq!(now["oncall"]["person"], "dana");
    let (_, before) = server
        .get("/api/v1/schedules/print-platform-primary/oncall?at=2026-10-01T00:00:00Z")
        .await;
    assert_eq!(
        before["oncall"],
        json!(null),
        "nobody before the first shift"
    );
}

async fn shifts_are_merged_with_gaps_and_bad_ranges_are_refused(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (status, body) = server.get("/api/v1/schedules/print-platform-primary/shifts?from=2026-11-01T00:00:00Z&to=2026-11-17T00:00:00Z").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["gaps"],
        json!([{"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T09:00:00Z"}])
    );
    assert_eq!(
        body["shifts"],
        json!([
            {"person": "dana", "start": "2026-11-02T09:00:00Z", "end": "2026-11-09T09:00:00Z"},
            {"person": "eli", "start": "2026-11-09T09:00:00Z", "end": "2026-11-16T09:00:00Z"},
            {"person": "fran", "start": "2026-11-16T09:00:00Z", "end": "2026-11-17T00:00:00Z"},
        ])
    );
    for (query, field) in [
        ("from=2026-11-01T00:00:00Z", "to"),
        ("to=2026-11-01T00:00:00Z", "from"),
        ("from=yesterday&to=2026-11-01T00:00:00Z", "from"),
        ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "to"),
        ("from=2026-01-01T00:00:00Z&to=2028-01-01T00:00:00Z", "to"),
    ] {
        let (status, body) = server
            .get(&format!(
                "/api/v1/schedules/print-platform-primary/shifts?{query}"
            ))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["errors"][0]["path"], field, "{query}: {body}");
    }
    let (status, body) = server.get("/api/v1/schedules/nope/oncall").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["detail"].as_str().unwrap().contains("\"nope\""));
}

async fn run_time_overrides_apply_survive_imports_and_end_without_rewriting_history(
    backend: Backend,
) {
    let (db, server) = seeded(backend).await;
    let overrides = "/api/v1/schedules/print-platform-primary/overrides";
    // The test clock is at Monday 2026-11-23T10:00Z: dana's week.
    let (status, swap) = server
        .post(
            overrides,
            json!({"person": "paul", "replaces": "dana",
                   "from": "2026-11-24T09:00:00Z", "to": "2026-11-25T09:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{swap}");
    let swap_id = swap["id"].as_str().unwrap().to_string();
    assert!(swap_id.starts_with("ovr-"));
    assert_eq!(swap["created_by"], "token:admin");

    let oncall_at = |at: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server
                .get(&format!(
                    "/api/v1/schedules/print-platform-primary/oncall?at={at}"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["oncall"].clone()
        }
    };
    let during = oncall_at("2026-11-24T12:00:00Z").await;
    assert_eq!(during["person"], "paul");
    assert_eq!(during["override"], swap_id.as_str());
    assert_eq!(during["until"], "2026-11-25T09:00:00Z");
    let (_, shifts) = server
        .get("/api/v1/schedules/print-platform-primary/shifts?from=2026-11-24T00:00:00Z&to=2026-11-26T00:00:00Z")
        .await;
    assert_eq!(
        shifts["shifts"],
        json!([
            {"person": "dana", "start": "2026-11-24T00:00:00Z", "end": "2026-11-24T09:00:00Z"},
            {"person": "paul", "start": "2026-11-24T09:00:00Z", "end": "2026-11-25T09:00:00Z"},
            {"person": "dana", "start": "2026-11-25T09:00:00Z", "end": "2026-11-26T00:00:00Z"}
        ])
    );

    // A catalog import (even pruning) leaves run-time overrides alone.
    let (status, body) = server
        .put_yaml("/api/v1/catalog?prune=true", SEED_WORLD)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(oncall_at("2026-11-24T12:00:00Z").await["person"], "paul");

    // Cover under way now: ending it cuts it short to now, keeping what happened.
    let (status, cover) = server
        .post(
            overrides,
            json!({"person": "eli", "from": "2026-11-23T09:00:00Z", "to": "2026-11-23T12:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{cover}");
    let cover_url = format!("{overrides}/{}", cover["id"].as_str().unwrap());
    assert_eq!(
        server
            .get("/api/v1/schedules/print-platform-primary/oncall")
            .await
            .1["oncall"]["person"],
        "eli"
    );
    let (status, cut) = send(server.request(Method::DELETE, &cover_url)).await;
    assert_eq!(status, StatusCode::OK, "{cut}");
    assert_eq!(cut["to"], "2026-11-23T10:00:00Z");
    assert_eq!(
        oncall_at("2026-11-23T09:30:00Z").await["person"],
        "eli",
        "the past stays"
    );
    assert_eq!(
        server
            .get("/api/v1/schedules/print-platform-primary/oncall")
            .await
            .1["oncall"]["person"],
        "dana"
    );
    // Over now: it stays on record.
    let (status, body) = send(server.request(Method::DELETE, &cover_url)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Not started: removed.
    let (status, _) = send(server.request(Method::DELETE, &format!("{overrides}/{swap_id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(oncall_at("2026-11-24T12:00:00Z").await["person"], "dana");
    let (status, _) = send(server.request(Method::DELETE, &format!("{overrides}/{swap_id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The catalog's own overrides are changed in the catalog.
    let (status, body) = send(server.request(
        Method::DELETE,
        "/api/v1/schedules/platform-primary/overrides/xmas-swap",
    ))
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, listed) = server
        .get("/api/v1/schedules/platform-primary/overrides?from=2026-11-01T00:00:00Z")
        .await;
    assert_eq!(listed["items"][0]["id"], "xmas-swap");
    assert_eq!(listed["items"][0]["source"], "catalog");
    let (_, listed) = server
        .get(&format!("{overrides}?from=2026-11-23T00:00:00Z"))
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["source"], "api");

    // Bad input: every field named, nothing stored.
    let (status, body) = server
        .post(
            overrides,
            json!({"person": "ghost", "replaces": "sam", "from": "soon", "to": "2026-11-24T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let named: Vec<String> = problems(&body)
        .iter()
        .map(|p| p.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(named, ["person", "replaces", "from"], "{body}");
    let (status, body) = server
        .post(
            overrides,
            json!({"person": "paul", "from": "2026-11-25T00:00:00Z", "to": "2026-11-24T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["path"], "to");
    let (status, body) = send(
        server
            .request(Method::POST, overrides)
            .header("content-type", "application/json")
            .body("{\"person\": "),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = server
        .post(
            "/api/v1/schedules/nope/overrides",
            json!({"person": "paul", "from": "2026-11-24T00:00:00Z", "to": "2026-11-25T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = server
        .get(&format!("{overrides}?from=2026-11-01T00:00:00Z"))
        .await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "nothing half-applied: {listed}"
    );

    // A responder for one team overrides that team's schedules only; a viewer none.
    let scoped = db.token(
        "print-responder",
        "responder",
        &["--team", "print-platform"],
    );
    let body =
        json!({"person": "paul", "from": "2026-11-30T00:00:00Z", "to": "2026-12-01T00:00:00Z"});
    let (status, _) = send(
        server
            .as_token(Method::POST, overrides, &scoped)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, denied) = send(
        server
            .as_token(
                Method::POST,
                "/api/v1/schedules/service-desk-primary/overrides",
                &scoped,
            )
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    let viewer = db.token("viewer", "viewer", &[]);
    let (status, _) = send(
        server
            .as_token(Method::POST, overrides, &viewer)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Every change is on the audit trail.
    let (_, audit) = server.get("/api/v1/audit?limit=1000").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("override."))
        .collect();
    let count = |action: &str| actions.iter().filter(|a| **a == action).count();
    assert_eq!(
        (count("override.create"), count("override.end")),
        (3, 2),
        "{actions:?}"
    );
}

async fn a_service_answers_who_its_first_page_reaches(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (status, body) = server
        .get("/api/v1/services/forms-printing/oncall?at=2026-11-24T12:00:00Z")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["team"], "print-platform");
    assert_eq!(body["escalation_policy"], "print-platform");
    assert_eq!(body["step"], 0);
    assert_eq!(
        body["people"],
        json!([{"id": "dana", "name": "Dana Okafor"}])
    );
    // An override moves the answer.
    server
        .post(
            "/api/v1/schedules/print-platform-primary/overrides",
            json!({"person": "fran", "from": "2026-11-24T00:00:00Z", "to": "2026-11-25T00:00:00Z"}),
        )
        .await;
    let (_, body) = server
        .get("/api/v1/services/forms-printing/oncall?at=2026-11-24T12:00:00Z")
        .await;
    assert_eq!(body["people"][0]["id"], "fran");
    // Without `at`, the server's clock.
    let (_, now) = server.get("/api/v1/services/forms-printing/oncall").await;
    assert_eq!(now["at"], "2026-11-23T10:00:00Z");
    assert_eq!(now["people"][0]["id"], "dana");
    // A team without a policy is paged whole.
    let (_, helpdesk) = server.get("/api/v1/services/helpdesk-portal/oncall").await;
    assert_eq!(helpdesk["escalation_policy"], json!(null));
    assert_eq!(
        helpdesk["people"],
        json!([{"id": "hal", "name": "Hal Burke"}, {"id": "hope", "name": "Hope Adeyemi"}])
    );
    let (status, _) = server.get("/api/v1/services/nope/oncall").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = server
        .get("/api/v1/services/forms-printing/oncall?at=noon")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["path"], "at");
}

/// Fetches a calendar feed without credentials (its link is the credential), checks it
/// is served as iCalendar, and parses it (see [`parse_ical`]).
pub(crate) async fn calendar_events(url: &str) -> Vec<Vec<String>> {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/calendar")
    );
    parse_ical(&response.text().await.unwrap())
}

/// Parses iCalendar text with Python's `icalendar` (a real RFC 5545 parser) and returns
/// the events as `[summary, start, end, uid]`.
pub(crate) fn parse_ical(text: &str) -> Vec<Vec<String>> {
    use std::io::Write;
    let script = r#"
import json, sys, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
assert cal.name == "VCALENDAR" and str(cal["VERSION"]) == "2.0" and "PRODID" in cal
events = []
for e in cal.walk("VEVENT"):
    for required in ("UID", "DTSTAMP", "DTSTART", "DTEND"):
        assert required in e, required
    events.append([str(e["SUMMARY"]), e.decoded("DTSTART").isoformat(), e.decoded("DTEND").isoformat(), str(e["UID"])])
print(json.dumps(events))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (icalendar from PyPI: scripts/services.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not valid iCalendar: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn calendar_feeds_are_valid_icalendar_and_revocable(backend: Backend) {
    let (db, server) = seeded(backend).await;
    let (status, created) = server
        .post("/api/v1/people/dana/calendar-feed", json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let url = created["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/calendar/cal_", server.base)),
        "{url}"
    );

    // No credentials: the secret link is the credential.
    let events = calendar_events(&url).await;
    // Dana's weeks (every third Monday 09:00 London) over 90 days, the current one whole.
    assert_eq!(
        events[0][..3],
        [
            "On call: print-platform-primary",
            "2026-11-23T09:00:00+00:00",
            "2026-11-30T09:00:00+00:00"
        ]
    );
    assert_eq!(events[1][1], "2026-12-14T09:00:00+00:00");
    assert_eq!(events.len(), 5, "{events:?}");

    // A new link revokes the old one; deleting revokes the feed.
    let (_, again) = server
        .post("/api/v1/people/dana/calendar-feed", json!({}))
        .await;
    let second = again["url"].as_str().unwrap().to_string();
    assert_eq!(
        reqwest::get(&url).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reqwest::get(&second).await.unwrap().status(),
        StatusCode::OK
    );
    let (status, _) =
        send(server.request(Method::DELETE, "/api/v1/people/dana/calendar-feed")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        reqwest::get(&second).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let (status, _) =
        send(server.request(Method::DELETE, "/api/v1/people/dana/calendar-feed")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in ["garbage.ics", "cal_nope.ics", "cal_nope"] {
        let response = reqwest::get(format!("{}/calendar/{bad}", server.base))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{bad}");
    }

    // People make their own links; others need to be editors.
    let own = db.token("dana-phone", "viewer", &["--person", "dana"]);
    let other = db.token("eli-phone", "viewer", &["--person", "eli"]);
    let (status, _) =
        send(server.as_token(Method::POST, "/api/v1/people/dana/calendar-feed", &own)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) =
        send(server.as_token(Method::POST, "/api/v1/people/dana/calendar-feed", &other)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = server
        .post("/api/v1/people/ghost/calendar-feed", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn weekly_layer(members: &[&str]) -> serde_json::Value {
    json!([{"name": "weekly", "rotation": "weekly", "handoff": "Mon 09:00",
            "start": "2026-11-02", "members": members}])
}

async fn editing_a_schedule_keeps_its_past_and_can_be_scheduled(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let url = "/api/v1/schedules/print-platform-primary";
    let who = |at: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server.get(&format!("{url}/oncall?at={at}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["oncall"]["person"].clone()
        }
    };
    let patch = |body: serde_json::Value| send(server.request(Method::PATCH, url).json(&body));
    let revisions = || async {
        let (status, body) = server.get(&format!("{url}/revisions")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().unwrap().clone()
    };
    assert_eq!(revisions().await.len(), 1, "never edited: one definition");
    assert_eq!(who("2026-11-23T10:30:00Z").await, "dana");

    // An hour later the rotation is reordered: from now on, not in the past.
    server
        .post("/api/v1/test/clock", json!({"advance": "1h"}))
        .await;
    let (status, body) = patch(json!({"layers": weekly_layer(&["eli", "fran", "dana"])})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        who("2026-11-03T12:00:00Z").await,
        "dana",
        "the first week stays"
    );
    assert_eq!(
        who("2026-11-23T10:30:00Z").await,
        "dana",
        "this morning stays"
    );
    assert_eq!(who("2026-11-23T11:00:00Z").await, "eli");
    assert_eq!(who("2026-11-30T12:00:00Z").await, "fran");
    let (_, today) = server
        .get(&format!(
            "{url}/shifts?from=2026-11-23T00:00:00Z&to=2026-11-24T00:00:00Z"
        ))
        .await;
    assert_eq!(
        today["shifts"],
        json!([
            {"person": "fran", "start": "2026-11-23T00:00:00Z", "end": "2026-11-23T09:00:00Z"},
            {"person": "dana", "start": "2026-11-23T09:00:00Z", "end": "2026-11-23T11:00:00Z"},
            {"person": "eli", "start": "2026-11-23T11:00:00Z", "end": "2026-11-24T00:00:00Z"}
        ])
    );
    let items = revisions().await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["effective_from"], json!(null));
    assert_eq!(
        items[0]["layers"][0]["members"],
        json!(["dana", "eli", "fran"])
    );
    assert_eq!(items[1]["effective_from"], "2026-11-23T11:00:00Z");

    // A change planned for next Monday's handoff.
    let (status, body) = patch(json!({"effective_from": "2026-11-30T09:00:00Z",
                                      "layers": weekly_layer(&["fran"])}))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(who("2026-11-30T08:59:00Z").await, "eli");
    assert_eq!(who("2026-11-30T09:00:00Z").await, "fran");
    assert_eq!(who("2026-12-07T09:00:00Z").await, "fran");
    assert_eq!(revisions().await.len(), 3);
    // Overrides are checked against the definitions in force during them.
    let overrides = format!("{url}/overrides");
    let swap = |from: &str, to: &str| {
        server.post(
            &overrides,
            json!({"person": "paul", "replaces": "eli", "from": from, "to": to}),
        )
    };
    let (status, body) = swap("2026-11-24T09:00:00Z", "2026-11-25T09:00:00Z").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = swap("2026-12-01T09:00:00Z", "2026-12-02T09:00:00Z").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(problems(&body)[0].contains("is in no layer"), "{body}");

    // One declared in the past would rewrite history: refused, nothing changed.
    let (status, body) = patch(json!({"effective_from": "2026-11-01T00:00:00Z",
                                      "layers": weekly_layer(&["dana"])}))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let found = problems(&body);
    assert!(
        found[0].starts_with("schedules[id=print-platform-primary].effective_from: 2026-11-01T00:00:00Z is in the past"),
        "{found:?}"
    );
    assert_eq!(revisions().await.len(), 3);
    let (_, stored) = server.get(url).await;
    assert_eq!(stored["layers"][0]["members"], json!(["fran"]));

    // A change an hour later replaces the plan that was not yet in force.
    server
        .post("/api/v1/test/clock", json!({"advance": "1h"}))
        .await;
    let (status, body) =
        patch(json!({"effective_from": null, "layers": weekly_layer(&["dana", "eli"])})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = revisions().await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[2]["layers"][0]["members"], json!(["dana", "eli"]));
    assert_eq!(items[1]["effective_from"], "2026-11-23T11:00:00Z");
    assert_eq!(items[2]["effective_from"], "2026-11-23T12:00:00Z");
    assert_eq!(who("2026-11-23T10:30:00Z").await, "dana");
    assert_eq!(who("2026-11-23T11:30:00Z").await, "eli");
    assert_eq!(
        who("2026-11-23T12:30:00Z").await,
        "eli",
        "week 3 of dana, eli"
    );
    assert_eq!(
        who("2026-11-30T09:00:00Z").await,
        "dana",
        "not fran: that plan is gone"
    );

    // Once a planned change is in force, its instant stays in the document; a later
    // edit that leaves it alone takes effect now rather than being refused.
    let (status, body) = patch(json!({"effective_from": "2026-11-23T13:00:00Z",
                                      "layers": weekly_layer(&["eli", "dana"])}))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server
        .post("/api/v1/test/clock", json!({"advance": "2h"}))
        .await;
    let (status, body) = patch(json!({"layers": weekly_layer(&["dana", "eli"])})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = revisions().await;
    assert_eq!(items.len(), 5, "{items:?}");
    assert_eq!(items[4]["effective_from"], "2026-11-23T14:00:00Z");

    // Other edits record nothing.
    let (status, body) = patch(json!({"overrides": [{"person": "paul",
        "from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"}]}))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(revisions().await.len(), 5);

    // Deleting a schedule deletes its history: one made again starts afresh.
    let fresh = json!({"id": "night-watch", "timezone": "UTC",
                       "layers": [{"name": "nights", "rotation": "daily", "handoff": "20:00",
                                   "start": "2026-11-01", "members": ["hal"]}]});
    let (status, body) = server.post("/api/v1/schedules", fresh.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let night = "/api/v1/schedules/night-watch";
    let (status, _) = send(
        server
            .request(Method::PATCH, night)
            .json(&json!({"timezone": "Asia/Tokyo"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, history) = server.get(&format!("{night}/revisions")).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 2);
    let (status, _) = send(server.request(Method::DELETE, night)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server.post("/api/v1/schedules", fresh).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, history) = server.get(&format!("{night}/revisions")).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    assert_eq!(history["items"][0]["timezone"], "UTC");
    let (status, body) = server.get("/api/v1/schedules/nope/revisions").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
