//! The JSON API under `/api/v1`: thin handlers that parse, call the domain through the
//! store, and render. Conventions every domain follows live here: pagination, request
//! bodies, ETags.

pub mod audit;
pub mod catalog;
pub mod change_calendar;
pub mod changes;
pub mod clock;
pub mod incidents;
pub mod notifications;
pub mod oncall;
pub mod openapi;
pub mod renewals;
pub mod signals;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use muster_domain::FieldErrors;
use muster_domain::catalog::Catalog;
use muster_domain::catalog::parse::{Format, parse_value};
use serde_json::Value;
use std::collections::HashMap;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// Largest body for ordinary API requests; the whole-catalog PUT allows more.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_CATALOG_BYTES: usize = 32 * 1024 * 1024;

/// Query parameters, parsed by hand so every bad value is a 400 naming the parameter.
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn from_query(query: Option<&str>) -> Params {
        Params(Params::pairs(query).into_iter().collect())
    }

    /// Every decoded `name=value` pair in order, repeated names included.
    pub fn pairs(query: Option<&str>) -> Vec<(String, String)> {
        query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(&s.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                };
                (decode(k), decode(v))
            })
            .collect()
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Refuses a parameter not in `known`, so a misspelt filter is not silently ignored.
    pub fn only(&self, known: &[&str]) -> ApiResult<()> {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        match names
            .into_iter()
            .find(|name| !known.contains(&name.as_str()))
        {
            Some(name) => Err(ApiError::field(
                name,
                format!("is not a parameter here: use {}", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    pub fn limit(&self) -> ApiResult<usize> {
        match self.text("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(ApiError::field(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}, got {text:?}"),
                )),
            },
        }
    }

    pub fn bool(&self, name: &str) -> ApiResult<bool> {
        match self.text(name) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::field(
                name,
                format!("must be true or false, got {other:?}"),
            )),
        }
    }

    /// `cursor`: the `next_cursor` of the previous page (a row id or sequence number).
    pub fn cursor(&self) -> ApiResult<Option<i64>> {
        self.text("cursor")
            .map(|c| {
                c.parse::<i64>().map_err(|_| {
                    ApiError::field(
                        "cursor",
                        format!("{c:?} is not a cursor from a previous page"),
                    )
                })
            })
            .transpose()
    }

    pub fn instant(&self, name: &str) -> ApiResult<Option<jiff::Timestamp>> {
        self.text(name)
            .map(|t| {
                t.parse().map_err(|_| {
                    ApiError::field(
                        name,
                        format!("{t:?} is not an RFC 3339 instant (e.g. 2026-11-23T10:00:00Z)"),
                    )
                })
            })
            .transpose()
    }
}

impl Params {
    /// An instant parameter, the server's clock when absent.
    pub fn instant_or_now(
        &self,
        name: &str,
        state: &crate::AppState,
    ) -> ApiResult<jiff::Timestamp> {
        Ok(self
            .instant(name)?
            .unwrap_or_else(|| state.store.clock().now()))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Params::from_query(parts.uri.query()))
    }
}

/// A page of a list: `{"items": [...], "next_cursor": …}`.
pub fn page<T: serde::Serialize>(items: Vec<T>, next_cursor: Option<String>) -> Value {
    serde_json::json!({ "items": items, "next_cursor": next_cursor })
}

/// A request body read whole, with the size limit answered as a clear 413.
pub struct Body {
    pub bytes: Bytes,
    pub format: Format,
}

impl Body {
    pub fn text(&self) -> ApiResult<&str> {
        std::str::from_utf8(&self.bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))
    }

    /// The body read as the object `T`: a syntax error is a `400`; valid JSON of
    /// another shape (not an object; a missing, unknown or mistyped field) is a `422`
    /// naming the field.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> ApiResult<T> {
        let value = self.value()?;
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body must be a JSON object",
            ));
        }
        muster_domain::catalog::parse::from_value(value)
            .map_err(|e| ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, e))
    }

    /// As [`Body::parse`], with `T`'s default for an empty body.
    pub fn parse_or_default<T: serde::de::DeserializeOwned + Default>(&self) -> ApiResult<T> {
        if self.bytes.is_empty() {
            Ok(T::default())
        } else {
            self.parse()
        }
    }

    /// The body as JSON (or YAML, by `Content-Type`), naming the position of a syntax
    /// error.
    pub fn value(&self) -> ApiResult<Value> {
        if self.bytes.is_empty() {
            return Err(ApiError::bad_request("the request body is empty"));
        }
        parse_value(self.text()?, self.format)
            .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e))
    }
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is too large: the limit is {} MiB ({} MiB for PUT /api/v1/catalog)",
                        MAX_BODY_BYTES >> 20,
                        MAX_CATALOG_BYTES >> 20
                    ),
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {rejection}"))
            }
        })?;
        Ok(Body {
            bytes,
            format: Format::from_content_type(content_type.as_deref()),
        })
    }
}

/// Who acts: the caller's person when it has one (a user or token linked to a person
/// acts only as that person: `by` may name no one else); otherwise `by` when given (a
/// person in the catalog: a shared token says for whom it acts, like PagerDuty's
/// `From` header, and the audit trail records the token), else the caller.
pub(crate) fn acting_person(
    catalog: &Catalog,
    caller: &Caller,
    by: Option<&str>,
    errors: &mut FieldErrors,
) -> String {
    if let (Some(id), Some(own)) = (by, caller.principal.person.as_deref())
        && id != own
    {
        errors.push(
            "by",
            format!(
                "you act as {own:?}: a user or token linked to a person acts only as that person"
            ),
        );
        return String::new();
    }
    match by {
        Some(id) if catalog.person(id).is_some() => id.to_string(),
        Some(id) => {
            errors.push("by", format!("no person with id {id:?}"));
            String::new()
        }
        None => caller
            .principal
            .person
            .clone()
            .unwrap_or_else(|| caller.principal.label.clone()),
    }
}

/// As [`bounded`], for text shown as one line (a title): line breaks, tabs and other
/// control characters are refused, so it cannot add lines to the messages that carry it.
pub(crate) fn bounded_line(
    errors: &mut FieldErrors,
    field: &str,
    text: &str,
    max: usize,
    required: bool,
) {
    let before = errors.0.len();
    bounded(errors, field, text, max, required);
    if errors.0.len() == before && text.chars().any(char::is_control) {
        errors.push(
            field,
            "must be one line: no line breaks, tabs or control characters",
        );
    }
}

pub(crate) fn bounded(
    errors: &mut FieldErrors,
    field: &str,
    text: &str,
    max: usize,
    required: bool,
) {
    if required && text.trim().is_empty() {
        errors.push(field, "is required");
    } else if text.chars().count() > max {
        errors.push(field, format!("must be at most {max} characters"));
    } else if text.contains('\0') {
        errors.push(field, "must not contain NUL characters");
    }
}
