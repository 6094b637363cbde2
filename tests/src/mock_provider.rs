//! A fake OpenAI-compatible chat completions server (the API Groq, OpenAI,
//! Ollama and others serve) for end-to-end tests.
//!
//! It is a real HTTP/1.1 server on 127.0.0.1, so the daemon's provider code
//! runs unchanged over a real socket, with no network and no API key. Tests
//! script its answers and faults (rate limits, cut-off replies, dropped
//! streams, hang-ups...) and inspect what the daemon sent.
//!
//! The HTTP is hand-written on purpose: the crate has no HTTP dependency, and
//! owning every byte lets the server misbehave exactly as asked.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Polling step: short, so hang-ups and shutdown are noticed promptly.
const STEP: Duration = Duration::from_millis(20);
/// A client that has not finished its request by then is dropped.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// A client that stops reading cannot hold a thread forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the client to close after we have answered.
const LINGER: Duration = Duration::from_secs(2);
/// Pause between stream events, so they arrive as separate reads (and a
/// client that hangs up mid-stream makes a later write fail).
const EVENT_GAP: Duration = Duration::from_millis(2);
/// Characters of content per streamed chunk.
const CHUNK_CHARS: usize = 40;
/// Bytes of content per streamed chunk of [`Answer::Huge`].
const HUGE_CHUNK: usize = 16 * 1024;
const MAX_HEAD: usize = 64 * 1024;
const MAX_LINE: usize = 8 * 1024;
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Groq's rate-limit headers, sent on successful answers and on 429s.
const RATE_LIMIT_HEADERS: [(&str, &str); 6] = [
    ("x-ratelimit-limit-requests", "14400"),
    ("x-ratelimit-remaining-requests", "14399"),
    ("x-ratelimit-limit-tokens", "6000"),
    ("x-ratelimit-remaining-tokens", "5843"),
    ("x-ratelimit-reset-requests", "6s"),
    ("x-ratelimit-reset-tokens", "1.57s"),
];

/// A scripted OpenAI-compatible provider, listening until it is dropped.
///
/// Serves `POST /v1/chat/completions` and `GET /v1/models`; anything else
/// gets a 404.
pub struct MockProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// How the provider answers one chat completion request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A normal reply with this content and finish_reason "stop".
    Reply(String),
    /// A reply cut off at the token limit: finish_reason "length".
    CutOff(String),
    /// 429 with `retry-after: {secs}`, the rate-limit headers and Groq's
    /// `rate_limit_exceeded` error body.
    RateLimited {
        /// Seconds sent in `retry-after` (and in the error message).
        retry_after_secs: u64,
    },
    /// That HTTP status (500, 502, 503, 400, 404, 413, 422...) with an
    /// OpenAI-style error body.
    Status(u16),
    /// 401 with Groq's "Invalid API Key" error body.
    Unauthorized,
    /// Waits this long before sending the status line, then answers with the
    /// content. A client that hangs up meanwhile is counted in
    /// [`MockProvider::aborted`].
    SlowFirstByte(Duration, String),
    /// Streams part of the content (the role chunk and the first half of the
    /// characters), then drops the connection without a final chunk or
    /// `[DONE]`. For non-stream requests: sends the headers (with the full
    /// Content-Length) and half the body, then closes.
    DropMidStream(String),
    /// 200 with a body (for streams: an SSE data line, followed by `[DONE]`)
    /// that is not valid JSON.
    MalformedJson,
    /// A stream that, after some content, carries a data line
    /// `{"error":{"message":"...","type":"server_error"}}` and then closes
    /// without `[DONE]`. For non-stream requests: 200 with that error body,
    /// the nearest equivalent (an error inside a success).
    ErrorInStream,
    /// 401 whose error message echoes the request's credentials, as some
    /// providers and proxies do: the key alone and the whole
    /// `Authorization` header, e.g. `{"error":{"message":"Invalid API key
    /// provided: KEY (sent as Authorization: Bearer KEY)"}}`.
    EchoAuthorization,
    /// A successful reply whose content is this many bytes (lines of `x`),
    /// sent fast: streamed in large chunks with no pause between them, or
    /// as one JSON document. For replies far over any sane size.
    Huge(usize),
    /// Like [`Answer::Huge`], but cut off at the token limit
    /// (finish_reason "length"), so the client asks for a continuation.
    HugeCutOff(usize),
    /// 401 whose error message is this many filler characters and then the
    /// key (the `Authorization` header without `Bearer `), alone: where a
    /// long message puts the key decides whether a cap on its length cuts
    /// the key in two.
    EchoKeyAfter(usize),
}

/// Where usage is reported in streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageStyle {
    /// `x_groq.usage` on the final chunk (the one with finish_reason). The default.
    Groq,
    /// A last chunk with empty `choices` and top-level `usage`, only when the
    /// request had `stream_options.include_usage = true`.
    OpenAi,
}

/// One chat completion request as the provider received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The HTTP method, e.g. "POST".
    pub method: String,
    /// The request target, e.g. "/v1/chat/completions".
    pub path: String,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; `Null` if it is not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// State shared by the test and the server threads.
struct Shared {
    stop: AtomicBool,
    aborted: AtomicUsize,
    state: Mutex<State>,
}

struct State {
    queue: VecDeque<Answer>,
    default: Answer,
    style: UsageStyle,
    requests: Vec<RecordedRequest>,
}

impl Shared {
    /// Locks the state, ignoring poisoning: a panicking test thread must not
    /// turn every later request into a second panic.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

impl MockProvider {
    /// A test daemon whose `openai` provider is this server, with quick
    /// retries and a 2 s first-byte time-out unless `extra` sets one.
    pub fn daemon(&self, extra: &[&str], envs: &[(&str, &str)]) -> crate::Daemon {
        let base = self.base_url();
        let mut args = vec![
            "--provider",
            "openai",
            "--base-url",
            &base,
            "--retry-base-ms",
            "10",
        ];
        if !extra.contains(&"--first-byte-timeout") {
            args.extend_from_slice(&["--first-byte-timeout", "2"]);
        }
        args.extend_from_slice(extra);
        crate::Daemon::start_with(&args, envs)
    }

    /// Starts the server on a free port of 127.0.0.1.
    pub fn start() -> MockProvider {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the mock provider");
        let addr = listener.local_addr().expect("mock provider address");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            aborted: AtomicUsize::new(0),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                default: Answer::Reply(String::new()),
                style: UsageStyle::Groq,
                requests: Vec::new(),
            }),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("mock-provider".into())
            .spawn(move || accept_loop(listener, for_thread))
            .expect("spawn the mock provider");
        MockProvider {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL to configure in the daemon.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues answers, used in order, one per chat completion request.
    pub fn push(&self, answer: Answer) {
        self.shared.state().queue.push_back(answer);
    }

    /// The answer used when the queue is empty (initially `Reply("")`).
    pub fn set_default(&self, answer: Answer) {
        self.shared.state().default = answer;
    }

    /// Where streams report usage (initially [`UsageStyle::Groq`]).
    pub fn set_usage_style(&self, style: UsageStyle) {
        self.shared.state().style = style;
    }

    /// Every chat completion request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// Number of connections the client closed before the answer was fully
    /// written (e.g. a cancelled request). A client that half-closes its
    /// side while waiting for a slow answer counts too: the two look alike.
    pub fn aborted(&self) -> usize {
        self.shared.aborted.load(Ordering::SeqCst)
    }

    /// Blocks (polling, up to 60 s, then panics) until at least `n` chat
    /// completion requests were received.
    #[track_caller]
    pub fn wait_for_requests(&self, n: usize) {
        let deadline = Instant::now() + crate::PATIENCE;
        loop {
            let got = self.shared.state().requests.len();
            if got >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} chat completion request(s) at the mock provider; got {got}"
            );
            std::thread::sleep(STEP);
        }
    }
}

impl std::fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProvider")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // accept() blocks; a connection of our own wakes it to see the flag.
        // Only join if that worked, so a drop can never hang.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stopping() {
            break;
        }
        match conn {
            Ok(stream) => {
                let shared = Arc::clone(&shared);
                // If the thread cannot start, the stream is dropped: the
                // client sees a closed connection, the server lives on.
                let _ = std::thread::Builder::new()
                    .name("mock-provider-conn".into())
                    .spawn(move || serve(stream, &shared));
            }
            // E.g. out of file descriptors: back off rather than spin.
            Err(_) => std::thread::sleep(STEP),
        }
    }
}

/// Handles one connection: one request, one answer, close.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    match read_request(&stream, shared) {
        Ok(request) => route(&stream, shared, request),
        Err(ReadError::Gone) => {}
        Err(ReadError::Bad(status, why)) => {
            let body = error_body(
                &format!("Malformed HTTP request: {why}"),
                "invalid_request_error",
                "bad_request",
            );
            let _ = write_json(&stream, status, &[], &body);
        }
    }
    linger_close(stream, shared);
}

/// Closes our side, then waits briefly for the client to close its own:
/// closing with unread input makes the kernel send a reset, which can
/// destroy an answer the client has not read yet.
fn linger_close(stream: TcpStream, shared: &Shared) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(STEP));
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    while Instant::now() < deadline && !shared.stopping() {
        match (&stream).read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

// ---------------------------------------------------------------------------
// Reading requests
// ---------------------------------------------------------------------------

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

enum ReadError {
    /// The client left (or the server is stopping): nobody to answer.
    Gone,
    /// Not valid HTTP: answer with this status.
    Bad(u16, &'static str),
}

/// Buffered reading with a deadline, so a silent client cannot pin a thread.
struct Reader<'a> {
    stream: &'a TcpStream,
    shared: &'a Shared,
    buf: Vec<u8>,
    deadline: Instant,
}

impl Reader<'_> {
    /// Reads more bytes into `buf`; false at end of stream.
    fn fill(&mut self) -> Result<bool, ReadError> {
        let mut chunk = [0u8; 8192];
        loop {
            if self.shared.stopping() || Instant::now() >= self.deadline {
                return Err(ReadError::Gone);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => return Err(ReadError::Gone),
            }
        }
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(ReadError::Bad(400, "the body ended early"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn line(&mut self) -> Result<String, ReadError> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(ReadError::Bad(400, "line too long"));
            }
            if !self.fill()? {
                return Err(ReadError::Bad(400, "the chunked body ended early"));
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn read_request(stream: &TcpStream, shared: &Shared) -> Result<Request, ReadError> {
    let _ = stream.set_read_timeout(Some(STEP * 5));
    let mut r = Reader {
        stream,
        shared,
        buf: Vec::new(),
        deadline: Instant::now() + REQUEST_DEADLINE,
    };
    let head_end = loop {
        if let Some(i) = find(&r.buf, b"\r\n\r\n") {
            break i;
        }
        if r.buf.len() > MAX_HEAD {
            return Err(ReadError::Bad(431, "request head too large"));
        }
        if !r.fill()? {
            // Nothing at all is a plain connect-and-close (like our own
            // wake-up connection); anything else is a truncated request.
            return Err(if r.buf.is_empty() {
                ReadError::Gone
            } else {
                ReadError::Bad(400, "the request ended inside its head")
            });
        }
    };
    let head = String::from_utf8_lossy(&r.buf[..head_end]).into_owned();
    r.buf.drain(..head_end + 4);

    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (method, target) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None)
            if !m.is_empty()
                && m.bytes().all(|b| b.is_ascii_uppercase())
                && t.starts_with('/')
                && v.starts_with("HTTP/1.") =>
        {
            (m.to_string(), t.to_string())
        }
        _ => return Err(ReadError::Bad(400, "bad request line")),
    };
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Bad(400, "header line without a colon"));
        };
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ReadError::Bad(400, "bad header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    let chunked = header("transfer-encoding")
        .map(|te| te.to_ascii_lowercase().contains("chunked"))
        .unwrap_or(false);
    let length = match header("content-length") {
        Some(v) if !chunked => Some(
            v.parse::<usize>()
                .map_err(|_| ReadError::Bad(400, "bad content-length"))?,
        ),
        _ => None,
    };
    if length.is_some_and(|n| n > MAX_BODY) {
        return Err(ReadError::Bad(413, "body too large"));
    }
    let wants_body = chunked || length.is_some_and(|n| n > 0);
    if wants_body && header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        // curl waits for this before sending large bodies.
        let _ = (&*stream).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let line = r.line()?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| ReadError::Bad(400, "bad chunk size"))?;
            if size == 0 {
                // Skip trailers up to the empty line.
                while !r.line()?.is_empty() {}
                break;
            }
            if size > MAX_BODY - body.len() {
                return Err(ReadError::Bad(413, "body too large"));
            }
            body.extend(r.take(size)?);
            if !r.line()?.is_empty() {
                return Err(ReadError::Bad(400, "chunk not followed by CRLF"));
            }
        }
        body
    } else {
        r.take(length.unwrap_or(0))?
    };
    Ok(Request {
        method,
        target,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------
// Answering
// ---------------------------------------------------------------------------

fn route(stream: &TcpStream, shared: &Shared, request: Request) {
    let path = request.target.split('?').next().unwrap_or_default();
    match (request.method.as_str(), path) {
        ("POST", "/v1/chat/completions") => chat(stream, shared, request),
        ("GET", "/v1/models") => {
            let _ = write_json(stream, 200, &[], &models());
        }
        _ => {
            let message = format!(
                "Unknown request URL: {} {}. Please check the URL for typos.",
                request.method, path
            );
            let body = error_body(&message, "invalid_request_error", "unknown_url");
            let _ = write_json(stream, 404, &[], &body);
        }
    }
}

/// What an answer needs to know about its request.
struct Chat {
    n: usize,
    model: String,
    created: u64,
    stream: bool,
    include_usage: bool,
    prompt_tokens: u64,
    style: UsageStyle,
    /// The request's `Authorization` header, if any.
    authorization: Option<String>,
}

impl Chat {
    fn id(&self) -> String {
        format!("chatcmpl-mock-{}", self.n)
    }

    fn request_id(&self) -> String {
        format!("req_mock_{}", self.n)
    }

    /// content-type, x-request-id and the rate-limit headers.
    fn headers(&self, content_type: &str) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("content-type", content_type.to_string()),
            ("x-request-id", self.request_id()),
        ];
        headers.extend(RATE_LIMIT_HEADERS.iter().map(|(k, v)| (*k, v.to_string())));
        headers
    }
}

fn chat(stream: &TcpStream, shared: &Shared, request: Request) {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let authorization = request
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    // Recorded before answering, so a test that waits for the request can
    // then act (e.g. cancel) while the answer is still pending.
    let (n, answer, style) = {
        let mut state = shared.state();
        state.requests.push(RecordedRequest {
            method: request.method,
            path: request.target,
            headers: request.headers,
            body: body.clone(),
        });
        let answer = match state.queue.pop_front() {
            Some(answer) => answer,
            None => state.default.clone(),
        };
        (state.requests.len(), answer, state.style)
    };
    let chat = Chat {
        n,
        model: body["model"].as_str().unwrap_or("mock-model").to_string(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        stream: body["stream"] == Value::Bool(true),
        include_usage: body["stream_options"]["include_usage"] == Value::Bool(true),
        prompt_tokens: prompt_tokens(&body),
        style,
        authorization,
    };
    if answer_chat(stream, shared, &chat, answer).is_err() {
        shared.aborted.fetch_add(1, Ordering::SeqCst);
    }
}

/// Writes the answer; an error means the client went away before the end.
fn answer_chat(stream: &TcpStream, shared: &Shared, chat: &Chat, answer: Answer) -> io::Result<()> {
    match answer {
        Answer::Reply(content) => complete(stream, chat, &content, "stop"),
        Answer::CutOff(content) => complete(stream, chat, &content, "length"),
        Answer::RateLimited { retry_after_secs } => {
            let message = format!(
                "Rate limit reached for model `{}` in organization `org_mock` service tier `on_demand` \
                 on tokens per minute (TPM): Limit 6000, Used 5843, Requested 1200. \
                 Please try again in {retry_after_secs}s. \
                 Visit https://console.groq.com/docs/rate-limits for more information.",
                chat.model
            );
            let mut headers = chat.headers("application/json");
            headers.push(("retry-after", retry_after_secs.to_string()));
            let body = error_body(&message, "tokens", "rate_limit_exceeded");
            write_body(stream, 429, &headers, body.to_string().as_bytes())
        }
        Answer::Status(status) => {
            let body = status_error(status, &chat.model);
            write_json(
                stream,
                status,
                &[("x-request-id", chat.request_id())],
                &body,
            )
        }
        Answer::Unauthorized => {
            let body = error_body(
                "Invalid API Key",
                "invalid_request_error",
                "invalid_api_key",
            );
            write_json(stream, 401, &[("x-request-id", chat.request_id())], &body)
        }
        Answer::SlowFirstByte(delay, content) => {
            match wait_while_connected(stream, shared, delay) {
                Waited::Done => complete(stream, chat, &content, "stop"),
                Waited::ClientLeft => Err(ErrorKind::ConnectionAborted.into()),
                Waited::Stopping => Ok(()),
            }
        }
        Answer::DropMidStream(content) => {
            if chat.stream {
                stream_head(stream, chat)?;
                let half: String = content.chars().take(content.chars().count() / 2).collect();
                send_event(stream, &role_chunk(chat))?;
                for piece in pieces(&half) {
                    send_event(stream, &content_chunk(chat, &piece))?;
                }
            } else {
                let body = completion(chat, &content, "stop").to_string();
                write_head(
                    stream,
                    200,
                    &chat.headers("application/json"),
                    Some(body.len()),
                )?;
                (&*stream).write_all(&body.as_bytes()[..body.len() / 2])?;
            }
            // Hard close: the client must notice the answer is incomplete.
            let _ = stream.shutdown(Shutdown::Both);
            Ok(())
        }
        Answer::MalformedJson => {
            let broken = format!(
                r#"{{"id":"{}","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"unterminated"#,
                chat.id()
            );
            if chat.stream {
                stream_head(stream, chat)?;
                send_event(stream, &role_chunk(chat))?;
                send_data(stream, &broken)?;
                send_data(stream, "[DONE]")
            } else {
                write_body(
                    stream,
                    200,
                    &chat.headers("application/json"),
                    broken.as_bytes(),
                )
            }
        }
        Answer::ErrorInStream => {
            let error = json!({"error": {
                "message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error",
            }});
            if chat.stream {
                stream_head(stream, chat)?;
                send_event(stream, &role_chunk(chat))?;
                send_event(
                    stream,
                    &content_chunk(chat, "Partial answer before the failure"),
                )?;
                // Real providers end the stream right after the error event.
                send_event(stream, &error)
            } else {
                write_json(stream, 200, &chat.headers("application/json"), &error)
            }
        }
        Answer::EchoAuthorization => {
            let header = chat.authorization.as_deref().unwrap_or("(none)");
            let key = header.strip_prefix("Bearer ").unwrap_or(header);
            let message =
                format!("Invalid API key provided: {key} (sent as Authorization: {header})");
            let body = error_body(&message, "invalid_request_error", "invalid_api_key");
            write_json(stream, 401, &[("x-request-id", chat.request_id())], &body)
        }
        Answer::Huge(len) => huge(stream, chat, len, "stop"),
        Answer::HugeCutOff(len) => huge(stream, chat, len, "length"),
        Answer::EchoKeyAfter(filler) => {
            let header = chat.authorization.as_deref().unwrap_or("(none)");
            let key = header.strip_prefix("Bearer ").unwrap_or(header);
            let message = format!("{}{key}", ".".repeat(filler));
            let body = error_body(&message, "invalid_request_error", "invalid_api_key");
            write_json(stream, 401, &[("x-request-id", chat.request_id())], &body)
        }
    }
}

/// `len` bytes of content: lines of 79 `x` and a newline.
fn huge_content(len: usize) -> String {
    let line = format!("{}\n", "x".repeat(79));
    line.repeat(len / line.len() + 1)[..len].to_string()
}

/// A reply of `len` bytes of content, sent as fast as the client reads it.
fn huge(stream: &TcpStream, chat: &Chat, len: usize, finish: &str) -> io::Result<()> {
    let content = huge_content(len);
    if !chat.stream {
        let body = completion(chat, &content, finish);
        return write_json(stream, 200, &chat.headers("application/json"), &body);
    }
    stream_head(stream, chat)?;
    send_event(stream, &role_chunk(chat))?;
    // ASCII only, so any byte offset is a character boundary.
    for piece in content.as_bytes().chunks(HUGE_CHUNK) {
        let piece = std::str::from_utf8(piece).expect("ASCII content");
        let event = content_chunk(chat, piece).to_string();
        (&*stream).write_all(format!("data: {event}\n\n").as_bytes())?;
    }
    let mut last = chunk(chat, json!({}), json!(finish));
    insert(
        &mut last,
        "x_groq",
        json!({"id": chat.request_id(), "usage": groq_usage(chat.prompt_tokens, completion_tokens(&content))}),
    );
    send_event(stream, &last)?;
    send_data(stream, "[DONE]")
}

enum Waited {
    Done,
    ClientLeft,
    Stopping,
}

/// Sleeps `delay` in short steps, peeking at the socket to notice a client
/// that hangs up (end of stream or reset) while it waits.
fn wait_while_connected(stream: &TcpStream, shared: &Shared, delay: Duration) -> Waited {
    let end = Instant::now() + delay;
    let mut probe = [0u8; 1];
    loop {
        let now = Instant::now();
        if now >= end {
            return Waited::Done;
        }
        if shared.stopping() {
            return Waited::Stopping;
        }
        let step = (end - now).min(STEP).max(Duration::from_millis(1));
        let _ = stream.set_read_timeout(Some(step));
        match stream.peek(&mut probe) {
            Ok(0) => return Waited::ClientLeft,
            // Extra bytes: the client is still there; peek would not block.
            Ok(_) => std::thread::sleep(step),
            Err(e) if is_timeout(&e) => {}
            Err(_) => return Waited::ClientLeft,
        }
    }
}

/// A full answer with this content, streamed or not as the request asked.
fn complete(stream: &TcpStream, chat: &Chat, content: &str, finish: &str) -> io::Result<()> {
    if !chat.stream {
        let body = completion(chat, content, finish);
        return write_json(stream, 200, &chat.headers("application/json"), &body);
    }
    stream_head(stream, chat)?;
    send_event(stream, &role_chunk(chat))?;
    for piece in pieces(content) {
        send_event(stream, &content_chunk(chat, &piece))?;
    }
    let completion_tokens = completion_tokens(content);
    let mut last = chunk(chat, json!({}), json!(finish));
    if chat.style == UsageStyle::Groq {
        insert(
            &mut last,
            "x_groq",
            json!({"id": chat.request_id(), "usage": groq_usage(chat.prompt_tokens, completion_tokens)}),
        );
    }
    send_event(stream, &last)?;
    if chat.style == UsageStyle::OpenAi && chat.include_usage {
        send_event(
            stream,
            &json!({
                "id": chat.id(),
                "object": "chat.completion.chunk",
                "created": chat.created,
                "model": chat.model,
                "choices": [],
                "usage": usage(chat.prompt_tokens, completion_tokens),
            }),
        )?;
    }
    send_data(stream, "[DONE]")
}

fn completion(chat: &Chat, content: &str, finish: &str) -> Value {
    json!({
        "id": chat.id(),
        "object": "chat.completion",
        "created": chat.created,
        "model": chat.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage(chat.prompt_tokens, completion_tokens(content)),
        "x_groq": {"id": chat.request_id()},
    })
}

fn chunk(chat: &Chat, delta: Value, finish: Value) -> Value {
    let mut chunk = json!({
        "id": chat.id(),
        "object": "chat.completion.chunk",
        "created": chat.created,
        "model": chat.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    if chat.style == UsageStyle::OpenAi && chat.include_usage {
        // OpenAI puts "usage": null on every chunk but the usage chunk.
        insert(&mut chunk, "usage", Value::Null);
    }
    chunk
}

fn role_chunk(chat: &Chat) -> Value {
    let mut first = chunk(
        chat,
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    );
    insert(&mut first, "x_groq", json!({"id": chat.request_id()}));
    first
}

fn content_chunk(chat: &Chat, piece: &str) -> Value {
    chunk(chat, json!({"content": piece}), Value::Null)
}

fn insert(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

/// The content in pieces of `CHUNK_CHARS` characters (never splitting one).
fn pieces(content: &str) -> Vec<String> {
    let chars: Vec<char> = content.chars().collect();
    chars
        .chunks(CHUNK_CHARS)
        .map(|c| c.iter().collect())
        .collect()
}

/// Deterministic token counts, so tests can assert on usage.
fn prompt_tokens(body: &Value) -> u64 {
    let chars: usize = body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| match &m["content"] {
                    Value::String(s) => s.chars().count(),
                    // Content parts: [{"type":"text","text":"..."}, ...]
                    Value::Array(parts) => parts
                        .iter()
                        .filter_map(|p| p["text"].as_str())
                        .map(|t| t.chars().count())
                        .sum(),
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0);
    (chars as u64 / 4).max(1)
}

fn completion_tokens(content: &str) -> u64 {
    (content.chars().count() as u64 / 4).max(1)
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn groq_usage(prompt: u64, completion: u64) -> Value {
    let mut usage = usage(prompt, completion);
    for (key, secs) in [
        ("queue_time", 0.01),
        ("prompt_time", 0.002),
        ("completion_time", 0.05),
        ("total_time", 0.052),
    ] {
        insert(&mut usage, key, json!(secs));
    }
    usage
}

fn error_body(message: &str, kind: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "code": code}})
}

fn status_error(status: u16, model: &str) -> Value {
    let kind = if status >= 500 {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let (message, code) = match status {
        404 => (
            format!("The model `{model}` does not exist or you do not have access to it."),
            "model_not_found".to_string(),
        ),
        413 => (
            "Request Entity Too Large".to_string(),
            "request_too_large".to_string(),
        ),
        500 => (
            "The server had an error while processing your request. Sorry about that!".to_string(),
            "internal_server_error".to_string(),
        ),
        _ => (
            format!("{} (mock provider, status {status})", reason(status)),
            reason(status).to_ascii_lowercase().replace(' ', "_"),
        ),
    };
    error_body(&message, kind, &code)
}

fn models() -> Value {
    let model = |id: &str, owner: &str, window: u64| json!({"id": id, "object": "model", "created": 1_733_447_754, "owned_by": owner, "active": true, "context_window": window});
    json!({"object": "list", "data": [
        model("llama-3.3-70b-versatile", "Meta", 131_072),
        model("llama-3.1-8b-instant", "Meta", 131_072),
        model("openai/gpt-oss-120b", "OpenAI", 131_072),
    ]})
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

// ---------------------------------------------------------------------------
// Writing responses
// ---------------------------------------------------------------------------

/// Status line and headers; `Connection: close` always, because every
/// connection carries exactly one exchange.
fn write_head(
    mut stream: &TcpStream,
    status: u16,
    headers: &[(&str, String)],
    content_length: Option<usize>,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if let Some(len) = content_length {
        let _ = write!(head, "content-length: {len}\r\n");
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    stream.flush()
}

fn write_body(
    mut stream: &TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<()> {
    write_head(stream, status, headers, Some(body.len()))?;
    stream.write_all(body)?;
    stream.flush()
}

/// JSON body; adds `content-type: application/json` unless given.
fn write_json(
    stream: &TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &Value,
) -> io::Result<()> {
    let mut all = headers.to_vec();
    if !all.iter().any(|(k, _)| *k == "content-type") {
        all.insert(0, ("content-type", "application/json".to_string()));
    }
    write_body(stream, status, &all, body.to_string().as_bytes())
}

/// Stream headers: no Content-Length, the body ends when we close.
fn stream_head(stream: &TcpStream, chat: &Chat) -> io::Result<()> {
    let mut headers = chat.headers("text/event-stream");
    headers.push(("cache-control", "no-cache".to_string()));
    write_head(stream, 200, &headers, None)
}

fn send_event(stream: &TcpStream, event: &Value) -> io::Result<()> {
    send_data(stream, &event.to_string())
}

/// One SSE event, written and flushed on its own (with nodelay set), then a
/// short pause so the client reads it separately.
fn send_data(mut stream: &TcpStream, data: &str) -> io::Result<()> {
    stream.write_all(format!("data: {data}\n\n").as_bytes())?;
    stream.flush()?;
    std::thread::sleep(EVENT_GAP);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parsed HTTP response, read until the server closed.
    struct Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_str(&self.body)
                .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
        }

        /// The data of each SSE event.
        fn events(&self) -> Vec<String> {
            self.body
                .split("\n\n")
                .filter_map(|e| e.strip_prefix("data: "))
                .map(String::from)
                .collect()
        }
    }

    fn connect(mp: &MockProvider) -> TcpStream {
        let stream = TcpStream::connect(mp.addr).expect("connect to the mock provider");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
    }

    fn read_response(mut stream: TcpStream) -> Response {
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the response");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {text:?}"));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {text:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Response {
            status,
            headers,
            body: body.to_string(),
        }
    }

    fn send(mp: &MockProvider, raw: &[u8]) -> Response {
        let mut stream = connect(mp);
        stream.write_all(raw).expect("send the request");
        read_response(stream)
    }

    fn chat_request(body: &Value) -> Vec<u8> {
        let body = body.to_string();
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer gsk_test\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn post_chat(mp: &MockProvider, body: &Value) -> Response {
        send(mp, &chat_request(body))
    }

    fn get(mp: &MockProvider, path: &str) -> Response {
        send(
            mp,
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
        )
    }

    fn hello(stream: bool) -> Value {
        json!({
            "model": "llama-3.3-70b-versatile",
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello to the whole wide world"}],
        })
    }

    fn parse_events(events: &[String]) -> Vec<Value> {
        events
            .iter()
            .filter(|e| e.as_str() != "[DONE]")
            .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("bad event ({err}): {e}")))
            .collect()
    }

    const LONG: &str = "Hello, world! This is a reply long enough to be streamed in several chunks of forty characters each — with ünïcödé too.";

    #[test]
    fn non_stream_reply_is_json_with_content_and_usage() {
        let mp = MockProvider::start();
        mp.push(Answer::Reply("Hello there!".into()));
        let r = post_chat(&mp, &hello(false));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-request-id"), Some("req_mock_1"));
        assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("5843"));
        let v = r.json();
        assert_eq!(v["id"], "chatcmpl-mock-1");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "llama-3.3-70b-versatile");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["message"]["content"], "Hello there!");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["x_groq"]["id"], "req_mock_1");
        // 33 prompt chars / 4 = 8; 12 content chars / 4 = 3.
        assert_eq!(v["usage"]["prompt_tokens"], 8);
        assert_eq!(v["usage"]["completion_tokens"], 3);
        assert_eq!(v["usage"]["total_tokens"], 11);
    }

    #[test]
    fn stream_has_chunks_groq_usage_and_done() {
        let mp = MockProvider::start();
        mp.set_default(Answer::Reply(LONG.into()));
        let r = post_chat(&mp, &hello(true));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        assert_eq!(r.header("content-length"), None);
        let events = r.events();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks = parse_events(&events);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["x_groq"]["id"], "req_mock_1");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, LONG);
        let content_chunks = chunks
            .iter()
            .filter(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
            })
            .count();
        assert!(content_chunks >= 3, "only {content_chunks} content chunks");
        let last = chunks.last().expect("a final chunk");
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(last["choices"][0]["delta"], json!({}));
        let usage = &last["x_groq"]["usage"];
        assert_eq!(usage["prompt_tokens"], 8);
        assert_eq!(usage["completion_tokens"], LONG.chars().count() as u64 / 4);
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(8 + LONG.chars().count() as u64 / 4)
        );
        // Only the last chunk finishes.
        assert!(chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null()));
    }

    #[test]
    fn openai_style_sends_usage_chunk_only_when_asked() {
        let mp = MockProvider::start();
        mp.set_usage_style(UsageStyle::OpenAi);
        mp.set_default(Answer::CutOff("Truncated".into()));
        let mut asked = hello(true);
        asked["stream_options"] = json!({"include_usage": true});
        let r = post_chat(&mp, &asked);
        let events = r.events();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks = parse_events(&events);
        let usage_chunk = chunks.last().expect("usage chunk");
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(usage_chunk["usage"]["completion_tokens"], 2);
        assert_eq!(usage_chunk["usage"]["total_tokens"], 10);
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "length");
        assert!(finish["usage"].is_null());
        assert!(finish.get("x_groq").is_none());

        let r = post_chat(&mp, &hello(true));
        let chunks = parse_events(&r.events());
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        assert_eq!(
            chunks.last().expect("finish chunk")["choices"][0]["finish_reason"],
            "length"
        );
    }

    #[test]
    fn queued_faults_come_out_in_order_then_the_default() {
        let mp = MockProvider::start();
        mp.push(Answer::Status(503));
        mp.push(Answer::Unauthorized);
        mp.push(Answer::MalformedJson);
        mp.push(Answer::CutOff("cut".into()));
        mp.set_default(Answer::Reply("fallback".into()));

        let r = post_chat(&mp, &hello(false));
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["error"]["type"], "server_error");
        let r = post_chat(&mp, &hello(false));
        assert_eq!(r.status, 401);
        assert_eq!(
            r.json(),
            json!({"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}})
        );
        let r = post_chat(&mp, &hello(false));
        assert_eq!(r.status, 200);
        assert!(
            serde_json::from_str::<Value>(&r.body).is_err(),
            "{}",
            r.body
        );
        let r = post_chat(&mp, &hello(false));
        assert_eq!(r.json()["choices"][0]["finish_reason"], "length");
        for _ in 0..2 {
            let r = post_chat(&mp, &hello(false));
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["choices"][0]["message"]["content"], "fallback");
        }
        assert_eq!(mp.requests().len(), 6);
    }

    #[test]
    fn rate_limited_has_retry_after_and_groq_body() {
        let mp = MockProvider::start();
        mp.push(Answer::RateLimited {
            retry_after_secs: 7,
        });
        let r = post_chat(&mp, &hello(true));
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("7"));
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("14400"));
        let error = &r.json()["error"];
        assert_eq!(error["type"], "tokens");
        assert_eq!(error["code"], "rate_limit_exceeded");
        assert!(error["message"]
            .as_str()
            .is_some_and(|m| m.contains("Please try again in 7s.")));
    }

    #[test]
    fn unknown_paths_are_404_and_models_are_listed() {
        let mp = MockProvider::start();
        let r = get(&mp, "/v1/nope");
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["error"]["code"], "unknown_url");
        assert_eq!(get(&mp, "/v1/chat/completions").status, 404);
        assert_eq!(get(&mp, "/").status, 404);
        let r = get(&mp, "/v1/models");
        assert_eq!(r.status, 200);
        assert!(r.json()["data"].as_array().is_some_and(|d| !d.is_empty()));
        assert!(
            mp.requests().is_empty(),
            "only chat completions are recorded"
        );
    }

    #[test]
    fn garbage_does_not_kill_the_server() {
        let mp = MockProvider::start();
        assert_eq!(send(&mp, b"\x00\xff\xfe garbage \x01\r\n\r\n").status, 400);
        assert_eq!(
            send(
                &mp,
                b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: lots\r\n\r\n"
            )
            .status,
            400
        );
        assert_eq!(
            send(
                &mp,
                b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"
            )
            .status,
            400
        );
        assert_eq!(
            send(
                &mp,
                b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n"
            )
            .status,
            413
        );
        // Truncated head, then the client stops sending.
        let mut s = connect(&mp);
        s.write_all(b"POST /v1/chat/compl").expect("write");
        s.shutdown(Shutdown::Write).expect("half-close");
        assert_eq!(read_response(s).status, 400);
        // Connect and leave without a word.
        drop(connect(&mp));

        mp.push(Answer::Reply("still alive".into()));
        let r = post_chat(&mp, &hello(false));
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["choices"][0]["message"]["content"], "still alive");
        assert_eq!(mp.requests().len(), 1);
        assert_eq!(mp.aborted(), 0);
    }

    #[test]
    fn requests_are_recorded_with_headers() {
        let mp = MockProvider::start();
        post_chat(&mp, &hello(false));
        // A chunked, non-JSON body is recorded as Null.
        send(
            &mp,
            b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnot\r\n5\r\n json\r\n0\r\n\r\n",
        );
        mp.wait_for_requests(2);
        let requests = mp.requests();
        assert_eq!(requests.len(), 2);
        let first = &requests[0];
        assert_eq!(first.method, "POST");
        assert_eq!(first.path, "/v1/chat/completions");
        assert_eq!(first.header("Authorization"), Some("Bearer gsk_test"));
        assert!(first
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer gsk_test"));
        assert_eq!(first.body, hello(false));
        assert_eq!(requests[1].path, "/v1/chat/completions?x=1");
        assert_eq!(requests[1].body, Value::Null);
    }

    #[test]
    fn chunked_request_bodies_are_read() {
        let mp = MockProvider::start();
        let body = hello(false).to_string();
        let (a, b) = body.split_at(10);
        let raw = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\nX-Trailer: y\r\n\r\n",
            a.len(),
            b.len()
        );
        assert_eq!(send(&mp, raw.as_bytes()).status, 200);
        assert_eq!(mp.requests()[0].body, hello(false));
    }

    #[test]
    fn drop_mid_stream_ends_without_done() {
        let mp = MockProvider::start();
        mp.push(Answer::DropMidStream(LONG.into()));
        mp.push(Answer::DropMidStream(LONG.into()));
        let r = post_chat(&mp, &hello(true));
        let events = r.events();
        assert!(!events.iter().any(|e| e == "[DONE]"));
        let chunks = parse_events(&events);
        assert!(chunks.len() >= 2);
        assert!(chunks
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null()));
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(!text.is_empty() && LONG.starts_with(&text) && text.len() < LONG.len());

        let r = post_chat(&mp, &hello(false));
        let declared: usize = r
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("content-length");
        assert!(r.body.len() < declared);
        assert_eq!(mp.aborted(), 0, "the server hung up, not the client");
    }

    #[test]
    fn error_in_stream_and_malformed_stream_line() {
        let mp = MockProvider::start();
        mp.push(Answer::ErrorInStream);
        mp.push(Answer::MalformedJson);
        let events = post_chat(&mp, &hello(true)).events();
        let last: Value = serde_json::from_str(events.last().expect("events")).expect("JSON");
        assert_eq!(last["error"]["type"], "server_error");
        assert!(!events.iter().any(|e| e == "[DONE]"));

        let events = post_chat(&mp, &hello(true)).events();
        assert!(events
            .iter()
            .any(|e| e != "[DONE]" && serde_json::from_str::<Value>(e).is_err()));
    }

    #[test]
    fn slow_first_byte_answers_late() {
        let mp = MockProvider::start();
        mp.push(Answer::SlowFirstByte(
            Duration::from_millis(150),
            "late".into(),
        ));
        let started = Instant::now();
        let r = post_chat(&mp, &hello(false));
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(r.json()["choices"][0]["message"]["content"], "late");
        assert_eq!(mp.aborted(), 0);
    }

    #[test]
    fn hanging_up_during_slow_first_byte_counts_as_aborted() {
        let mp = MockProvider::start();
        mp.push(Answer::SlowFirstByte(
            Duration::from_secs(30),
            "never".into(),
        ));
        let mut s = connect(&mp);
        s.write_all(&chat_request(&hello(true))).expect("send");
        mp.wait_for_requests(1);
        drop(s);
        let deadline = Instant::now() + Duration::from_secs(5);
        while mp.aborted() == 0 {
            assert!(Instant::now() < deadline, "the hang-up was not noticed");
            std::thread::sleep(STEP);
        }
        assert_eq!(mp.aborted(), 1);
    }

    #[test]
    fn hanging_up_mid_stream_counts_as_aborted() {
        let mp = MockProvider::start();
        // 50 chunks with a pause between each: the client leaves long before the end.
        mp.push(Answer::Reply("x".repeat(50 * CHUNK_CHARS)));
        let mut s = connect(&mp);
        s.write_all(&chat_request(&hello(true))).expect("send");
        let mut first = [0u8; 64];
        let n = s.read(&mut first).expect("the stream starts");
        assert!(first[..n].starts_with(b"HTTP/1.1 200"));
        drop(s);
        let deadline = Instant::now() + Duration::from_secs(5);
        while mp.aborted() == 0 {
            assert!(Instant::now() < deadline, "the hang-up was not noticed");
            std::thread::sleep(STEP);
        }
        assert_eq!(mp.aborted(), 1);
    }

    #[test]
    fn echo_authorization_echoes_the_key_and_the_header() {
        let mp = MockProvider::start();
        mp.push(Answer::EchoAuthorization);
        let r = post_chat(&mp, &hello(true));
        assert_eq!(r.status, 401);
        let message = r.json()["error"]["message"]
            .as_str()
            .expect("an error message")
            .to_string();
        assert_eq!(
            message,
            "Invalid API key provided: gsk_test (sent as Authorization: Bearer gsk_test)"
        );
    }

    #[test]
    fn huge_sends_that_many_bytes_of_content_streamed_or_not() {
        let mp = MockProvider::start();
        let len = 100_003;
        mp.push(Answer::Huge(len));
        mp.push(Answer::Huge(len));
        let events = post_chat(&mp, &hello(true)).events();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let text: String = parse_events(&events)
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        assert_eq!(text.len(), len);
        assert!(text.bytes().all(|b| b == b'x' || b == b'\n'));
        let r = post_chat(&mp, &hello(false));
        let content = r.json()["choices"][0]["message"]["content"]
            .as_str()
            .expect("content")
            .to_string();
        assert_eq!(content, text);
        assert_eq!(r.json()["choices"][0]["finish_reason"], "stop");

        mp.push(Answer::HugeCutOff(len));
        let chunks = parse_events(&post_chat(&mp, &hello(true)).events());
        let last = chunks.last().expect("a final chunk");
        assert_eq!(last["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn echo_key_after_puts_the_bare_key_after_the_filler() {
        let mp = MockProvider::start();
        mp.push(Answer::EchoKeyAfter(5));
        let r = post_chat(&mp, &hello(false));
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["message"], ".....gsk_test");
    }

    #[test]
    fn dropping_the_provider_stops_the_server() {
        let mp = MockProvider::start();
        let addr = mp.addr;
        assert!(mp.base_url().starts_with("http://127.0.0.1:"));
        assert!(mp.base_url().ends_with("/v1"));
        drop(mp);
        assert!(TcpStream::connect(addr).is_err());
    }
}
