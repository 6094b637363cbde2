//! Talking to the daemon: connect, shake hands, send a request, and read its
//! progress frames until the final one.

use std::io::ErrorKind;

use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

use appforge_shared::codec;
use appforge_shared::protocol::{
    ClientFrame, Envelope, Hello, Progress, Reply, Request, ServerFrame, SessionToken,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};
use nix::sys::time::{TimeVal, TimeValLike};

use interprocess::local_socket::tokio::Stream;
use interprocess::os::unix::uds_local_socket::tokio::Stream as UdsStream;

use crate::error::ClientError;

/// An open, greeted connection to the daemon.
pub struct DaemonConn {
    stream: Stream,
}

/// The socket to use: `--socket`/`APPFORGE_SOCKET`, else the default.
pub fn socket_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .unwrap_or_else(appforge_shared::paths::default_socket_path)
}

/// Encodes a request as one frame, refusing one over the frame limit
/// before anything is sent: the daemon would refuse it anyway, after the
/// client had sent up to 16 MiB of it.
fn encode_request(envelope: Envelope) -> Result<Vec<u8>, ClientError> {
    const MIB: f64 = 1024.0 * 1024.0;
    match codec::encode(&ClientFrame::Request(envelope)) {
        Ok(frame) => Ok(frame),
        Err(codec::CodecError::TooLarge { len, limit }) => Err(ClientError::Usage(format!(
            "this request is {:.1} MiB, over the {:.0} MiB limit of one request; \
             send less at once (edit or add large files one at a time, or keep \
             data files out of the project)",
            len as f64 / MIB,
            limit as f64 / MIB
        ))),
        Err(e) => Err(ClientError::Protocol(format!(
            "could not encode the request: {e}"
        ))),
    }
}

/// How long to wait for the daemon to accept the connection, in seconds.
const CONNECT_TIMEOUT_S: i64 = 10;

/// Connects with a blocking `connect`, which waits its turn in the kernel's
/// queue when the daemon's backlog is full (another process flooding it
/// with connections, say), where a non-blocking one would fail at once.
/// The wait is bounded by the socket's send time-out, which a Unix
/// socket's `connect` honours. It runs on the runtime's only thread, which
/// has nothing else to do yet: a thread of its own would cost more than
/// the rest of a `ping`.
fn connect_waiting(socket: &Path) -> std::io::Result<Stream> {
    let fd = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(
        &fd,
        sockopt::SendTimeout,
        &TimeVal::seconds(CONNECT_TIMEOUT_S),
    )?;
    let address = UnixAddr::new(socket)?;
    match nix::sys::socket::connect(fd.as_raw_fd(), &address) {
        Ok(()) => {}
        // What a full backlog gives once the time-out has passed.
        Err(Errno::EAGAIN) => {
            return Err(std::io::Error::new(
                ErrorKind::TimedOut,
                format!("the daemon did not accept the connection within {CONNECT_TIMEOUT_S} s"),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    // Non-blocking from here on, where the send time-out plays no part.
    let std_stream = UnixStream::from(fd);
    std_stream.set_nonblocking(true)?;
    let uds = UdsStream::try_from(OwnedFd::from(std_stream))?;
    Ok(Stream::UdSocket(uds))
}

impl DaemonConn {
    /// Connects to the daemon on `socket`, completes the handshake and, when
    /// the user is signed in, presents the session for the connection.
    pub async fn connect(
        socket: &Path,
        session: Option<SessionToken>,
    ) -> Result<DaemonConn, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            socket: socket.to_path_buf(),
            reason,
        };
        let stream = connect_waiting(socket).map_err(|e| match e.kind() {
            ErrorKind::NotFound => unreachable("no socket there".into()),
            ErrorKind::ConnectionRefused => unreachable("nothing listens there".into()),
            ErrorKind::PermissionDenied => ClientError::PermissionDenied(socket.to_path_buf()),
            _ => unreachable(e.to_string()),
        })?;
        let mut conn = DaemonConn { stream };
        conn.send(&ClientFrame::Hello(Hello::current())).await?;
        match conn.receive().await? {
            ServerFrame::Welcome(_) => {
                if let Some(token) = session {
                    conn.send(&ClientFrame::Authenticate(token)).await?;
                }
                Ok(conn)
            }
            ServerFrame::Error(e) => Err(ClientError::Daemon(e)),
            other => Err(ClientError::Protocol(format!(
                "the daemon answered the handshake with {other:?}"
            ))),
        }
    }

    /// Sends a request and returns its final reply, handing each progress
    /// frame to `on_progress` as it arrives.
    pub async fn request(
        &mut self,
        token: Option<SessionToken>,
        request: Request,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<Reply, ClientError> {
        let frame = encode_request(Envelope { token, request })?;
        let sent = async {
            self.stream.write_all(&frame).await?;
            self.stream.flush().await
        };
        if let Err(e) = sent.await {
            // The daemon may have refused the request midway and said why.
            return match self.receive().await {
                Ok(ServerFrame::Error(refusal)) => Err(ClientError::Daemon(refusal)),
                _ => Err(ClientError::Protocol(format!(
                    "could not send to the daemon: {e}"
                ))),
            };
        }
        drop(frame);
        loop {
            match self.receive().await? {
                ServerFrame::Progress(p) => on_progress(p),
                ServerFrame::Reply(reply) => return Ok(reply),
                ServerFrame::Error(e) => return Err(ClientError::Daemon(e)),
                ServerFrame::Welcome(_) => {
                    return Err(ClientError::Protocol(
                        "the daemon sent a second handshake".into(),
                    ))
                }
            }
        }
    }

    async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        codec::write_frame(&mut self.stream, frame)
            .await
            .map_err(|e| ClientError::Protocol(format!("could not send to the daemon: {e}")))
    }

    async fn receive(&mut self) -> Result<ServerFrame, ClientError> {
        match codec::read_frame(&mut self.stream).await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(ClientError::Protocol(
                "the daemon closed the connection without answering; see its log".into(),
            )),
            Err(e) => Err(ClientError::Protocol(format!(
                "bad answer from the daemon: {e}"
            ))),
        }
    }
}
