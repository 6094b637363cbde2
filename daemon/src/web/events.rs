//! `GET /api/{key}/events`: the page's one stream of server-sent events,
//! so that what it shows follows changes made anywhere (the CLI included)
//! within a moment, without a poll per widget.
//!
//! Events, each `data` a JSON object:
//! - `apps`: `{"apps": [ProcessInfo…]}`, the signed-in account's apps as
//!   `ps` lists them; sent at once, then after each change of one of them;
//! - `projects`: `{}`, the account's projects changed (one made or deleted,
//!   a version saved, settings changed); the page reads what it shows
//!   again;
//! - `signed-out`: `{"message": …}`, the session ended; the stream ends.
//!
//! A stream shows only what `ps` shows its account, found the way every
//! request finds it (its session), and news of that account's projects. It
//! costs nothing while nothing changes: it waits on the apps' own status
//! watches and the project news, with a comment now and then
//! that keeps proxies and the listener's write-stall check content. Streams
//! are capped apart from requests, below the listener's connection cap, so
//! open pages cannot take every connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use appforge_shared::error::WireError;
use appforge_shared::protocol::SessionToken;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use super::api::{error_response, status_of, Session};
use super::Web;
use crate::error::ServiceError;
use crate::services::apps::{self, OwnerWatch};
use crate::services::news::OwnerNews;

/// Event streams open at once, at most: well below the listener's
/// connection cap, so requests always find a connection.
pub(super) const MAX_STREAMS: usize = 32;
/// How often a comment is sent while nothing happens.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a stream checks that its session still stands.
const SESSION_CHECK: Duration = Duration::from_secs(10);
/// Changes this close together are sent as one (an app's start passes
/// through several states within a few milliseconds).
const COALESCE: Duration = Duration::from_millis(100);

/// One open stream: what it needs between events.
struct Stream {
    web: Arc<Web>,
    token: SessionToken,
    owner_id: i64,
    watch: OwnerWatch,
    news: OwnerNews,
    /// Sent the first snapshot yet.
    started: bool,
    /// When the session is checked next, however busy the stream.
    check_at: tokio::time::Instant,
    _slot: OwnedSemaphorePermit,
}

/// `GET /api/{key}/events`: the stream, for the session's account.
pub(super) async fn events(
    State(web): State<Arc<Web>>,
    Extension(Session(token)): Extension<Session>,
) -> Response {
    let user = match web.daemon.accounts.authenticate(Some(&token)).await {
        Ok(user) => user,
        Err(e) => return refused(ServiceError::from(e)),
    };
    let Ok(slot) = Arc::clone(&web.event_slots).try_acquire_owned() else {
        tracing::debug!("dashboard event stream refused: all slots taken");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            &format!(
                "the dashboard is open in more than {MAX_STREAMS} pages; close some, then reload \
                 this one"
            ),
        );
    };
    let watch = apps::watch(&web.daemon.supervisor, user.id);
    let news = web.daemon.project_news.listen(user.id);
    let stream = Stream {
        web,
        token,
        owner_id: user.id,
        watch,
        news,
        started: false,
        check_at: tokio::time::Instant::now() + SESSION_CHECK,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(Some(stream), |stream| async move {
        let mut stream = stream?;
        let (event, goes_on) = stream.next().await;
        Some((Ok::<_, Infallible>(event), goes_on.then_some(stream)))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

impl Stream {
    /// The next event, and whether the stream goes on after it.
    async fn next(&mut self) -> (Event, bool) {
        if !self.started {
            self.started = true;
            return (self.apps().await, true);
        }
        loop {
            tokio::select! {
                () = self.watch.changed(&self.web.daemon.supervisor) => {
                    tokio::time::sleep(COALESCE).await;
                    return (self.apps().await, true);
                }
                () = self.news.changed() => {
                    return (event("projects", &json!({})), true);
                }
                () = tokio::time::sleep_until(self.check_at) => {
                    self.check_at = tokio::time::Instant::now() + SESSION_CHECK;
                    if let Some(ended) = self.session_ended().await {
                        return (ended, false);
                    }
                }
            }
        }
    }

    /// The `apps` event: the account's apps now.
    async fn apps(&self) -> Event {
        let apps = match apps::ps(&self.web.daemon.supervisor, self.owner_id).await {
            Ok(apps) => apps,
            Err(e) => {
                // Those of other hosts are known from the store alone.
                tracing::warn!(error = %e, "the dashboard's event stream lists this host's apps only");
                apps::running(&self.web.daemon.supervisor, self.owner_id)
            }
        };
        event("apps", &json!({ "apps": apps }))
    }

    /// The `signed-out` event, when the session has ended (signed out, or
    /// expired) since the stream began.
    async fn session_ended(&self) -> Option<Event> {
        let message = if !self.web.csrf.knows(&self.token) {
            "this browser has signed out".to_string()
        } else {
            match self
                .web
                .daemon
                .accounts
                .authenticate(Some(&self.token))
                .await
            {
                Ok(_) => return None,
                Err(e) => WireError::from(ServiceError::from(e)).message,
            }
        };
        Some(event("signed-out", &json!({ "message": message })))
    }
}

fn event(name: &str, data: &serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// A stream refused before it starts, as any API error is answered.
fn refused(e: ServiceError) -> Response {
    let wire = WireError::from(e);
    error_response(status_of(wire.code), wire.code.as_str(), &wire.message)
}
