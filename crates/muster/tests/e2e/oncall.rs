//! On-call answers over HTTP, on the seed world's schedules.

use crate::common::{Backend, seeded};
use crate::on_both_databases;
use reqwest::StatusCode;
use serde_json::json;

on_both_databases!(
    oncall_answers_follow_layers_overrides_and_dst,
    shifts_are_merged_with_gaps_and_bad_ranges_are_refused
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
