//! Muster's HTTP layer: the JSON API (`api`), server-rendered pages (`pages`) and
//! operational endpoints (`ops`). Handlers are thin: parse, call the store and the
//! domain, render; errors map to HTTP in one place (`error`).

pub mod api;
pub mod auth;
pub mod compat;
pub mod error;
pub mod ops;
pub mod pages;

use api::catalog as catalog_api;
use auth::Caller;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{MethodRouter, delete, get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use muster_domain::catalog::Kind;
use muster_store::Store;
use std::time::Duration;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Base of links in messages and pages, e.g. `https://muster.example.test`.
    pub public_url: String,
    pub metrics: PrometheusHandle,
    /// When this process started (Alertmanager's `uptime`).
    pub started_at: jiff::Timestamp,
    /// The change policy's settings (`[changes]` in the configuration).
    pub changes: muster_domain::changes::Settings,
    /// Probes on demand (`[probes]` in the configuration).
    pub prober: muster_probe::Prober,
}

impl AppState {
    pub fn new(store: Store, public_url: String) -> AppState {
        AppState {
            store,
            public_url: public_url.trim_end_matches('/').to_string(),
            metrics: ops::metrics_handle(),
            started_at: jiff::Timestamp::now(),
            changes: muster_domain::changes::Settings::default(),
            prober: muster_probe::Prober::new(&[], muster_probe::DEFAULT_TIMEOUT)
                .expect("the Mozilla roots load"),
        }
    }
}

/// Routes of one catalog collection, e.g. `/api/v1/services` and `/api/v1/services/{id}`.
fn collection(kind: Kind) -> Router<AppState> {
    collection_with(
        kind,
        get(move |s: State<AppState>, c: Caller, p: api::Params| catalog_api::list(s, c, kind, p)),
        get(
            move |s: State<AppState>, c: Caller, Path(id): Path<String>| {
                catalog_api::get(s, c, kind, id)
            },
        ),
    )
}

/// A catalog collection whose reads (`list`, `one`) are its domain's own, and whose
/// writes (create, merge patch, delete) are the catalog's.
fn collection_with(
    kind: Kind,
    list: MethodRouter<AppState>,
    one: MethodRouter<AppState>,
) -> Router<AppState> {
    let base = format!("/api/v1/{}", kind.section());
    Router::new()
        .route(
            &base,
            list.post(move |s: State<AppState>, c: Caller, b: api::Body| {
                catalog_api::create(s, c, kind, b)
            }),
        )
        .route(
            &format!("{base}/{{id}}"),
            one.patch(
                move |s: State<AppState>,
                      c: Caller,
                      Path(id): Path<String>,
                      h: axum::http::HeaderMap,
                      b: api::Body| { catalog_api::patch(s, c, kind, id, h, b) },
            )
            .delete(
                move |s: State<AppState>,
                      c: Caller,
                      Path(id): Path<String>,
                      h: axum::http::HeaderMap| {
                    catalog_api::delete(s, c, kind, id, h)
                },
            ),
        )
}

async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        error::ApiError::not_found(format!("no API route {}", uri.path())).into_response()
    } else {
        pages::not_found().into_response()
    }
}

async fn method_not_allowed(
    uri: axum::http::Uri,
    method: axum::http::Method,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    if uri.path().starts_with("/api/") {
        error::ApiError::new(
            status,
            format!("{} {} is not supported", method, uri.path()),
        )
        .into_response()
    } else {
        (status, "method not allowed\n").into_response()
    }
}

/// Alertmanager's API and the webhook receivers, served at the root and under the
/// `/i/{key}` prefix (for senders that cannot set a header).
fn intake_routes() -> Router<AppState> {
    use compat::alertmanager as am;
    Router::new()
        .route("/api/v2/alerts", get(am::get_alerts).post(am::post_alerts))
        .route("/api/v2/alerts/groups", get(am::get_groups))
        .route(
            "/api/v2/silences",
            get(am::get_silences).post(am::post_silence),
        )
        .route(
            "/api/v2/silence/{id}",
            get(am::get_silence).delete(am::delete_silence),
        )
        .route("/api/v2/status", get(am::status))
        .route("/api/v2/receivers", get(am::receivers))
        .route("/-/healthy", get(am::healthy))
        .route("/-/ready", get(am::ready))
        .route(
            "/integrations/alertmanager",
            post(compat::webhooks::alertmanager),
        )
        .route("/integrations/grafana", post(compat::webhooks::grafana))
        .layer(DefaultBodyLimit::max(am::MAX_BODY_BYTES))
}

pub fn router(state: AppState) -> Router {
    let mut api = Router::new()
        .route(
            "/api/v1/catalog",
            get(catalog_api::export).merge(
                put(catalog_api::import).layer(DefaultBodyLimit::max(api::MAX_CATALOG_BYTES)),
            ),
        )
        .route("/api/v1/services/{id}/impact", get(catalog_api::impact))
        .route(
            "/api/v1/services/{id}/dependencies",
            get(catalog_api::dependencies),
        )
        .route("/api/v1/schedules/{id}/oncall", get(api::oncall::oncall))
        .route("/api/v1/schedules/{id}/shifts", get(api::oncall::shifts))
        .route(
            "/api/v1/schedules/{id}/overrides",
            get(api::oncall::overrides).post(api::oncall::add_override),
        )
        .route(
            "/api/v1/schedules/{id}/revisions",
            get(api::oncall::revisions),
        )
        .route(
            "/api/v1/schedules/{id}/overrides/{override_id}",
            delete(api::oncall::end_override),
        )
        .route(
            "/api/v1/services/{id}/oncall",
            get(api::oncall::service_oncall),
        )
        .route(
            "/api/v1/people/{id}/calendar-feed",
            post(api::oncall::create_feed).delete(api::oncall::revoke_feed),
        )
        .route("/calendar/{file}", get(api::oncall::feed))
        .route("/api/v1/notifications", get(api::notifications::list))
        .route(
            "/api/v1/people/{id}/test-notification",
            post(api::notifications::test),
        )
        .route(
            "/api/v1/services/{id}/integration-keys",
            get(api::signals::service_keys).post(api::signals::create_service_key),
        )
        .route(
            "/api/v1/services/{id}/integration-keys/{key_id}",
            delete(api::signals::revoke_service_key),
        )
        .route(
            "/api/v1/integration-keys",
            get(api::signals::global_keys).post(api::signals::create_global_key),
        )
        .route(
            "/api/v1/integration-keys/{key_id}",
            delete(api::signals::revoke_global_key),
        )
        .route("/api/v1/alerts", get(api::signals::list))
        .route("/api/v1/alerts/{id}", get(api::signals::get))
        .route(
            "/api/v1/services/{id}/change-events",
            get(api::signals::change_events),
        )
        .route(
            "/api/v1/incidents",
            get(api::incidents::list).post(api::incidents::declare),
        )
        .route("/api/v1/incidents/{id}", get(api::incidents::get))
        .route(
            "/api/v1/changes",
            get(api::changes::list).post(api::changes::create),
        )
        .route("/api/v1/changes/check", post(api::changes::check))
        .route("/api/v1/change-events", post(api::changes::create_event))
        .route("/api/v1/sandbox", get(api::changes::sandbox))
        .route(
            "/api/v1/change-feeds",
            get(api::change_calendar::list_feeds).post(api::change_calendar::create_feed),
        )
        .route(
            "/api/v1/change-feeds/{id}",
            delete(api::change_calendar::revoke_feed),
        )
        .route(
            "/calendar/changes/{file}",
            get(api::change_calendar::serve_feed),
        )
        .route(
            "/api/v1/changes/{id}",
            get(api::changes::get).put(api::changes::update),
        )
        .route(
            "/api/v1/changes/{id}/risk-acceptance",
            post(api::changes::accept_risk),
        )
        .route("/api/v1/changes/{id}/{action}", post(api::changes::act))
        .route("/api/v1/incidents/{id}/{action}", post(api::incidents::act))
        .route(
            "/api/v1/incidents/{id}/changes",
            get(api::changes::near_incident),
        )
        .route(
            "/api/v1/incidents/{id}/caused-by",
            post(api::changes::mark_caused_by),
        )
        .route(
            "/api/v1/incidents/{id}/fixed-by",
            post(api::changes::link_fixed_by),
        )
        .route(
            "/api/v1/reports/change-failure-rate",
            get(api::changes::failure_rate),
        )
        .route(
            "/api/v1/reports",
            get(api::incidents::list_reports).post(api::incidents::create_report),
        )
        .route(
            "/api/v1/reports/{id}/route",
            post(api::incidents::route_report),
        )
        .merge(collection_with(
            Kind::Renewable,
            get(api::renewals::list),
            get(api::renewals::get),
        ))
        .route(
            "/api/v1/renewables/{id}/renewal",
            post(api::renewals::move_renewal),
        )
        .route("/api/v1/renewables/{id}/probe", post(api::renewals::probe))
        .route("/api/v1/artifacts", get(api::renewals::artifacts))
        .route(
            "/api/v1/artifacts/{id}/retire",
            post(api::renewals::retire_artifact),
        )
        .route("/api/v1/audit", get(api::audit::list))
        .route("/api/v1/audit/head", get(api::audit::head));
    for kind in catalog_api::COLLECTIONS {
        api = api.merge(collection(kind));
    }
    if state.store.clock().is_test() {
        api = api.route("/api/v1/test/clock", post(api::clock::set));
    }
    let pagerduty = Router::new()
        .route("/v2/enqueue", post(compat::pagerduty::enqueue))
        .route(
            "/v2/change/enqueue",
            post(compat::pagerduty::change_enqueue),
        )
        .layer(DefaultBodyLimit::max(
            4 * muster_domain::signals::pagerduty::MAX_BODY_BYTES,
        ));
    Router::new()
        .merge(api)
        .merge(intake_routes())
        .nest("/i/{key}", intake_routes())
        .merge(pagerduty)
        .route("/api/openapi.json", get(api::openapi::document))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(pages::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(ops::track))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(60),
        ))
        .with_state(state)
}
