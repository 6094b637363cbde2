//! `GET /metrics` over HTTP for a Prometheus scraper, on `--metrics-addr`
//! (loopback unless the configuration allows otherwise), served by the same
//! capped listener as the dashboard. Nothing else is served there: no
//! session, no guard, only the counters `appforge metrics` prints.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::CONTENT_TYPE;
use crate::server::metrics_text;
use crate::state::Daemon;

use super::listener;

/// Serves the metrics on `listener` until the daemon exits.
pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .fallback(not_found)
        .with_state(daemon);
    listener::serve(listener::Limited::new(listener, "metrics"), app).await
}

async fn scrape(State(daemon): State<Arc<Daemon>>) -> Response {
    closing((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        metrics_text(&daemon),
    ))
}

async fn not_found() -> Response {
    closing((
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "only GET /metrics is served here\n",
    ))
}

/// One answer per connection, as scrapers expect of a small exporter: the
/// slot is free again as soon as the answer is sent.
fn closing(answer: impl IntoResponse) -> Response {
    let mut response = answer.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
