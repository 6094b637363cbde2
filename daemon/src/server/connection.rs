//! One client connection: the handshake, then requests answered one at a
//! time, each with its progress frames and one final frame.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use appforge_shared::codec::{self, CodecError, FrameBudget};
use appforge_shared::protocol::{
    ClientFrame, Envelope, Request, ServerFrame, Welcome, PROTOCOL_VERSION,
};
use appforge_shared::{ErrorCode, WireError};
use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::StreamCommon as _;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::handlers;
use super::peers::{PeerSlots, Refused, Slot};
use crate::auth;
use crate::state::Daemon;

/// How long a refused frame's remaining bytes are read past, at most.
/// How long a request that was already on its way when the daemon was told
/// to stop may take to arrive whole.
const ARRIVED_GRACE: Duration = Duration::from_millis(200);

const SKIP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection without a valid session may stay silent.
const UNAUTHENTICATED_IDLE: Duration = Duration::from_secs(5);

/// How long a connection may last without a valid session, however busy,
/// in client time-outs (and a minute at most): signing up or in, a ping or
/// a status take far less.
const UNAUTHENTICATED_LIFE: u32 = 6;

/// Serves one client until it leaves, misbehaves, stays silent too long,
/// its slot goes to another, or the daemon shuts down.
pub async fn serve(
    stream: Stream,
    daemon: Arc<Daemon>,
    mut stop: watch::Receiver<bool>,
    budget: FrameBudget,
    peers: Arc<PeerSlots>,
) {
    let creds = stream.peer_creds().ok();
    let peer_uid = creds.as_ref().and_then(|c| c.euid());
    let peer_pid = creds.as_ref().and_then(|c| c.pid());
    // `&Stream` reads and writes, so one borrow reads while another writes.
    let (reader, mut writer) = (&stream, &stream);
    // Buffered, so a read that loses a `select!` loses no bytes.
    let mut frames = codec::FrameReader::new(reader);
    if let Err(message) = check_peer(peer_uid, daemon.settings.socket_mode) {
        warn!(?peer_uid, "refused a client from another user");
        let _ = send_error(&mut writer, ErrorCode::Forbidden, message).await;
        return;
    }
    // One client holding many idle connections must not keep others out;
    // checked first, as it is the cheapest refusal of a flood.
    let mut slot = match peers.take(peer_pid.unwrap_or(-1)) {
        Ok(slot) => slot,
        Err(refused) => {
            let _ = send_error(&mut writer, ErrorCode::Forbidden, refused.to_string()).await;
            return;
        }
    };
    if let Err(message) = check_not_an_app(&daemon, peer_uid, peer_pid) {
        // Not above debug: an app looping on the socket would flood the log.
        debug!(?peer_pid, "refused a client that is a supervised app");
        let _ = send_error(&mut writer, ErrorCode::Forbidden, message).await;
        return;
    }
    // The pool is taken after the per-process limit, so a process
    // reconnecting in a loop is turned away before it holds a slot of it.
    let (evicted, start) = match peers.admit(&mut slot) {
        Ok(evicted) => (Some(evicted), Start::Fresh),
        // No slot to take: many processes hold one silent connection each.
        // A signed-in client shows its session at once, so it comes in on
        // that, into the part kept for signed-in connections.
        Err(Refused::Full(_)) => {
            match come_in_on_a_session(&daemon, &peers, &mut slot, &mut frames, &mut writer).await {
                Ok(()) => (None, Start::SignedIn),
                Err(refused) => {
                    let _ = send_error(&mut writer, ErrorCode::Forbidden, refused).await;
                    return;
                }
            }
        }
        Err(refused) => {
            let _ = send_error(&mut writer, ErrorCode::Forbidden, refused.to_string()).await;
            return;
        }
    };
    daemon.connections.fetch_add(1, Ordering::Relaxed);
    let conn = Conn {
        daemon: &daemon,
        peers: &peers,
        slot: &slot,
        budget,
    };
    let evicted = async {
        match evicted {
            // Only sent while the connection has no session.
            Some(evicted) => evicted.await.is_ok(),
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        outcome = converse(&conn, &mut frames, &mut writer, &mut stop, start) => outcome,
        true = evicted => Err(Ended::Evicted),
    };
    daemon.connections.fetch_sub(1, Ordering::Relaxed);
    match outcome {
        Ok(()) => {}
        Err(Ended::BadFrame(e)) => {
            info!(error = %e, "dropped a client that sent a bad frame");
            let _ = send_error(
                &mut writer,
                ErrorCode::InvalidInput,
                format!("{e}; closing the connection"),
            )
            .await;
        }
        Err(Ended::Busy(e)) => {
            info!(error = %e, "refused a frame: the budget of frames in flight is spent");
            // The rest of the frame is read past, not kept, so that the
            // client, still sending it, gets to read why: a close with its
            // bytes unread would reset the connection instead.
            let remaining = frames.drop_partial_frame();
            let _ = send_error(&mut writer, ErrorCode::Forbidden, e.to_string()).await;
            let _ = tokio::time::timeout(SKIP_TIMEOUT, frames.skip(remaining)).await;
        }
        Err(Ended::Silent(waited)) => {
            debug!("dropped a silent client");
            let message = format!("no request within {waited:.0?}; closing the connection");
            let _ = send_error(&mut writer, ErrorCode::InvalidInput, message).await;
        }
        Err(Ended::Handshake(message)) => {
            info!(%message, "refused a handshake");
            let _ = send_error(&mut writer, ErrorCode::InvalidInput, message).await;
        }
        Err(Ended::Evicted) => {
            debug!(?peer_pid, "dropped a client without a session to make room");
            let message = format!(
                "dropped to make room for another client: appforged holds at most {} \
                 connections without a session, and this process held the most of them; \
                 sign in, or hold fewer connections",
                peers.without_session()
            );
            let _ = send_error(&mut writer, ErrorCode::Forbidden, message).await;
        }
        Err(Ended::FailedSignIns) => {
            info!("closed a connection after repeated failed sign-ins");
            let message = format!(
                "{} failed sign-ins on one connection; closing it",
                auth::FAILURES_PER_CONNECTION
            );
            let _ = send_error(&mut writer, ErrorCode::Unauthenticated, message).await;
        }
        Err(Ended::Gone) => debug!("client went away"),
    }
}

/// What a connection's conversation needs besides its stream.
struct Conn<'a> {
    daemon: &'a Daemon,
    peers: &'a PeerSlots,
    slot: &'a Slot,
    budget: FrameBudget,
}

/// Why a conversation ended early.
enum Ended {
    /// The client sent something that is not a valid frame.
    BadFrame(CodecError),
    /// The client said nothing for this long.
    Silent(Duration),
    /// The handshake failed; the message says why.
    Handshake(String),
    /// The client closed the connection or it broke.
    Gone,
    /// The frames in flight of all connections left no room for this one's.
    Busy(CodecError),
    /// The connection, without a session, gave its slot to another.
    Evicted,
    /// Too many failed sign-ins on this connection.
    FailedSignIns,
}

/// Only the daemon's own user (or root) may use a per-user daemon; a system
/// daemon's socket is opened to its group by file permissions instead.
fn check_peer(peer_uid: Option<u32>, socket_mode: u32) -> Result<(), String> {
    if socket_mode & 0o070 != 0 {
        return Ok(());
    }
    let own = nix::unistd::geteuid().as_raw();
    match peer_uid {
        Some(uid) if uid == own || uid == 0 => Ok(()),
        Some(uid) => Err(format!(
            "this appforged belongs to uid {own}; uid {uid} may not use it"
        )),
        None => Err("could not read the client's user id".to_string()),
    }
}

/// A peer that is a supervised app, or a process one started, may not use
/// the socket: apps run as their owner, so the socket's permissions alone
/// would let any app drive its owner's daemon.
fn check_not_an_app(
    daemon: &Daemon,
    peer_uid: Option<u32>,
    peer_pid: Option<i32>,
) -> Result<(), String> {
    let refused = || "supervised apps may not use appforged's socket".to_string();
    // Apps run as the daemon's user; another user's process is none (and
    // its /proc entry may be hidden from the daemon).
    if peer_uid.is_some_and(|uid| uid != nix::unistd::geteuid().as_raw()) {
        return Ok(());
    }
    let Some(pid) = peer_pid.filter(|p| *p > 0) else {
        return Err("could not read the client's process id".to_string());
    };
    if daemon.supervisor.is_app_process(pid) {
        return Err(refused());
    }
    Ok(())
}

/// What a connection may send, by whether it has shown a valid session.
struct Limits {
    frame: usize,
    idle: Duration,
}

impl Limits {
    fn unauthenticated(daemon: &Daemon) -> Limits {
        Limits {
            frame: codec::MAX_UNAUTHENTICATED_FRAME_LEN,
            idle: daemon.settings.client_timeout.min(UNAUTHENTICATED_IDLE),
        }
    }

    fn authenticated(daemon: &Daemon) -> Limits {
        Limits {
            frame: codec::MAX_FRAME_LEN,
            idle: daemon.settings.client_timeout,
        }
    }
}

/// How long a newcomer that finds the pool full has to complete its
/// handshake and show a valid session.
const LATE_GRACE: Duration = Duration::from_secs(1);

/// Where a conversation starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Before the handshake.
    Fresh,
    /// After the handshake and a valid session ([`come_in_on_a_session`]).
    SignedIn,
}

/// A newcomer that found the pool full: its handshake, then a valid session
/// within [`LATE_GRACE`], admit it to a slot kept for signed-in
/// connections. Until then it holds only its process's own slot. The error
/// is the message for the client.
async fn come_in_on_a_session(
    daemon: &Daemon,
    peers: &PeerSlots,
    slot: &mut Slot,
    frames: &mut codec::FrameReader<&Stream>,
    writer: &mut &Stream,
) -> Result<(), String> {
    let full = || {
        format!(
            "appforged is already serving its limit of {} clients; sign in (`appforge login`),              or try again shortly",
            daemon.settings.max_connections
        )
    };
    let frame_limit = codec::MAX_UNAUTHENTICATED_FRAME_LEN;
    let handshake = async {
        let hello = frames.next(frame_limit).await.ok().flatten();
        check_hello(hello.as_ref().ok_or_else(full)?).map_err(|e| match e {
            Ended::Handshake(message) => message,
            _ => full(),
        })?;
        send(writer, &ServerFrame::Welcome(welcome()))
            .await
            .map_err(|_| full())?;
        match frames.next(frame_limit).await.ok().flatten() {
            Some(ClientFrame::Authenticate(token)) => Ok(token),
            _ => Err(full()),
        }
    };
    let token = tokio::time::timeout(LATE_GRACE, handshake)
        .await
        .map_err(|_| full())??;
    daemon
        .accounts
        .authenticate(Some(&token))
        .await
        .map_err(|_| full())?;
    peers
        .admit_signed_in(slot)
        .map_err(|refused| refused.to_string())
}

/// Checks a connection's first frame: a handshake of this protocol.
fn check_hello(frame: &ClientFrame) -> Result<(), Ended> {
    match frame {
        ClientFrame::Hello(h) if h.protocol == PROTOCOL_VERSION => Ok(()),
        ClientFrame::Hello(h) => Err(Ended::Handshake(format!(
            "protocol mismatch: the client speaks version {} and appforged {} speaks version {}; \
             use a client and daemon from the same release",
            h.protocol,
            env!("CARGO_PKG_VERSION"),
            PROTOCOL_VERSION
        ))),
        ClientFrame::Request(_) | ClientFrame::Authenticate(_) => Err(Ended::Handshake(
            "expected a handshake before the first request".to_string(),
        )),
    }
}

async fn converse(
    conn: &Conn<'_>,
    frames: &mut codec::FrameReader<&Stream>,
    writer: &mut &Stream,
    stop: &mut watch::Receiver<bool>,
    start: Start,
) -> Result<(), Ended> {
    let daemon = conn.daemon;
    let mut limits = Limits::unauthenticated(daemon);
    let (mut signed_in, mut presented) = (false, false);
    if start == Start::SignedIn {
        (signed_in, presented) = (true, true);
        limits = Limits::authenticated(daemon);
        frames.set_budget(conn.budget.clone());
    } else {
        let hello = match tokio::time::timeout(limits.idle, frames.next(limits.frame)).await {
            Err(_) => return Err(Ended::Silent(limits.idle)),
            Ok(frame) => frame.map_err(|e| classify(e, false))?.ok_or(Ended::Gone)?,
        };
        check_hello(&hello)?;
        send(writer, &ServerFrame::Welcome(welcome())).await?;
    }
    let mut failed_sign_ins = 0;
    let mut stopping = false;
    let life = (daemon.settings.client_timeout * UNAUTHENTICATED_LIFE).min(Duration::from_secs(60));
    let deadline = Instant::now() + life;
    loop {
        // Without a session, the connection's whole life is bounded too, so
        // a ping every few seconds cannot hold a slot for ever.
        let wait = match signed_in {
            true => limits.idle,
            false => limits
                .idle
                .min(deadline.saturating_duration_since(Instant::now())),
        };
        if stopping {
            return Ok(());
        }
        let next = tokio::select! {
            frame = tokio::time::timeout(wait, frames.next(limits.frame)) => frame,
            _ = stop.changed() => {
                // A request the client sent before the daemon was told to
                // stop is still answered; then the connection ends.
                match tokio::time::timeout(ARRIVED_GRACE, frames.next(limits.frame)).await {
                    Ok(Ok(Some(frame))) => {
                        stopping = true;
                        Ok(Ok(Some(frame)))
                    }
                    _ => return Ok(()),
                }
            }
        };
        let frame = match next {
            Err(_) if !signed_in && wait < limits.idle => {
                return Err(Ended::Handshake(format!(
                    "no session within {life:.0?}; sign in, or connect again"
                )))
            }
            Err(_) => return Err(Ended::Silent(limits.idle)),
            Ok(frame) => match frame.map_err(|e| classify(e, signed_in))? {
                None => return Ok(()),
                Some(frame) => frame,
            },
        };
        match frame {
            ClientFrame::Authenticate(token) => {
                // Not answered: a stale token (before `login`, say) leaves
                // the limits as they are. Only one is heard per connection,
                // so it cannot be repeated to cost a query each time.
                if presented {
                    return Err(Ended::Handshake(
                        "a session is presented once per connection".to_string(),
                    ));
                }
                presented = true;
                if daemon.accounts.authenticate(Some(&token)).await.is_ok() {
                    // False if the slot was given away meanwhile: the
                    // eviction ends the connection.
                    signed_in = conn.peers.signed_in(conn.slot);
                    if signed_in {
                        limits = Limits::authenticated(daemon);
                        // Large frames are paid for from the shared budget.
                        frames.set_budget(conn.budget.clone());
                    }
                }
            }
            ClientFrame::Request(envelope) => {
                answer(daemon, envelope, frames, writer, &mut failed_sign_ins).await?;
                if failed_sign_ins >= auth::FAILURES_PER_CONNECTION {
                    return Err(Ended::FailedSignIns);
                }
            }
            ClientFrame::Hello(_) => {
                return Err(Ended::Handshake(
                    "a second handshake on one connection".to_string(),
                ))
            }
        }
    }
}

/// Runs one request, streaming its progress, and cancels it if the client
/// goes away first.
async fn answer(
    daemon: &Daemon,
    envelope: Envelope,
    frames: &mut codec::FrameReader<&Stream>,
    writer: &mut &Stream,
    failed_sign_ins: &mut u32,
) -> Result<(), Ended> {
    let kind = envelope.request.kind();
    let is_sign_in = matches!(envelope.request, Request::Login(_));
    let started = Instant::now();
    let (progress_tx, mut progress_rx) = handlers::ProgressTx::channel();
    let work = async {
        let result = handlers::dispatch(daemon, envelope, progress_tx).await;
        if is_sign_in && matches!(&result, Err(e) if e.code() == ErrorCode::Unauthenticated) {
            // Each failure on one connection waits longer than the last,
            // on top of the global rate of failures the accounts keep.
            *failed_sign_ins += 1;
            tokio::time::sleep(auth::connection_delay(*failed_sign_ins)).await;
        }
        result
    };
    tokio::pin!(work);
    // A well-behaved client sends nothing while a request runs, so any read
    // completing here means it hung up (or broke the protocol): either way
    // the work is dropped, which cancels it. One byte is read, not a frame:
    // nothing a client sends meanwhile is held in memory.
    let client_left = frames.peer_spoke();
    tokio::pin!(client_left);
    let result = loop {
        tokio::select! {
            biased;
            result = &mut work => break result,
            Some(progress) = progress_rx.recv() => send(writer, &ServerFrame::Progress(progress)).await?,
            _ = &mut client_left => {
                info!(request = kind, "client left; request cancelled");
                return Err(Ended::Gone);
            }
        }
    };
    while let Ok(progress) = progress_rx.try_recv() {
        send(writer, &ServerFrame::Progress(progress)).await?;
    }
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let last = match result {
        Ok(reply) => {
            debug!(request = kind, elapsed_ms, "request done");
            ServerFrame::Reply(reply)
        }
        Err(e) => {
            let wire = WireError::from(e);
            if wire.code == ErrorCode::Internal {
                tracing::error!(request = kind, error = %wire.message, "request failed");
            } else {
                debug!(
                    request = kind,
                    code = wire.code.as_str(),
                    elapsed_ms,
                    "request refused"
                );
            }
            ServerFrame::Error(wire)
        }
    };
    send(writer, &last).await
}

fn welcome() -> Welcome {
    Welcome {
        protocol: PROTOCOL_VERSION,
        daemon_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

fn classify(e: CodecError, signed_in: bool) -> Ended {
    match e {
        CodecError::TooLarge { len, limit } if !signed_in && limit < codec::MAX_FRAME_LEN => {
            Ended::Handshake(format!(
                "frame of {len} bytes is over the {limit}-byte limit for connections without a \
                 session; sign in (`appforge login`) before sending large requests"
            ))
        }
        CodecError::TooLarge { .. } | CodecError::Malformed(_) => Ended::BadFrame(e),
        CodecError::Busy { .. } => Ended::Busy(e),
        CodecError::Truncated | CodecError::Io(_) | CodecError::Encode(_) => Ended::Gone,
    }
}

/// How long one frame may take to reach a client: one that stops reading is
/// dropped, and its request with it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

async fn send(writer: &mut &Stream, frame: &ServerFrame) -> Result<(), Ended> {
    match tokio::time::timeout(WRITE_TIMEOUT, codec::write_frame(writer, frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ended::Gone),
        Err(_) => {
            info!("dropped a client that stopped reading");
            Err(Ended::Gone)
        }
    }
}

async fn send_error(writer: &mut &Stream, code: ErrorCode, message: String) -> Result<(), Ended> {
    send(writer, &ServerFrame::Error(WireError::new(code, message))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_per_user_daemon_admits_only_its_user_and_root() {
        let own = nix::unistd::geteuid().as_raw();
        assert!(check_peer(Some(own), 0o600).is_ok());
        assert!(check_peer(Some(0), 0o600).is_ok());
        assert!(check_peer(Some(own + 1), 0o600).is_err());
        assert!(check_peer(None, 0o600).is_err());
        assert!(check_peer(Some(own + 1), 0o660).is_ok());
    }
}
