//! The frame codec: a 4-byte little-endian length, then a bincode payload.
//!
//! This is the only module that names bincode, so changing the wire format
//! touches one file.

use std::sync::Arc;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;

/// The largest payload accepted in either direction: 16 MiB.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The largest payload a daemon accepts before the connection has shown a
/// valid session: a handshake, a sign-in or a ping fit in far less.
pub const MAX_UNAUTHENTICATED_FRAME_LEN: usize = 8 * 1024;

/// How much of an announced payload is allocated before its bytes arrive.
const FIRST_READ: usize = 16 * 1024;

/// Bytes in the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The length prefix announces more than the reader's limit.
    #[error("frame of {len} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The payload is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The message could not be encoded.
    #[error("could not encode frame: {0}")]
    Encode(String),
    /// Reading or writing the stream failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes of frames in flight, shared by many connections, stayed
    /// at their limit for as long as a frame may wait.
    #[error(
        "appforged is already receiving {} MiB of requests, its limit for all connections \
         together, and no room came free within {waited:.0?}; try again shortly",
        limit / (1024 * 1024)
    )]
    Busy {
        /// The budget, in bytes.
        limit: usize,
        /// How long the frame waited.
        waited: Duration,
    },
}

/// Memory for frames being received, shared by many readers: each byte a
/// reader holds is paid for from it as it arrives (not as announced), so
/// however many connections send large frames, together they hold at most
/// this much. A reader with no room waits, for a bounded time.
#[derive(Debug, Clone)]
pub struct FrameBudget {
    room: Arc<Semaphore>,
    limit: usize,
    wait: Duration,
}

impl FrameBudget {
    /// A budget of `limit` bytes, for which a reader waits at most `wait`.
    pub fn new(limit: usize, wait: Duration) -> FrameBudget {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        FrameBudget {
            room: Arc::new(Semaphore::new(limit)),
            limit,
            wait,
        }
    }

    /// Bytes not held by any reader right now.
    pub fn available(&self) -> usize {
        self.room.available_permits()
    }
}

fn config() -> impl bincode::config::Config {
    // The limit stops a lying length inside the payload (a string's, say) from
    // allocating more than a frame can hold.
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

/// Encodes a message as one frame: prefix and payload.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let mut frame = vec![0u8; PREFIX_LEN];
    bincode::serde::encode_into_std_write(msg, &mut frame, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    let len = frame.len() - PREFIX_LEN;
    if len > MAX_FRAME_LEN {
        return Err(CodecError::TooLarge {
            len,
            limit: MAX_FRAME_LEN,
        });
    }
    frame[..PREFIX_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(frame)
}

/// Decodes one payload (without its prefix); trailing bytes are an error.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let (msg, used) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != payload.len() {
        return Err(CodecError::Malformed(format!(
            "{} unexpected bytes after the message",
            payload.len() - used
        )));
    }
    Ok(msg)
}

/// Reads the payload length from a prefix, refusing frames over [`MAX_FRAME_LEN`].
pub fn payload_len(prefix: [u8; PREFIX_LEN]) -> Result<usize, CodecError> {
    payload_len_within(prefix, MAX_FRAME_LEN)
}

/// Reads the payload length from a prefix, refusing frames over `limit`.
pub fn payload_len_within(prefix: [u8; PREFIX_LEN], limit: usize) -> Result<usize, CodecError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > limit.min(MAX_FRAME_LEN) {
        return Err(CodecError::TooLarge {
            len,
            limit: limit.min(MAX_FRAME_LEN),
        });
    }
    Ok(len)
}

/// Decodes the first frame in `buf`: `Ok(None)` when more bytes are needed,
/// else the message and the number of bytes it took.
pub fn decode_frame<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, CodecError> {
    let Some(prefix) = buf.get(..PREFIX_LEN) else {
        return Ok(None);
    };
    let len = payload_len(prefix.try_into().expect("slice of prefix length"))?;
    let Some(payload) = buf.get(PREFIX_LEN..PREFIX_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((decode_payload(payload)?, PREFIX_LEN + len)))
}

/// Reads one frame of at most [`MAX_FRAME_LEN`]: `Ok(None)` on a clean end
/// of stream before a frame starts, an error if it ends inside one.
pub async fn read_frame<R, T>(reader: &mut R) -> Result<Option<T>, CodecError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    read_frame_within(reader, MAX_FRAME_LEN).await
}

/// Reads one frame of at most `limit` bytes. The payload's buffer grows
/// with the bytes that arrive, not with the length announced, so a peer
/// that announces a large frame and sends nothing costs next to nothing.
pub async fn read_frame_within<R, T>(reader: &mut R, limit: usize) -> Result<Option<T>, CodecError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut prefix = [0u8; PREFIX_LEN];
    let mut filled = 0;
    while filled < PREFIX_LEN {
        match reader.read(&mut prefix[filled..]).await? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(CodecError::Truncated),
            n => filled += n,
        }
    }
    let len = payload_len_within(prefix, limit)?;
    let mut payload = Vec::with_capacity(len.min(FIRST_READ));
    let read = (&mut *reader)
        .take(len as u64)
        .read_to_end(&mut payload)
        .await?;
    if read < len {
        return Err(CodecError::Truncated);
    }
    decode_payload(&payload).map(Some)
}

/// Reads frames from a stream through a buffer of its own, so that a read
/// that loses a `select!` loses no bytes: whatever arrived stays in the
/// buffer for the next call. The buffer grows with the bytes that arrive,
/// never past one frame (and one read) at a time.
///
/// With a [`FrameBudget`], the bytes held are paid for from it, from their
/// arrival until the next frame is asked for: a request decoded from a
/// frame is as large as the frame, and lives while it is answered.
#[derive(Debug)]
pub struct FrameReader<R> {
    reader: R,
    buf: Vec<u8>,
    budget: Option<FrameBudget>,
    /// Bytes paid for from the budget, at least `buf.len()`.
    paid: usize,
    /// How long the frame being read has waited for room, all told.
    waited: Duration,
}

/// Most bytes asked of the stream at a time.
const READ_CHUNK: usize = 8 * 1024;
/// Bytes made room for while the next frame's length is not known.
const SMALL_READ: usize = 256;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of frames from `reader`.
    pub fn new(reader: R) -> Self {
        FrameReader {
            reader,
            buf: Vec::new(),
            budget: None,
            paid: 0,
            waited: Duration::ZERO,
        }
    }

    /// Pays for what this reader holds from `budget` from now on.
    pub fn set_budget(&mut self, budget: FrameBudget) {
        self.refund_all();
        self.budget = Some(budget);
    }

    /// Makes sure `bytes` are paid for, waiting for room if need be.
    /// Cancel-safe: room is taken all at once or not at all.
    async fn pay(&mut self, bytes: usize) -> Result<(), CodecError> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        if bytes <= self.paid {
            return Ok(());
        }
        let more = u32::try_from(bytes - self.paid).unwrap_or(u32::MAX);
        // The wait is bounded for the whole frame, not for each read: a
        // frame let through a chunk at a time must not wait for ever.
        let left = budget.wait.saturating_sub(self.waited);
        let started = std::time::Instant::now();
        let room = tokio::time::timeout(left, budget.room.acquire_many(more)).await;
        self.waited += started.elapsed();
        match room {
            Ok(Ok(permit)) => {
                permit.forget();
                self.paid += more as usize;
                Ok(())
            }
            Ok(Err(_)) | Err(_) => Err(CodecError::Busy {
                limit: budget.limit,
                waited: budget.wait,
            }),
        }
    }

    /// Gives back what is paid for beyond the bytes held.
    fn refund_surplus(&mut self) {
        if let Some(budget) = &self.budget {
            let surplus = self.paid.saturating_sub(self.buf.len());
            budget.room.add_permits(surplus);
            self.paid -= surplus;
        }
    }

    fn refund_all(&mut self) {
        if let Some(budget) = &self.budget {
            budget.room.add_permits(self.paid);
        }
        self.paid = 0;
    }

    /// Resolves once the peer sends anything or hangs up (without holding
    /// more than one byte of it). Cancel-safe.
    pub async fn peer_spoke(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            (&mut self.reader).take(1).read_buf(&mut self.buf).await?;
        }
        Ok(())
    }

    /// Drops the part of a frame held so far, giving its room back; how
    /// many of its bytes are still to come, for the caller to read past
    /// (so the peer can finish sending and then read why it was refused).
    pub fn drop_partial_frame(&mut self) -> usize {
        let remaining = match self.buf.get(..PREFIX_LEN) {
            Some(prefix) => {
                let len = u32::from_le_bytes(prefix.try_into().expect("prefix length")) as usize;
                (PREFIX_LEN + len).saturating_sub(self.buf.len())
            }
            None => 0,
        };
        self.buf = Vec::new();
        self.refund_all();
        remaining
    }

    /// Reads and forgets `bytes` of the stream, a chunk at a time.
    pub async fn skip(&mut self, mut bytes: usize) -> std::io::Result<()> {
        let mut chunk = [0u8; READ_CHUNK];
        while bytes > 0 {
            let want = bytes.min(READ_CHUNK);
            match self.reader.read(&mut chunk[..want]).await? {
                0 => break,
                n => bytes -= n,
            }
        }
        Ok(())
    }

    /// The next frame of at most `limit` bytes: `Ok(None)` on a clean end
    /// of stream between frames. Cancel-safe.
    pub async fn next<T: DeserializeOwned>(
        &mut self,
        limit: usize,
    ) -> Result<Option<T>, CodecError> {
        // The previous frame's request has been answered.
        self.refund_surplus();
        loop {
            let mut wanted = SMALL_READ;
            if let Some(prefix) = self.buf.get(..PREFIX_LEN) {
                let len = payload_len_within(prefix.try_into().expect("prefix length"), limit)?;
                let end = PREFIX_LEN + len;
                if self.buf.len() >= end {
                    self.waited = Duration::ZERO;
                    let msg = decode_payload(&self.buf[PREFIX_LEN..end]);
                    self.buf.drain(..end);
                    // A large frame's room is not kept for the connection's life.
                    if self.buf.capacity() > READ_CHUNK {
                        self.buf.shrink_to(READ_CHUNK.max(self.buf.len()));
                    }
                    return msg.map(Some);
                }
                wanted = (end - self.buf.len()).min(READ_CHUNK);
            }
            // Room for the rest of this frame (a read at most), no more: a
            // small frame costs a small buffer.
            self.pay(self.buf.len() + wanted).await?;
            self.buf.reserve(wanted);
            // No more than asked for, though the buffer may have more room:
            // the budget paid for `wanted`.
            let read = (&mut self.reader)
                .take(wanted as u64)
                .read_buf(&mut self.buf)
                .await?;
            if read == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(CodecError::Truncated),
                };
            }
        }
    }
}

impl<R> Drop for FrameReader<R> {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.room.add_permits(self.paid);
        }
    }
}

/// Writes one frame and flushes it.
pub async fn write_frame<W, T>(writer: &mut W, msg: &T) -> Result<(), CodecError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let frame = encode(msg)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    #[tokio::test]
    async fn readers_share_one_budget_and_give_it_back() {
        let budget = FrameBudget::new(64 * KIB, Duration::from_millis(200));
        let (mut a_tx, a_rx) = tokio::io::duplex(MAX_FRAME_LEN);
        let mut a = FrameReader::new(a_rx);
        a.set_budget(budget.clone());
        // Announces 100 KiB and sends 60: holds what arrived, from the budget.
        a_tx.write_all(&(100 * KIB as u32).to_le_bytes())
            .await
            .unwrap();
        a_tx.write_all(&vec![0; 60 * KIB]).await.unwrap();
        let pending =
            tokio::time::timeout(Duration::from_millis(100), a.next::<String>(MAX_FRAME_LEN)).await;
        assert!(pending.is_err(), "the frame is not complete");
        assert!(budget.available() <= READ_CHUNK, "{}", budget.available());

        // Another reader finds no room for its frame, and says so.
        let (mut b_tx, b_rx) = tokio::io::duplex(MAX_FRAME_LEN);
        let mut b = FrameReader::new(b_rx);
        b.set_budget(budget.clone());
        let frame = encode(&"y".repeat(16 * KIB)).unwrap();
        b_tx.write_all(&frame).await.unwrap();
        match b.next::<String>(MAX_FRAME_LEN).await {
            Err(e @ CodecError::Busy { .. }) => {
                assert!(e.to_string().contains("try again"), "{e}")
            }
            other => panic!("read without room: {other:?}"),
        }
        drop((a, b));
        assert_eq!(budget.available(), 64 * KIB, "everything was given back");

        // With room, the same frame is read, and its bytes stay paid for
        // until the next frame is asked for.
        let (mut c_tx, c_rx) = tokio::io::duplex(MAX_FRAME_LEN);
        let mut c = FrameReader::new(c_rx);
        c.set_budget(budget.clone());
        c_tx.write_all(&frame).await.unwrap();
        let text: String = c.next(MAX_FRAME_LEN).await.unwrap().unwrap();
        assert_eq!(text.len(), 16 * KIB);
        assert!(budget.available() <= 48 * KIB);
        drop(c_tx);
        assert!(c.next::<String>(MAX_FRAME_LEN).await.unwrap().is_none());
        assert!(budget.available() >= 63 * KIB);
    }
}
