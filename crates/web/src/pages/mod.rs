//! Server-rendered pages: plain HTML forms and links, no JavaScript framework. Every
//! page needs a signed-in session; forms carry the session's CSRF token.

mod ack;
mod alerts;
mod audit;
mod catalog;
mod changes;
mod graph;
mod home;
mod incidents;
pub mod oncall;
mod renewals;
mod session;

use crate::AppState;
use crate::auth::{SESSION_COOKIE, cookie};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use muster_store::auth::Principal;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::page))
        .route("/sign-in", get(session::form).post(session::sign_in))
        .route("/sign-out", post(session::sign_out))
        .route("/services", get(catalog::services))
        .route("/services/{id}", get(catalog::service))
        .route("/teams", get(catalog::teams))
        .route("/teams/{id}", get(catalog::team))
        .route("/people", get(catalog::people))
        .route("/people/{id}", get(catalog::person))
        .route("/organisations", get(catalog::organisations))
        .route("/organisations/{id}", get(catalog::organisation))
        .route("/oncall", get(oncall::overview))
        .route("/schedules/{id}", get(oncall::schedule_page))
        .route("/notifications", get(oncall::notifications))
        .route(
            "/people/{id}/test-notification",
            post(oncall::test_notification),
        )
        .route("/alerts", get(alerts::list))
        .route(
            "/silences",
            get(alerts::silences).post(alerts::create_silence),
        )
        .route("/silences/{id}/expire", post(alerts::expire))
        .route("/services/{id}/intake", get(alerts::intake))
        .route("/services/{id}/integration-keys", post(alerts::create_key))
        .route(
            "/services/{id}/integration-keys/{key_id}/revoke",
            post(alerts::revoke_key),
        )
        .route("/audit", get(audit::page))
        .route("/ack/{token}", get(ack::show).post(ack::confirm))
        .route("/incidents", get(incidents::list))
        .route("/incidents/{id}", get(incidents::detail))
        .route("/incidents/{id}/act", post(incidents::act))
        .route("/incidents/{id}/caused-by", post(incidents::caused_by))
        .route("/incidents/{id}/fixed-by", post(incidents::fixed_by))
        .route(
            "/reports",
            get(incidents::reports).post(incidents::create_report),
        )
        .route("/reports/{id}/route", post(incidents::route))
        .route("/changes", get(changes::calendar))
        .route("/changes/feeds", post(changes::create_feed))
        .route("/changes/new", get(changes::new_form).post(changes::create))
        .route("/changes/check", post(changes::check_fragment))
        .route("/changes/{id}", get(changes::detail))
        .route("/changes/{id}/act", post(changes::act))
        .route("/changes/{id}/risk-acceptance", post(changes::accept_risk))
        .route(
            "/changes/{id}/edit",
            get(changes::edit_form).post(changes::update),
        )
        .route("/sandbox", get(changes::sandbox_fragment))
        .route("/renewals", get(renewals::board))
        .route("/renewals/{id}", get(renewals::renewable))
        .route("/renewals/{id}/move", post(renewals::move_renewal))
        .route("/renewals/{id}/probe", post(renewals::probe))
        .route("/static/muster.css", get(stylesheet))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/muster.css"),
    )
}

/// A signed-in viewer of pages; anyone else is sent to the sign-in page.
pub struct Viewer {
    pub principal: Principal,
    pub csrf: String,
    pub zone: TimeZone,
    pub zone_name: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let to_sign_in = || {
            Redirect::to(&format!(
                "/sign-in?next={}",
                percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
            ))
            .into_response()
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let Some((principal, csrf)) = state
            .store
            .session(id)
            .await
            .map_err(|e| crate::error::ApiError::from(e).into_response())?
        else {
            return Err(to_sign_in());
        };
        // Times are shown in the viewer's own timezone when they are a catalog person.
        let zone_name = match &principal.person {
            Some(person) => state
                .store
                .catalog()
                .await
                .ok()
                .and_then(|s| s.catalog.person(person).map(|p| p.timezone.clone())),
            None => None,
        }
        .unwrap_or_else(|| "UTC".to_string());
        let zone = TimeZone::get(&zone_name).unwrap_or(TimeZone::UTC);
        Ok(Viewer {
            principal,
            csrf,
            zone,
            zone_name,
        })
    }
}

/// The navigation bar: the domains built so far, and those to come.
pub struct Nav {
    pub items: Vec<NavItem>,
    pub user: String,
    pub role: String,
    pub zone: String,
    pub csrf: String,
}

pub struct NavItem {
    pub label: &'static str,
    pub href: &'static str,
    pub ready: bool,
    pub current: bool,
}

/// A page, or a page (or problem) saying why not.
pub type PageResult = Result<Response, Response>;

/// A failure below the page (the store), answered as the API would.
pub fn fail(e: impl Into<crate::error::ApiError>) -> Response {
    e.into().into_response()
}

/// A form's fields as the JSON body of the API function the page calls, so pages
/// act through the API's own checks.
pub fn api_body(value: serde_json::Value) -> crate::api::Body {
    crate::api::Body {
        bytes: serde_json::to_vec(&value).expect("JSON serialises").into(),
        format: muster_domain::catalog::parse::Format::Json,
    }
}

/// A form that carries only the session's CSRF token (a button).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

impl Viewer {
    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), crate::error::ApiError> {
        if sent == self.csrf {
            return Ok(());
        }
        Err(crate::error::ApiError::new(
            StatusCode::FORBIDDEN,
            "The form's CSRF token does not match your session: reload the page and try again.",
        ))
    }

    /// The viewer as an API caller, so pages act through the same checks as the API.
    pub fn caller(&self) -> crate::auth::Caller {
        crate::auth::Caller {
            principal: self.principal.clone(),
            csrf_token: Some(self.csrf.clone()),
            reason: None,
        }
    }

    pub fn nav(&self, current: &str) -> Nav {
        let items = [
            ("Overview", "/", true),
            ("Services", "/services", true),
            ("Teams", "/teams", true),
            ("People", "/people", true),
            ("Organisations", "/organisations", true),
            ("On call", "/oncall", true),
            ("Alerts", "/alerts", true),
            ("Incidents", "/incidents", true),
            ("Changes", "/changes", true),
            ("Renewals", "/renewals", true),
            ("Audit", "/audit", true),
        ]
        .into_iter()
        .map(|(label, href, ready)| NavItem {
            label,
            href,
            ready,
            current: href == current,
        })
        .collect();
        Nav {
            items,
            user: self.principal.label.trim_start_matches("user:").to_string(),
            role: self.principal.grant.role.to_string(),
            zone: self.zone_name.clone(),
            csrf: self.csrf.clone(),
        }
    }

    pub fn time(&self, at: Timestamp, now: Timestamp) -> TimeView {
        let zoned = at.to_zoned(self.zone.clone());
        TimeView {
            iso: at.to_string(),
            local: zoned.strftime("%Y-%m-%d %H:%M %Z").to_string(),
            relative: relative(at, now),
        }
    }
}

/// An instant as shown: absolute in the viewer's zone (named), and relative to now.
pub struct TimeView {
    pub iso: String,
    pub local: String,
    pub relative: String,
}

/// "in 3 h", "9 days ago", "just now".
pub fn relative(at: Timestamp, now: Timestamp) -> String {
    let seconds = at.as_second() - now.as_second();
    let magnitude = seconds.unsigned_abs();
    let amount = match magnitude {
        0..=59 => return "just now".into(),
        60..=3599 => format!("{} min", magnitude / 60),
        3600..=86_399 => format!("{} h", magnitude / 3600),
        _ => {
            let days = magnitude / 86_400;
            format!("{days} day{}", if days == 1 { "" } else { "s" })
        }
    };
    if seconds > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "message.html")]
struct MessagePage {
    nav: Nav,
    title: String,
    message: String,
}

/// A page saying what was not found, inside the layout.
pub fn missing(viewer: &Viewer, what: String) -> Response {
    message(viewer, StatusCode::NOT_FOUND, "Not found", what)
}

/// The problems of a refused request, each as "field: message" (else its detail).
pub fn problems(e: &crate::error::ApiError) -> Vec<String> {
    if e.errors.is_empty() {
        vec![e.detail.clone()]
    } else {
        e.errors.iter().map(ToString::to_string).collect()
    }
}

/// A page saying why a request was refused (e.g. a malformed filter), inside the layout.
pub fn refused(viewer: &Viewer, error: crate::error::ApiError) -> Response {
    message(viewer, error.status, "Cannot show this", error.detail)
}

pub fn message(viewer: &Viewer, status: StatusCode, title: &str, message: String) -> Response {
    let page = MessagePage {
        nav: viewer.nav(""),
        title: title.into(),
        message,
    };
    (status, page).into_response()
}

pub fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Not found · Muster</title><h1>Not found</h1><p><a href=\"/\">Muster overview</a></p>\n",
    )
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn relative_times_read_naturally() {
        let now: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(relative(at("2026-11-23T13:00:00Z"), now), "in 3 h");
        assert_eq!(relative(at("2026-11-14T10:00:00Z"), now), "9 days ago");
        assert_eq!(relative(at("2026-11-23T09:59:30Z"), now), "just now");
        assert_eq!(relative(at("2026-11-24T10:00:00Z"), now), "in 1 day");
        assert_eq!(relative(at("2026-11-23T09:45:00Z"), now), "15 min ago");
    }
}
