//! Signing in and out. The sign-in form is protected by a double-submit CSRF cookie;
//! failures are throttled by the store.

use super::Viewer;
use crate::AppState;
use crate::auth::{SESSION_COOKIE, cookie};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use muster_domain::audit::Actor;
use muster_store::auth::{SESSION_TTL_MS, SignInError};
use muster_store::secrets::random_token;
use serde::Deserialize;
use std::net::SocketAddr;

const SIGN_IN_CSRF_COOKIE: &str = "muster_signin";

#[derive(Template, WebTemplate)]
#[template(path = "sign_in.html")]
struct SignInPage {
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

fn secure(state: &AppState) -> &'static str {
    if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn sign_in_page(
    state: &AppState,
    status: StatusCode,
    next: String,
    username: String,
    error: Option<String>,
) -> Response {
    let csrf = random_token(32);
    let cookie = format!(
        "{SIGN_IN_CSRF_COOKIE}={csrf}; HttpOnly; SameSite=Strict; Path=/sign-in; Max-Age=3600{}",
        secure(state)
    );
    let page = SignInPage {
        csrf,
        next,
        username,
        error,
    };
    let mut response = (status, page).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Only local paths are followed after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

pub async fn form(State(state): State<AppState>, params: crate::api::Params) -> Response {
    sign_in_page(
        &state,
        StatusCode::OK,
        safe_next(params.text("next")),
        String::new(),
        None,
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    csrf: String,
    username: String,
    password: String,
    next: Option<String>,
}

pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let cookie_csrf = cookie(&headers, SIGN_IN_CSRF_COOKIE).map(str::to_owned);
    if cookie_csrf.as_deref() != Some(form.csrf.as_str()) {
        let error = "The sign-in form expired. Please try again.".to_string();
        return sign_in_page(
            &state,
            StatusCode::FORBIDDEN,
            next,
            form.username,
            Some(error),
        );
    }
    let outcome = match state
        .store
        .sign_in(&form.username, &form.password, &client.ip().to_string())
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    match outcome {
        Err(SignInError::Invalid) => sign_in_page(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            form.username,
            Some("Wrong username or password.".into()),
        ),
        Err(SignInError::Throttled) => sign_in_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            form.username,
            Some("Too many failed sign-ins. Wait 15 minutes and try again.".into()),
        ),
        Ok(user) => {
            let session = match state.store.create_session(&user.username).await {
                Ok(s) => s,
                Err(e) => return crate::error::ApiError::from(e).into_response(),
            };
            let actor = Actor::new(format!("user:{}", user.username));
            if let Err(e) = state
                .store
                .audit_append(vec![actor.entry(
                    "sign_in",
                    format!("user:{}", user.username),
                    None,
                    None,
                )])
                .await
            {
                return crate::error::ApiError::from(e).into_response();
            }
            let cookie = format!(
                "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
                session.id,
                SESSION_TTL_MS / 1000,
                secure(&state)
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
    }
}

#[derive(Deserialize)]
pub struct SignOutForm {
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    if form.csrf != viewer.csrf {
        return (
            StatusCode::FORBIDDEN,
            "The form's CSRF token does not match your session.",
        )
            .into_response();
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        let _ = state.store.end_session(id).await;
    }
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("muster_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"),
    );
    response
}
