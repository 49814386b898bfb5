//! Who is calling: an API token (`Authorization: Bearer`) or a signed-in session
//! (cookie, with a CSRF token on every unsafe request), and what they may do.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use muster_domain::audit::Actor;
use muster_domain::auth::Permission;
use muster_store::auth::Principal;

pub const SESSION_COOKIE: &str = "muster_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const REASON_HEADER: &str = "x-muster-reason";
const MAX_REASON_CHARS: usize = 1000;

/// An authenticated caller of `/api/v1` or a page.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The session's CSRF token when signed in through the UI.
    pub csrf_token: Option<String>,
    /// Why, from `X-Muster-Reason`.
    pub reason: Option<String>,
}

impl Caller {
    /// Refuses with 403 unless the caller may do `permission` on something owned by
    /// `owner_team`.
    pub fn require(&self, permission: Permission, owner_team: Option<&str>) -> ApiResult<()> {
        if self.principal.grant.allows(permission, owner_team) {
            return Ok(());
        }
        let who = format!(
            "{} has role {}",
            self.principal.label, self.principal.grant.role
        );
        let what = permission.describe();
        // Say why: the role itself, or a team scope that does not reach this entity.
        let detail = match (&self.principal.grant.team, owner_team) {
            (Some(team), _) if self.principal.grant.allows(permission, Some(team)) => {
                match owner_team {
                    Some(owner) => {
                        format!("{who} for team {team} only; this belongs to team {owner}")
                    }
                    None => format!(
                        "{who} for team {team} only; this needs a role not limited to one team"
                    ),
                }
            }
            (Some(team), _) => format!("{who} for team {team}, which may not {what}"),
            (None, _) => format!("{who}, which may not {what}"),
        };
        Err(ApiError::forbidden(detail))
    }

    /// The actor the audit records for this caller.
    pub fn actor(&self) -> Actor {
        Actor {
            label: self.principal.label.clone(),
            person: self.principal.person.clone(),
            on_behalf_of: None,
            reason: self.reason.clone(),
        }
    }
}

pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn reason(parts: &Parts) -> ApiResult<Option<String>> {
    let Some(value) = parts.headers.get(REASON_HEADER) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::field(
            "X-Muster-Reason",
            "must be visible ASCII; percent-encode other text",
        )
    })?;
    let text = percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .trim()
        .to_string();
    if text.chars().any(char::is_control) {
        return Err(ApiError::field(
            "X-Muster-Reason",
            "must not contain control characters (newlines, escapes, NUL)",
        ));
    }
    if text.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::field(
            "X-Muster-Reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok((!text.is_empty()).then_some(text))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let reason = reason(parts)?;
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    ApiError::new(
                        axum::http::StatusCode::UNAUTHORIZED,
                        "the Authorization header must be `Bearer TOKEN`",
                    )
                })?;
            let principal = state
                .store
                .authenticate_token(token.trim())
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        axum::http::StatusCode::UNAUTHORIZED,
                        "the API token is unknown or revoked",
                    )
                })?;
            return Ok(Caller {
                principal,
                csrf_token: None,
                reason,
            });
        }
        if let Some(session) = cookie(&parts.headers, SESSION_COOKIE)
            && let Some((principal, csrf)) = state.store.session(session).await?
        {
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !safe && sent != Some(csrf.as_str()) {
                return Err(ApiError::forbidden(
                    "a signed-in request that changes something must carry the session's CSRF token in X-CSRF-Token",
                ));
            }
            return Ok(Caller {
                principal,
                csrf_token: Some(csrf),
                reason,
            });
        }
        Err(ApiError::unauthorized())
    }
}
