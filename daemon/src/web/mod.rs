//! The web dashboard: its pages, embedded in the binary, and an API that
//! hands each request to the same handlers the socket serves, so no project
//! rule, owner check or validation exists twice.
//!
//! - `GET /` and `GET /assets/NAME`: the page and its script and style;
//! - `POST /api/call`: one protocol [`Request`] as JSON, answered as
//!   newline-delimited JSON: `{"progress": …}` lines, then `{"reply": …}`
//!   or `{"error": {"code", "message"}}`;
//! - `POST /api/export`: an [`ExportRequest`], answered with the archive.
//!
//! Every request passes [`guard`] (Host, Origin, headers). Every API request
//! carries an `X-CSRF-Token` header: after sign-in the token issued with the
//! session (see [`keys`]), before it the `appforge_csrf` cookie's value.

mod api;
pub mod guard;
mod keys;
mod listener;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::state::Daemon;

/// The cookie that holds the session token (HttpOnly).
const SESSION_COOKIE: &str = "appforge_session";
/// The cookie whose value signs requests made before sign-in.
const CSRF_COOKIE: &str = "appforge_csrf";
/// The header that carries the CSRF token.
const CSRF_HEADER: &str = "x-csrf-token";
/// Dashboard requests served at once, at most; more wait for a slot.
const MAX_REQUESTS: usize = 64;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/assets/app.js");
const APP_CSS: &str = include_str!("../../web/assets/app.css");
const FAVICON_SVG: &str = include_str!("../../web/assets/favicon.svg");

/// What every dashboard handler shares.
struct Web {
    daemon: Arc<Daemon>,
    hosts: guard::Hosts,
    csrf: keys::CsrfTokens,
    slots: Semaphore,
}

/// Serves the dashboard on `listener` until the daemon exits.
pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let web = Arc::new(Web {
        daemon,
        hosts: guard::Hosts::for_addr(addr),
        csrf: keys::CsrfTokens::default(),
        slots: Semaphore::new(MAX_REQUESTS),
    });
    let app = Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
        .route("/api/call", post(api::call))
        .route("/api/export", post(api::export))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(appforge_shared::codec::MAX_FRAME_LEN))
        .layer(middleware::from_fn_with_state(Arc::clone(&web), guarded))
        .with_state(web);
    listener::serve(listener::Limited::new(listener), app).await
}

/// The URL people open, for `status` and the logs.
pub fn url_of(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}/", addr.port())
    } else {
        format!("http://{addr}/")
    }
}

/// Runs the guard, holds a slot while the request runs, and hardens the response.
async fn guarded(State(web): State<Arc<Web>>, request: HttpRequest, next: Next) -> Response {
    let mut response = match guard::check(&web.hosts, request.method(), request.headers()) {
        Err(refusal) => {
            tracing::debug!(?refusal, path = %request.uri().path(), "dashboard request refused");
            api::error_response(StatusCode::FORBIDDEN, "forbidden", refusal.message())
        }
        Ok(()) => match web.slots.acquire().await {
            Ok(_slot) => next.run(request).await,
            Err(_) => api::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "the daemon is shutting down",
            ),
        },
    };
    guard::harden(response.headers_mut());
    response
}

/// The page; it also gives the browser a CSRF cookie for signing in.
async fn index(headers: HeaderMap) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response();
    if guard::cookie(&headers, CSRF_COOKIE).is_none_or(|v| v.len() != 64) {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let cookie = format!(
            "{CSRF_COOKIE}={}; Path=/; SameSite=Strict",
            hex::encode(bytes)
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "app.css" => ("text/css; charset=utf-8", APP_CSS),
        "favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        _ => return not_found().await,
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn not_found() -> Response {
    api::error_response(StatusCode::NOT_FOUND, "not-found", "no such page")
}
