//! The dashboard's API: protocol requests in, the socket's handlers run
//! them, replies out as JSON lines; and export downloads.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use appforge_shared::error::{ErrorCode, WireError};
use appforge_shared::protocol::{
    ArchiveFormat, Envelope, ExportRequest, Progress, Reply, Request, SessionToken,
};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;

use super::{guard, Web, CSRF_HEADER, SESSION_COOKIE};
use crate::error::ServiceError;
use crate::server::handlers::{self, ProgressTx};

/// An error as the page reads it, with an HTTP status.
pub(super) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Time a request's body has to arrive, whole, once its headers are in: a
/// body sent a byte at a time is dropped like a slow header.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest body, as large as a socket frame; only a request that has
/// proven its session gets this far.
const MAX_BODY: usize = appforge_shared::codec::MAX_FRAME_LEN;
/// Session cookies looked at in one request, at most: the few that apps
/// on other ports can toss (one per path above the API's) and the
/// dashboard's own.
const MAX_SESSION_COOKIES: usize = 32;

/// The answer to an API path without this daemon's key, given from the
/// path alone. The code is `unauthenticated` so that a page holding the key
/// of a daemon that has since restarted shows itself signed out.
pub(super) fn wrong_key() -> Response {
    closing(error_response(
        StatusCode::NOT_FOUND,
        "unauthenticated",
        "this dashboard address is not the running daemon's (it may have restarted); run \
         `appforge dashboard` in a terminal to open a signed-in dashboard",
    ))
}

/// The session a request has proven from its headers, set by the guard for
/// every `/api/` handler.
#[derive(Debug, Clone)]
pub(super) struct Session(pub(super) SessionToken);

/// Marks a refusal as the end of its connection: its body is never read.
pub(super) fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The session this request acts for, from its headers alone: a session
/// cookie this daemon issued to a browser, with the CSRF token issued with
/// it in the header. Every `appforge_session` value is tried, so a cookie
/// of the same name that an app on another port set at a path above the
/// API's (cookie tossing; it cannot set the API's own path, not knowing
/// its key) can neither sign the user out nor in.
#[allow(clippy::result_large_err)] // The error is the response itself, returned at once.
pub(super) fn authorize(web: &Web, headers: &HeaderMap) -> Result<Session, Response> {
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut known = false;
    for value in guard::cookies(headers, SESSION_COOKIE).take(MAX_SESSION_COOKIES) {
        let token = SessionToken(value.to_string());
        if !web.csrf.knows(&token) {
            continue;
        }
        known = true;
        if !presented.is_empty() && web.csrf.matches(&token, presented) {
            return Ok(Session(token));
        }
    }
    Err(if known {
        error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the request lacks the dashboard's CSRF token; reload the page, or run \
             `appforge dashboard` in a terminal to sign in again",
        )
    } else {
        error_response(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this browser is not signed in to the dashboard; run `appforge dashboard` in a \
             terminal to open a signed-in dashboard",
        )
    })
}

/// The request's body, read only now that its session is proven: at most
/// [`MAX_BODY`] bytes, within [`BODY_TIMEOUT`].
#[allow(clippy::result_large_err)] // The error is the response itself, returned at once.
async fn read_body(request: HttpRequest) -> Result<Bytes, Response> {
    let too_large = || {
        closing(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid-input",
            &format!(
                "the request is larger than the dashboard's limit of {} MiB",
                MAX_BODY / (1024 * 1024)
            ),
        ))
    };
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let mut chunks = request.into_body().into_data_stream();
    let read = async {
        let mut body = Vec::with_capacity(announced.unwrap_or(0).min(64 * 1024) as usize);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| {
                closing(error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid-input",
                    &format!("the request's body could not be read: {e}"),
                ))
            })?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(body) => body,
        Err(_) => Err(closing(error_response(
            StatusCode::REQUEST_TIMEOUT,
            "invalid-input",
            &format!(
                "the request's body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        ))),
    }
}

/// The body as JSON of `what`, or a 400 that says why not.
#[allow(clippy::result_large_err)] // The error is the response itself, returned at once.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            "invalid-input",
            &format!("the request is not {what} in JSON: {e}"),
        )
    })
}

/// `POST /api/{key}/call`: one protocol request as JSON.
pub(super) async fn call(
    State(web): State<Arc<Web>>,
    Extension(Session(token)): Extension<Session>,
    request: HttpRequest,
) -> Response {
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let request: Request = match parse(&body, "a protocol request") {
        Ok(request) => request,
        Err(bad) => return bad,
    };
    match request {
        // Sessions start from the socket alone (`appforge dashboard`).
        Request::Signup(_) | Request::Login(_) | Request::DashboardLink => error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the dashboard does not sign anyone up or in; run `appforge dashboard` in a \
             terminal for a one-time sign-in link (accounts are made with `appforge signup`)",
        ),
        Request::Logout => sign_out(&web, token).await,
        request => stream(
            web,
            Envelope {
                token: Some(token),
                request,
            },
        ),
    }
}

/// Ends the session everywhere and clears the cookie.
async fn sign_out(web: &Web, token: SessionToken) -> Response {
    web.csrf.revoke(&token);
    let (tx, _rx) = ProgressTx::channel();
    let envelope = Envelope {
        token: Some(token),
        request: Request::Logout,
    };
    let result = handlers::dispatch(&web.daemon, envelope, tx).await;
    let mut response = ndjson(Body::from(final_line(result)));
    let clear = format!(
        "{SESSION_COOKIE}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0",
        web.api_prefix
    );
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Runs the request, streaming its progress as it comes. The work stops
/// when the browser goes away, as it does when a socket client does.
fn stream(web: Arc<Web>, envelope: Envelope) -> Response {
    let (tx, rx) = ProgressTx::channel();
    let kind = envelope.request.kind();
    let work = tokio::spawn(async move { handlers::dispatch(&web.daemon, envelope, tx).await });
    let work = AbortOnDrop(work, kind);
    let lines = futures_util::stream::unfold(Some((rx, work)), |state| async move {
        let (mut rx, mut work) = state?;
        match rx.recv().await {
            Some(progress) => Some((
                Ok::<_, Infallible>(progress_line(&progress)),
                Some((rx, work)),
            )),
            None => {
                let result = match (&mut work.0).await {
                    Ok(result) => result,
                    Err(e) => Err(ServiceError::Internal(format!("the request failed: {e}"))),
                };
                Some((Ok(final_line(result)), None))
            }
        }
    });
    ndjson(Body::from_stream(lines))
}

/// Aborts the request's task when the response body is dropped: the
/// browser left (or read to the end, when the task is done already).
struct AbortOnDrop(
    tokio::task::JoinHandle<Result<Reply, ServiceError>>,
    &'static str,
);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            tracing::info!(request = self.1, "browser left; request cancelled");
            self.0.abort();
        }
    }
}

fn ndjson(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

fn progress_line(progress: &Progress) -> String {
    format!("{}\n", json!({ "progress": progress }))
}

fn final_line(result: Result<Reply, ServiceError>) -> String {
    let line = match result {
        Ok(reply) => json!({ "reply": reply }),
        Err(e) => {
            let wire = WireError::from(e);
            json!({"error": {"code": wire.code.as_str(), "message": wire.message}})
        }
    };
    format!("{line}\n")
}

/// `POST /api/{key}/export`: an export request as JSON, answered with the archive
/// as a download.
pub(super) async fn export(
    State(web): State<Arc<Web>>,
    Extension(Session(token)): Extension<Session>,
    request: HttpRequest,
) -> Response {
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let request: ExportRequest = match parse(&body, "an export request") {
        Ok(request) => request,
        Err(bad) => return bad,
    };
    let (tx, _rx) = ProgressTx::channel();
    let envelope = Envelope {
        token: Some(token),
        request: Request::Export(request),
    };
    match handlers::dispatch(&web.daemon, envelope, tx).await {
        Ok(Reply::Export(info)) => {
            let (content_type, ending) = match info.format {
                ArchiveFormat::Zip => ("application/zip", "zip"),
                ArchiveFormat::TarGz => ("application/gzip", "tar.gz"),
            };
            // The root is a safe file-name stem (see projects::export::archive_root).
            let disposition = format!("attachment; filename=\"{}.{ending}\"", info.root);
            (
                [
                    (header::CONTENT_TYPE, content_type.to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                info.archive,
            )
                .into_response()
        }
        Ok(_) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the export gave no archive",
        ),
        Err(e) => {
            let wire = WireError::from(e);
            error_response(status_of(wire.code), wire.code.as_str(), &wire.message)
        }
    }
}

/// The HTTP status of an error answered whole (not as a JSON line).
pub(super) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::ProviderError | ErrorCode::Internal | ErrorCode::AppFailed => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}
