//! The dashboard's API: protocol requests in, the socket's handlers run
//! them, replies out as JSON lines; and export downloads.

use std::convert::Infallible;
use std::sync::Arc;

use appforge_shared::error::{ErrorCode, WireError};
use appforge_shared::protocol::{
    ArchiveFormat, Envelope, ExportRequest, Progress, Reply, Request, SessionToken,
};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{guard, Web, CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE};
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

/// A request without the CSRF token its session needs.
pub(super) struct MissingCsrf;

impl IntoResponse for MissingCsrf {
    fn into_response(self) -> Response {
        error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the request lacks the dashboard's CSRF token; reload the page and sign in again",
        )
    }
}

/// The session this request acts for: its cookie's token, when the
/// request carries the CSRF token issued with it. A request with no known
/// session must carry the CSRF cookie's value instead, and acts for no one.
fn session(web: &Web, headers: &HeaderMap) -> Result<Option<SessionToken>, MissingCsrf> {
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .ok_or(MissingCsrf)?;
    let cookie = guard::cookie(headers, SESSION_COOKIE).map(|t| SessionToken(t.to_string()));
    match cookie {
        Some(token) if web.csrf.knows(&token) => web
            .csrf
            .matches(&token, presented)
            .then_some(Some(token))
            .ok_or(MissingCsrf),
        // No session, or one this daemon did not issue for a browser (the
        // daemon restarted): signed out, signed by the CSRF cookie.
        _ if guard::cookie(headers, CSRF_COOKIE) == Some(presented) => Ok(None),
        _ => Err(MissingCsrf),
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

/// `POST /api/call`: one protocol request as JSON.
pub(super) async fn call(State(web): State<Arc<Web>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = match session(&web, &headers) {
        Ok(token) => token,
        Err(refused) => return refused.into_response(),
    };
    let request: Request = match parse(&body, "a protocol request") {
        Ok(request) => request,
        Err(bad) => return bad,
    };
    match request {
        Request::Signup(_) | Request::Login(_) => sign_in(&web, request).await,
        Request::Logout => sign_out(&web, token).await,
        request => stream(web, Envelope { token, request }),
    }
}

/// Signs in (or up) through the same accounts service; the session token
/// goes into an HttpOnly cookie, and a CSRF token for it into the reply.
async fn sign_in(web: &Web, request: Request) -> Response {
    let (tx, _rx) = ProgressTx::channel();
    let envelope = Envelope {
        token: None,
        request,
    };
    match handlers::dispatch(&web.daemon, envelope, tx).await {
        Ok(Reply::Session(mut info)) => {
            let csrf_token = web.csrf.issue(&info.token);
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                info.token.0
            );
            info.token = SessionToken(String::new());
            let line = json!({"reply": Reply::Session(info), "csrf_token": csrf_token});
            let mut response = ndjson(Body::from(format!("{line}\n")));
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Ok(other) => ndjson(Body::from(final_line(Ok(other)))),
        Err(e) => ndjson(Body::from(final_line(Err(e)))),
    }
}

/// Ends the session everywhere and clears the cookie.
async fn sign_out(web: &Web, token: Option<SessionToken>) -> Response {
    if let Some(token) = &token {
        web.csrf.revoke(token);
    }
    let (tx, _rx) = ProgressTx::channel();
    let envelope = Envelope {
        token,
        request: Request::Logout,
    };
    let result = handlers::dispatch(&web.daemon, envelope, tx).await;
    let mut response = ndjson(Body::from(final_line(result)));
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
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

/// `POST /api/export`: an export request as JSON, answered with the archive
/// as a download.
pub(super) async fn export(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = match session(&web, &headers) {
        Ok(token) => token,
        Err(refused) => return refused.into_response(),
    };
    let request: ExportRequest = match parse(&body, "an export request") {
        Ok(request) => request,
        Err(bad) => return bad,
    };
    let (tx, _rx) = ProgressTx::channel();
    let envelope = Envelope {
        token,
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
            let status = match wire.code {
                ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
                ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                ErrorCode::Conflict => StatusCode::CONFLICT,
                ErrorCode::ProviderError | ErrorCode::Internal | ErrorCode::AppFailed => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            error_response(status, wire.code.as_str(), &wire.message)
        }
    }
}
