//! The HTTP listeners' server (the dashboard's and the metrics'), with a cap
//! on open connections, a time limit on each request's headers and on a
//! write that makes no progress: anything on this machine can connect (the
//! apps included), and each connection holds a descriptor the daemon needs
//! for its socket and its apps. axum's own server sets no timer, so there a
//! silent connection would hold its slot for ever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections open at once, at most. More wait in the kernel's backlog
/// until one closes.
pub const MAX_CONNECTIONS: usize = 128;

/// Time a client has to send a request's headers, the first one included;
/// the connection is closed after it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener`, one task per connection, until the daemon exits.
pub async fn serve(mut listener: Limited, app: axum::Router) -> io::Result<()> {
    use axum::serve::Listener;
    let what = listener.what;
    loop {
        let (io, _addr) = listener.accept().await;
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            if let Err(e) = http.serve_connection(TokioIo::new(io), service).await {
                tracing::debug!(error = %e, listener = what, "HTTP connection ended");
            }
        });
    }
}

/// A TCP listener that accepts only while fewer than its limit are open.
pub struct Limited {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    what: &'static str,
}

impl Limited {
    /// Wraps `inner` with [`MAX_CONNECTIONS`] slots of its own; `what`
    /// names it in the logs.
    pub fn new(inner: TcpListener, what: &'static str) -> Limited {
        Limited {
            inner,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            what,
        }
    }
}

impl axum::serve::Listener for Limited {
    type Io = Counted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
            // The semaphore is never closed; stay pending rather than spin.
            return std::future::pending().await;
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    return (
                        Counted {
                            stream,
                            _slot: slot,
                            stalled: None,
                        },
                        addr,
                    )
                }
                Err(e) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    tracing::debug!(error = %e, listener = self.what, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// How long a write may make no progress before the connection is closed:
/// a client that stops reading (its answers pile up in a small receive
/// buffer) must not hold a slot for ever either.
pub const WRITE_STALL: Duration = Duration::from_secs(10);

/// A connection holding one slot until it closes.
pub struct Counted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// Runs while a write waits on the client; reset by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Counted {
    /// Passes on a write's outcome, and fails it once writes have made no
    /// progress for [`WRITE_STALL`].
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(cx, outcome)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.watch(cx, outcome)
    }
}
