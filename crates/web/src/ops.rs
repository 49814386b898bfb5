//! Operational endpoints (`/healthz`, `/readyz`, `/metrics`) and request metrics.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use muster_domain::renewals::{Renewable, days_left};
use std::sync::OnceLock;
use std::time::Instant;

/// The process-wide metrics recorder (one per process, shared by every router).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                // Histograms with buckets aggregate across instances; summaries do not.
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("static bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unreachable: {e}\n"),
        )
            .into_response(),
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    for (pool, size, idle) in state.store.pool_stats() {
        metrics::gauge!("muster_db_pool_connections", "pool" => pool, "state" => "open")
            .set(size as f64);
        metrics::gauge!("muster_db_pool_connections", "pool" => pool, "state" => "idle")
            .set(idle as f64);
    }
    let mut body = state.metrics.render();
    if let Ok(snapshot) = state.store.catalog().await {
        let renewables = Renewable::of_catalog(&snapshot.catalog);
        body.push_str(&renewable_metrics(&renewables, state.store.clock().now()));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Each renewable's expiry and days left as Prometheus gauges, so Prometheus users need
/// no separate exporter to alert on them.
fn renewable_metrics(renewables: &[Renewable], now: jiff::Timestamp) -> String {
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let labels = |r: &Renewable| {
        format!(
            "renewable=\"{}\",kind=\"{}\",owner=\"{}\"",
            escape(&r.id),
            r.kind.as_str(),
            escape(&r.owner)
        )
    };
    let mut out = String::from(
        "# HELP muster_renewable_expiry_timestamp_seconds When the renewable's current item expires (the earliest of its targets').\n\
         # TYPE muster_renewable_expiry_timestamp_seconds gauge\n",
    );
    for r in renewables {
        out.push_str(&format!(
            "muster_renewable_expiry_timestamp_seconds{{{}}} {}\n",
            labels(r),
            r.expires_at.as_second()
        ));
    }
    out.push_str(
        "# HELP muster_renewable_days_left Whole days until the renewable expires (negative once expired).\n\
         # TYPE muster_renewable_days_left gauge\n",
    );
    for r in renewables {
        out.push_str(&format!(
            "muster_renewable_days_left{{{}}} {}\n",
            labels(r),
            days_left(r.expires_at, now)
        ));
    }
    out
}

/// Counts requests and records their latency by route template and status.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("muster_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("muster_http_request_duration_seconds", "method" => method, "route" => route).record(start.elapsed().as_secs_f64());
    response
}
