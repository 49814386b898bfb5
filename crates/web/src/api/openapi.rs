//! `GET /api/openapi.json`: the OpenAPI 3.1 description of every `/api/v1` route. The
//! document is kept by hand beside the code (`crates/web/openapi.json`); tests check
//! that it parses, that every route it names answers, and that every route the router
//! serves is in it.

use axum::http::header;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
