//! Server-rendered pages.

use crate::AppState;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;

pub fn router() -> Router<AppState> {
    Router::new()
}

pub fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found\n")
}
