//! The web dashboard: its pages, embedded in the binary, and an API that
//! hands each request to the same handlers the socket serves, so no project
//! rule, owner check or validation exists twice.
//!
//! - `GET /` and `GET /assets/NAME`: the page and its script modules and style;
//! - `GET /login?token=…`: a one-time link from `appforge dashboard` (asked
//!   for over the socket), the only way a browser signs in;
//! - `POST /api/{key}/call`: one protocol [`Request`] as JSON, answered as
//!   newline-delimited JSON: `{"progress": …}` lines, then `{"reply": …}`
//!   or `{"error": {"code", "message"}}`;
//! - `POST /api/{key}/export`: an [`ExportRequest`], answered with the archive;
//! - `GET /api/{key}/events`: the page's stream of server-sent events: its
//!   account's apps, whenever they change ([`events`]).
//!
//! `{key}` is random, made at daemon start, and handed to the page with
//! its CSRF token at sign-in. The session cookie's `Path` is `/api/{key}/`,
//! so the browser sends it to the API alone, never to an app on another
//! port of 127.0.0.1 (cookies ignore ports), and an app, not knowing the
//! key, cannot set a cookie of that name and path to replace it.
//!
//! Every API request's path must carry the key, or it is refused from the
//! path alone. Every request passes [`guard`] (Host, Origin, headers). Every
//! API request must also prove a session from its headers alone (the
//! session cookie and the `X-CSRF-Token` issued with it, see [`keys`])
//! before a byte of its body is read: whoever cannot open the socket costs
//! the daemon no memory here.
//!
//! The metrics' HTTP listener ([`metrics`]) is served by the same capped
//! connections ([`listener`]), on its own address and with its own slots.
//!
//! [`Request`]: appforge_shared::protocol::Request
//! [`ExportRequest`]: appforge_shared::protocol::ExportRequest

mod api;
mod events;
pub mod guard;
mod keys;
mod listener;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request as HttpRequest, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::server::handlers::dashboard::LOGIN_PATH;
use crate::state::Daemon;

/// The cookie that holds the session token (HttpOnly).
const SESSION_COOKIE: &str = "appforge_session";
/// The header that carries the CSRF token.
const CSRF_HEADER: &str = "x-csrf-token";
/// Dashboard requests served at once, at most; more wait for a slot.
const MAX_REQUESTS: usize = 64;

const INDEX_HTML: &str = include_str!("../../web/index.html");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// A script module of the page, embedded: its name, content type and text.
macro_rules! script {
    ($name:literal) => {
        (
            $name,
            JAVASCRIPT,
            include_str!(concat!("../../web/assets/", $name)),
        )
    };
}

/// The files served under `/assets/`: name, content type, body. `app.js`
/// is the page's entry module; it imports the others by name, so each
/// script in `web/assets/` must be listed here.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../web/assets/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../web/assets/favicon.svg"),
    ),
    script!("account.js"),
    script!("api.js"),
    script!("app.js"),
    script!("apps.js"),
    script!("charts.js"),
    script!("dom.js"),
    script!("events.js"),
    script!("feedback.js"),
    script!("format.js"),
    script!("forms.js"),
    script!("highlight.js"),
    script!("logs.js"),
    script!("progress.js"),
    script!("project-change.js"),
    script!("project-edit.js"),
    script!("project-files.js"),
    script!("project-history.js"),
    script!("project-load.js"),
    script!("project-panels.js"),
    script!("project-settings.js"),
    script!("project.js"),
    script!("projects.js"),
    script!("router.js"),
    script!("state.js"),
    script!("terminal.js"),
];

/// What every dashboard handler shares.
struct Web {
    daemon: Arc<Daemon>,
    hosts: guard::Hosts,
    csrf: keys::CsrfTokens,
    /// `/api/{key}/`: the prefix of every API path, and the session
    /// cookie's `Path`.
    api_prefix: String,
    slots: Semaphore,
    /// Slots for the pages' event streams ([`events`]), held while one is open.
    event_slots: Arc<Semaphore>,
}

/// Serves the dashboard on `listener` until the daemon exits.
pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let api_prefix = format!("/api/{}/", keys::api_key());
    let app = Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
        .route(LOGIN_PATH, get(login))
        .route(&format!("{api_prefix}call"), post(api::call))
        .route(&format!("{api_prefix}export"), post(api::export))
        .route(&format!("{api_prefix}events"), get(events::events));
    let web = Arc::new(Web {
        daemon,
        hosts: guard::Hosts::for_addr(addr),
        csrf: keys::CsrfTokens::default(),
        api_prefix,
        slots: Semaphore::new(MAX_REQUESTS),
        event_slots: Arc::new(Semaphore::new(events::MAX_STREAMS)),
    });
    let app = app
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&web), guarded))
        .with_state(web);
    listener::serve(listener::Limited::new(listener, "dashboard"), app).await
}

/// The URL people open, for `status` and the logs.
pub fn url_of(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}/", addr.port())
    } else {
        format!("http://{addr}/")
    }
}

/// Checks an API path's key first, from the path alone; then runs the
/// guard and, for the API, the session check, all from the headers; then
/// holds a slot while the request runs, and hardens the response. A refused
/// request is answered without its body being read, and its connection
/// closed.
async fn guarded(State(web): State<Arc<Web>>, mut request: HttpRequest, next: Next) -> Response {
    let path = request.uri().path();
    let is_api = path.starts_with("/api/");
    let checked = if is_api && !keys::prefix_matches(path, &web.api_prefix) {
        tracing::debug!("dashboard API request with a wrong key refused");
        Err(api::wrong_key())
    } else {
        match guard::check(&web.hosts, request.method(), request.headers()) {
            Err(refusal) => {
                // The path may hold the key: it is not logged.
                tracing::debug!(?refusal, is_api, "dashboard request refused");
                Err(api::error_response(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    refusal.message(),
                ))
            }
            Ok(()) if is_api => api::authorize(&web, request.headers()).map(|session| {
                request.extensions_mut().insert(session);
            }),
            Ok(()) => Ok(()),
        }
    };
    let mut response = match checked {
        Err(refused) => api::closing(refused),
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

/// The page. It holds no secret: signed out, it says how to sign in.
async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response()
}

/// `GET /login?token=…`: uses up a one-time link from `appforge dashboard`
/// and signs this browser in as the link's account. The CSRF token and the
/// API's key go to the page in the redirect's fragment, which the browser
/// never sends anywhere and which the page moves into its own storage at
/// once. The cookie's path is the API's, so no app is ever sent it.
async fn login(State(web): State<Arc<Web>>, method: Method, RawQuery(query): RawQuery) -> Response {
    // A HEAD (a link preview, a prefetch) must not use the link up.
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    let token = query.as_deref().unwrap_or("").split('&').find_map(|pair| {
        pair.split_once('=')
            .filter(|(key, _)| *key == "token")
            .map(|(_, value)| value.to_string())
    });
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return link_refused(
            StatusCode::BAD_REQUEST,
            "This address lacks a sign-in link's token.",
        );
    };
    let session = match web.daemon.accounts.redeem_link(&token).await {
        Ok(session) => session,
        Err(crate::auth::AuthError::LinkRefused(_)) => {
            return link_refused(
                StatusCode::FORBIDDEN,
                "This sign-in link is unknown, already used or expired (links last 60 seconds and work once).",
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "a dashboard sign-in link could not start a session");
            return link_refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The daemon could not start a session; see its log.",
            );
        }
    };
    let csrf_token = web.csrf.issue(&session.token);
    let mut response = (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            format!("/#csrf={csrf_token}&api={}", api_key_of(&web)),
        )],
    )
        .into_response();
    // Priority=High: an app flooding 127.0.0.1 with cookies pushes out the
    // others first in browsers that honour it (Chromium).
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path={}; HttpOnly; SameSite=Strict; Priority=High",
        session.token.0, web.api_prefix
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The key alone, as the page is told it.
fn api_key_of(web: &Web) -> &str {
    web.api_prefix
        .trim_start_matches("/api/")
        .trim_end_matches('/')
}

/// The page for a link that signs no one in: what happened, and what to do.
fn link_refused(status: StatusCode, what: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Sign-in link refused · appforge</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body><main id=\"main\"><h1>Not signed in</h1><p>{what}</p>\
         <p>Run <code>appforge dashboard</code> in a terminal to open a signed-in dashboard \
         (<code>appforge dashboard --no-open</code> prints a new link).</p></main></body></html>\n"
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(asset, _, _)| *asset == name) {
        Some(&(_, content_type, body)) => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        None => not_found().await,
    }
}

async fn not_found() -> Response {
    api::error_response(StatusCode::NOT_FOUND, "not-found", "no such page")
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// A script added to `web/assets/` but not to [`ASSETS`] would be
    /// answered 404 when the page imports it, and the page would not start.
    #[test]
    fn every_file_in_web_assets_is_served() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/assets");
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .expect("the web/assets folder")
            .map(|entry| {
                entry
                    .expect("a web/assets entry")
                    .file_name()
                    .into_string()
                    .expect("a UTF-8 file name")
            })
            .collect();
        files.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|(name, _, _)| name.to_string()).collect();
        served.sort();
        assert_eq!(files, served);
    }
}
