//! One error type for the HTTP layer, mapped to responses in one place. `/api/v1`
//! answers RFC 9457 `application/problem+json` with an `errors` list of `{path, message}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use muster_domain::catalog::apply::Refusal;
use muster_domain::{FieldError, FieldErrors};
use muster_store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: String,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// The current ETag, on a stale write.
    pub etag: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            detail: detail.into(),
            errors: Vec::new(),
            etag: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }

    /// A 400 naming one field.
    pub fn field(path: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::invalid(
            StatusCode::BAD_REQUEST,
            FieldError::new(path, message).into(),
        )
    }

    pub fn invalid(status: StatusCode, errors: FieldErrors) -> ApiError {
        let detail = match errors.0.len() {
            1 => errors.0[0].to_string(),
            n => format!(
                "{n} problems: {}",
                errors
                    .0
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        ApiError {
            errors: errors.0,
            ..ApiError::new(status, detail)
        }
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "sign in or send an API token as `Authorization: Bearer TOKEN`",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the server log has the details",
        )
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        let detail = refusal.to_string();
        match refusal {
            Refusal::Invalid(errors) => ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors),
            Refusal::NotFound { .. } => ApiError::not_found(detail),
            Refusal::Referenced { by, .. } => {
                let referrers: Vec<&str> = by.0.iter().map(|e| e.path.as_str()).collect();
                let detail = format!("{detail} by {}", referrers.join(", "));
                ApiError {
                    detail,
                    ..ApiError::invalid(StatusCode::CONFLICT, by)
                }
            }
            Refusal::Stale { etag, .. } => ApiError {
                etag: Some(etag),
                ..ApiError::new(StatusCode::PRECONDITION_FAILED, detail)
            },
            Refusal::Exists(_) => ApiError::new(StatusCode::CONFLICT, detail),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Refused(refusal) => refusal.into(),
            StoreError::NotFound(detail) => ApiError::not_found(detail),
            StoreError::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, detail),
            StoreError::Invalid(errors) => {
                ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors)
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> ApiError {
        ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "errors": self.errors,
        });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"muster\""),
            );
        }
        if let Some(etag) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            headers.insert(header::ETAG, etag);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
