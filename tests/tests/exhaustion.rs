//! Attacks that try to exhaust or leak from the daemon, done for real
//! against the real binaries, each of which must fail to do harm:
//! sign-in storms (memory of password hashing), lying frame lengths before
//! and after signing in, one process holding every connection it can,
//! silent connections (also from 16 processes at once), 64 signed-in
//! connections sending 15 MB frames together, a request over the frame
//! limit, a provider that echoes the API key, a provider reply far over the
//! cap, a data directory left readable by others, and a socket another
//! user may not open.
//!
//! Memory figures are printed with `eprintln!`; run with `--nocapture` to
//! see them.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use appforge_e2e::mock_provider::{Answer, MockProvider};
use appforge_e2e::{handshake, read_frame, send_frame, wait_for, Daemon, User, PATIENCE};
use appforge_shared::codec;
use appforge_shared::protocol::{
    ClientFrame, Credentials, Envelope, Hello, Reply, Request, Secret, ServerFrame, SessionToken,
};
use appforge_shared::WireError;
use nix::sys::signal::Signal;

const MIB: u64 = 1024; // in KiB, the unit of /proc/PID/status

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A `kB` field of /proc/PID/status (VmRSS, VmSize...), in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .strip_prefix(':')?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status:\n{status}"))
}

fn rss(pid: u32) -> u64 {
    proc_kib(pid, "VmRSS")
}

fn vm_size(pid: u32) -> u64 {
    proc_kib(pid, "VmSize")
}

/// KiB as MiB, for messages.
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Samples a process's VmRSS and VmSize every 10 ms, keeping the peaks.
struct PeakSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, u64, usize)>,
}

impl PeakSampler {
    fn start(pid: u32) -> PeakSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut peak_rss, mut peak_vm, mut samples) = (0, 0, 0);
            loop {
                // One last sample after the stop, so the end is covered too.
                let last = flag.load(Ordering::SeqCst);
                peak_rss = peak_rss.max(rss(pid));
                peak_vm = peak_vm.max(vm_size(pid));
                samples += 1;
                if last {
                    return (peak_rss, peak_vm, samples);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        PeakSampler { stop, thread }
    }

    /// Stops sampling: (peak VmRSS, peak VmSize, samples taken).
    fn finish(self) -> (u64, u64, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the sampler")
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` runs out; whether it held.
/// The daemon's RSS once two readings in a row agree (within 5 s), so a
/// baseline is not a transient.
fn settled_rss(pid: u32) -> u64 {
    let mut base = rss(pid);
    let mut previous = u64::MAX;
    holds_within(Duration::from_secs(5), || {
        let now = rss(pid);
        let steady = now == previous;
        previous = now;
        base = now;
        steady
    });
    base
}

fn holds_within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn request(token: Option<SessionToken>, request: Request) -> ClientFrame {
    ClientFrame::Request(Envelope { token, request })
}

fn login(email: &str, password: &str) -> ClientFrame {
    request(
        None,
        Request::Login(Credentials {
            email: email.to_string(),
            password: Secret(password.to_string()),
        }),
    )
}

/// Signs up over a raw connection and returns the session token.
fn raw_signup(socket: &Path, email: &str) -> SessionToken {
    let mut stream = handshake(socket).expect("handshake");
    let signup = request(
        None,
        Request::Signup(Credentials {
            email: email.to_string(),
            password: Secret("a-good-password-123".to_string()),
        }),
    );
    send_frame(&mut stream, &signup).expect("send the sign-up");
    match read_frame(&mut stream).expect("read the sign-up's answer") {
        Some(ServerFrame::Reply(Reply::Session(session))) => session.token,
        other => panic!("sign-up failed: {other:?}"),
    }
}

/// Reads one frame that must be an error.
#[track_caller]
fn expect_error(stream: &mut UnixStream) -> WireError {
    match read_frame(stream) {
        Ok(Some(ServerFrame::Error(e))) => e,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// Whether the daemon has closed the connection (after what it sent).
fn closed_after(stream: &mut UnixStream) -> bool {
    matches!(read_frame(stream), Ok(None))
}

/// Bytes this end has written that the peer has not read yet (SIOCOUTQ):
/// for a Unix stream socket the memory of the queued data, which drops to 0
/// once the daemon has read everything.
fn unread_by_peer(stream: &UnixStream) -> i32 {
    let mut queued: nix::libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer given.
    let rc = unsafe { nix::libc::ioctl(stream.as_raw_fd(), nix::libc::TIOCOUTQ, &mut queued) };
    assert_eq!(rc, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    queued
}

/// Whether the daemon left the connection open without sending anything.
fn open_and_silent(stream: &UnixStream) -> bool {
    use nix::sys::socket::{recv, MsgFlags};
    let mut byte = [0u8; 1];
    let peeked = recv(
        stream.as_raw_fd(),
        &mut byte,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    );
    peeked == Err(nix::errno::Errno::EAGAIN)
}

fn ping_works(daemon: &Daemon) {
    let out = daemon.user("pinger").run(&["ping"]).ok();
    assert!(out.stdout.starts_with("pong"), "{out:?}");
}

/// A frame prefix announcing `len` payload bytes.
fn prefix(len: usize) -> [u8; codec::PREFIX_LEN] {
    (len as u32).to_le_bytes()
}

const SIXTEEN_MIB: usize = 16 * 1024 * 1024;

/// Whether `text` holds any 12 consecutive characters of `secret`.
fn holds_part_of(text: &str, secret: &str) -> bool {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(12.min(chars.len()))
        .any(|w| text.contains(&w.iter().collect::<String>()))
}

// ---------------------------------------------------------------------------
// 1. Password hashing
// ---------------------------------------------------------------------------

/// Memory of one Argon2id hash (OWASP parameters: m = 19 MiB).
const HASH_MIB: u64 = 19;

/// What 200 connections waiting for a sign-in cost besides the hashes:
/// their tasks and buffers (their database look-ups queue for the one
/// connection without a thread each). Measured on 2 cores: about 1.5 MiB.
/// The bound is looser than that so that a loaded machine's noise never
/// fails it, yet a third hash at once (57 MiB and more) does; the figure
/// against the 40 MiB target is `bench/hardening.py`'s.
const STORM_OVERHEAD_MIB: u64 = 12;

/// 200 sign-ins at once: hashes run at most two at a time (19 MiB each),
/// so the daemon grows by two hashes and little else, and gives the memory
/// back afterwards.
#[test]
fn a_storm_of_sign_ins_is_hashed_two_at_a_time_and_the_memory_given_back() {
    const SIGN_INS: usize = 200;
    let daemon = Daemon::start_with(&["--max-connections-per-client", "300"], &[]);
    let pid = daemon.pid();
    ping_works(&daemon);
    let idle = rss(pid);

    let barrier = Arc::new(Barrier::new(SIGN_INS + 1));
    let clients: Vec<_> = (0..SIGN_INS)
        .map(|i| {
            let socket = daemon.socket.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || -> Result<String, String> {
                // All at once; connecting only then, so no connection
                // waits long enough to be dropped for silence.
                barrier.wait();
                let mut stream = handshake(&socket).map_err(|e| format!("handshake: {e}"))?;
                // Past a burst, failures are answered at a global rate, up
                // to 15 s late each, after the hashes queued ahead.
                stream
                    .set_read_timeout(Some(PATIENCE * 2))
                    .map_err(|e| format!("time-out: {e}"))?;
                let frame = login(&format!("nobody-{i}@example.com"), "some-password-123");
                send_frame(&mut stream, &frame).map_err(|e| format!("send: {e}"))?;
                match read_frame(&mut stream) {
                    Ok(Some(ServerFrame::Error(e))) => Ok(e.message),
                    other => Err(format!("{other:?}")),
                }
            })
        })
        .collect();
    let sampler = PeakSampler::start(pid);
    let started = Instant::now();
    barrier.wait();
    let answers: Vec<_> = clients
        .into_iter()
        .map(|c| c.join().expect("a sign-in thread"))
        .collect();
    let took = started.elapsed();
    let (peak, peak_vm, samples) = sampler.finish();

    let just_after = rss(pid);
    let mut after = just_after;
    let settling = Instant::now();
    let settled = holds_within(Duration::from_secs(20), || {
        after = rss(pid);
        after <= idle + 4 * MIB
    });
    eprintln!(
        "sign-in storm: {SIGN_INS} sign-ins in {took:.1?}; VmRSS idle {}, peak {} (+{}; {samples} samples), \
         just after {} (+{}), settled at {} (+{}) after {:.1?}; VmSize peak {}",
        mib(idle),
        mib(peak),
        mib(peak.saturating_sub(idle)),
        mib(just_after),
        mib(just_after.saturating_sub(idle)),
        mib(after),
        mib(after.saturating_sub(idle)),
        settling.elapsed(),
        mib(peak_vm),
    );

    for answer in &answers {
        match answer {
            Ok(message) => assert!(message.contains("wrong email or password"), "{message}"),
            Err(e) => panic!("a sign-in got no proper answer: {e}"),
        }
    }
    // The sampler saw hashing at all (else the bound below proves nothing).
    assert!(
        peak >= idle + HASH_MIB * MIB / 2,
        "no hash was ever seen: idle {}, peak {}",
        mib(idle),
        mib(peak)
    );
    let bound = (2 * HASH_MIB + STORM_OVERHEAD_MIB) * MIB;
    assert!(
        peak <= idle + bound,
        "the daemon grew from {} to {} during the sign-in storm (bound: idle + {})",
        mib(idle),
        mib(peak),
        mib(bound)
    );
    assert!(
        settled,
        "the daemon kept {} after the storm (idle {}, bound: idle + 4 MiB)",
        mib(after),
        mib(idle)
    );
}

// ---------------------------------------------------------------------------
// 2. Frame limits
// ---------------------------------------------------------------------------

/// 250 connections without a session announce 16 MiB frames: each is
/// refused at its prefix, nothing is allocated for them, others are served.
#[test]
fn huge_frames_announced_before_signing_in_are_refused_at_the_prefix() {
    const CONNECTIONS: usize = 250;
    let daemon = Daemon::start_with(
        &[
            "--max-connections-per-client",
            "300",
            "--max-connections",
            "300",
        ],
        &[],
    );
    let pid = daemon.pid();
    ping_works(&daemon);
    let (idle, idle_vm) = (rss(pid), vm_size(pid));

    let sampler = PeakSampler::start(pid);
    let started = Instant::now();
    let mut streams: Vec<UnixStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut stream = handshake(&daemon.socket).expect("handshake");
            stream
                .write_all(&prefix(SIXTEEN_MIB))
                .expect("send the prefix");
            stream
        })
        .collect();
    let errors: Vec<WireError> = streams.iter_mut().map(expect_error).collect();
    let took = started.elapsed();
    let (peak, peak_vm, samples) = sampler.finish();
    eprintln!(
        "{CONNECTIONS} announced 16 MiB frames without a session: all answered in {took:.1?}; \
         VmRSS idle {}, peak {} (+{}); VmSize idle {}, peak {} (+{}); {samples} samples",
        mib(idle),
        mib(peak),
        mib(peak.saturating_sub(idle)),
        mib(idle_vm),
        mib(peak_vm),
        mib(peak_vm.saturating_sub(idle_vm)),
    );

    for e in &errors {
        // A daemon that waited for the payload would answer "no request
        // within 5s" instead, after five seconds.
        assert!(
            e.message.contains("over the 8192-byte limit"),
            "{}",
            e.message
        );
    }
    for stream in &mut streams {
        assert!(closed_after(stream), "the connection stayed open");
    }
    assert!(took < Duration::from_secs(20), "the refusals took {took:?}");
    assert!(
        peak <= idle + 20 * MIB,
        "VmRSS grew from {} to {}",
        mib(idle),
        mib(peak)
    );
    // Even untouched (lazily zeroed) 16 MiB buffers would show here: 250
    // of them are 4000 MiB of address space.
    assert!(
        peak_vm <= idle_vm + 256 * MIB,
        "VmSize grew from {} to {}",
        mib(idle_vm),
        mib(peak_vm)
    );
    ping_works(&daemon);
}

/// 50 signed-in connections announce 16 MiB and send 1 KiB: the daemon
/// holds what arrived, not what was announced.
#[test]
fn a_signed_in_connection_pays_for_bytes_sent_not_bytes_announced() {
    const CONNECTIONS: usize = 50;
    // A long time-out, so a slow machine cannot mistake silence for the limit.
    let daemon = Daemon::start_with(
        &[
            "--max-connections-per-client",
            "300",
            "--client-timeout",
            "60",
        ],
        &[],
    );
    let pid = daemon.pid();
    let token = raw_signup(&daemon.socket, "ada@example.com");
    // The sign-up's hash is given back before its reply; wait for the
    // daemon to settle anyway, so the baseline is not a transient.
    let base = settled_rss(pid);
    let base_vm = vm_size(pid);

    let mut payload = prefix(SIXTEEN_MIB).to_vec();
    payload.extend(std::iter::repeat_n(b'x', 1024));
    let streams: Vec<UnixStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut stream = handshake(&daemon.socket).expect("handshake");
            send_frame(&mut stream, &ClientFrame::Authenticate(token.clone()))
                .expect("send the session");
            stream
                .write_all(&payload)
                .expect("send the start of a frame");
            stream
        })
        .collect();
    // The daemon has read every byte once nothing is left queued for it.
    wait_for("the daemon to read every byte sent", || {
        streams.iter().all(|s| unread_by_peer(s) == 0)
    });
    let (held, held_vm) = (rss(pid), vm_size(pid));
    eprintln!(
        "{CONNECTIONS} signed-in connections announcing 16 MiB with 1 KiB sent: VmRSS {} -> {} (+{}); \
         VmSize {} -> {} (+{})",
        mib(base),
        mib(held),
        mib(held.saturating_sub(base)),
        mib(base_vm),
        mib(held_vm),
        mib(held_vm.saturating_sub(base_vm)),
    );
    // Still open and unanswered: the session lifted the 8 KiB limit (else
    // each would have been refused), and the frames are still incomplete.
    for stream in &streams {
        assert!(
            open_and_silent(stream),
            "a signed-in connection was answered or closed"
        );
    }
    assert!(
        held <= base + 30 * MIB,
        "VmRSS grew from {} to {} for {CONNECTIONS} KiB received",
        mib(base),
        mib(held)
    );
    // 16 MiB reserved per connection would be 800 MiB of address space,
    // even if never touched.
    assert!(
        held_vm <= base_vm + 400 * MIB,
        "VmSize grew from {} to {}",
        mib(base_vm),
        mib(held_vm)
    );
    drop(streams);
    ping_works(&daemon);
}

/// Without a session a frame over 8 KiB is refused with a hint to sign
/// in; with one, the same frame is read.
#[test]
fn a_frame_over_8_kib_without_a_session_is_told_to_sign_in() {
    let daemon = Daemon::start();
    let long_login = |password_len: usize| {
        codec::encode(&login("ada@example.com", &"p".repeat(password_len))).expect("encode")
    };
    let over = long_login(9000);
    assert!(over.len() - codec::PREFIX_LEN > codec::MAX_UNAUTHENTICATED_FRAME_LEN);
    let under = long_login(8000);
    assert!(under.len() - codec::PREFIX_LEN < codec::MAX_UNAUTHENTICATED_FRAME_LEN);

    // Over the limit, no session: refused, with the way out.
    let mut stream = handshake(&daemon.socket).expect("handshake");
    // The daemon may close before reading it all; that is the point.
    let _ = stream.write_all(&over);
    let e = expect_error(&mut stream);
    assert!(
        e.message.contains("over the 8192-byte limit"),
        "{}",
        e.message
    );
    assert!(e.message.contains("sign in"), "{}", e.message);
    assert!(closed_after(&mut stream));

    // Under the limit, no session: read, and answered on its merits.
    let mut stream = handshake(&daemon.socket).expect("handshake");
    stream.write_all(&under).expect("send");
    let e = expect_error(&mut stream);
    assert!(e.message.contains("passwords must be"), "{}", e.message);

    // Over the limit, with a session: read, and answered on its merits.
    let token = raw_signup(&daemon.socket, "bob@example.com");
    let mut stream = handshake(&daemon.socket).expect("handshake");
    send_frame(&mut stream, &ClientFrame::Authenticate(token)).expect("send the session");
    stream.write_all(&over).expect("send");
    let e = expect_error(&mut stream);
    assert!(e.message.contains("passwords must be"), "{}", e.message);
}

// ---------------------------------------------------------------------------
// 3. Connection slots and silent clients
// ---------------------------------------------------------------------------

/// What the connection hog saw, when it stopped.
#[derive(Debug, Default)]
struct HogReport {
    connects: usize,
    connect_failures: usize,
    welcomes: usize,
    most_held: usize,
    refusals: Vec<String>,
}

/// What the connection hog sees, as it goes.
#[derive(Debug, Default)]
struct HogLive {
    stop: AtomicBool,
    /// Connections welcomed and still open.
    held: AtomicUsize,
    /// Connections the daemon dropped for saying nothing.
    silent_drops: AtomicUsize,
    /// Welcomes read so far. Counted as they are read, unlike `held`, which
    /// is published once a sweep: a test that read `held` beside
    /// `silent_drops` could see the drops and the old connections at once.
    welcomes: AtomicUsize,
}

/// One connection of the hog: its stream, the bytes read so far, and
/// whether the daemon welcomed it.
struct Hogged {
    stream: UnixStream,
    buf: Vec<u8>,
    welcomed: bool,
}

/// Reads what the daemon sent on one of the hog's connections; whether the
/// daemon closed it.
fn pump(conn: &mut Hogged, report: &mut HogReport, live: &HogLive) -> bool {
    let mut chunk = [0u8; 4096];
    match conn.stream.read(&mut chunk) {
        Ok(0) => true,
        Ok(n) => {
            conn.buf.extend_from_slice(&chunk[..n]);
            while let Ok(Some((frame, used))) = codec::decode_frame::<ServerFrame>(&conn.buf) {
                conn.buf.drain(..used);
                match frame {
                    ServerFrame::Welcome(_) => {
                        conn.welcomed = true;
                        report.welcomes += 1;
                        live.welcomes.fetch_add(1, Ordering::SeqCst);
                    }
                    ServerFrame::Error(e) => {
                        // An error ends the connection: it is no longer
                        // held, whenever its end is read.
                        conn.welcomed = false;
                        if e.message.contains("no request within") {
                            live.silent_drops.fetch_add(1, Ordering::SeqCst);
                        }
                        report.refusals.push(e.message);
                    }
                    _ => {}
                }
            }
            false
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Opens and holds as many connections as it can, up to `slots`, sending
/// a handshake on each and nothing more, and reconnecting whenever the
/// daemon drops one, with `pause` between sweeps, until told to stop (or
/// after 20 s).
fn hog(socket: &Path, slots: usize, pause: Duration, live: &HogLive) -> HogReport {
    let hello = codec::encode(&ClientFrame::Hello(Hello::current())).expect("encode");
    let mut report = HogReport::default();
    let mut conns: Vec<Option<Hogged>> = (0..slots).map(|_| None).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !live.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        for slot in conns.iter_mut() {
            let Some(conn) = slot else {
                match UnixStream::connect(socket) {
                    Ok(mut stream) => {
                        report.connects += 1;
                        let _ = stream.write_all(&hello);
                        stream.set_nonblocking(true).expect("non-blocking");
                        *slot = Some(Hogged {
                            stream,
                            buf: Vec::new(),
                            welcomed: false,
                        });
                    }
                    Err(_) => report.connect_failures += 1,
                }
                continue;
            };
            if pump(conn, &mut report, live) {
                *slot = None;
            }
        }
        // The daemon writes a dropped connection's error before it frees
        // the slot for another, so once a welcome was read here, the error
        // of the connection it replaced is there to read too: read it
        // before counting, or both would count.
        for slot in conns.iter_mut() {
            if let Some(conn) = slot.as_mut().filter(|c| c.welcomed) {
                if pump(conn, &mut report, live) {
                    *slot = None;
                }
            }
        }
        let held = conns.iter().flatten().filter(|c| c.welcomed).count();
        live.held.store(held, Ordering::SeqCst);
        report.most_held = report.most_held.max(held);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    report
}

/// What happened while a hog held connections and the real client pinged.
struct HogOutcome {
    report: HogReport,
    failed_pings: Vec<appforge_e2e::Run>,
    pings_took: Duration,
    hog_outlived_pings: bool,
    recycled: bool,
    per_client: usize,
    global: usize,
}

/// Runs a hog of 256 connections with `pause` between its sweeps against a
/// daemon with the default limits (256 clients, 16 a process) while the
/// real client, another process, pings 20 times; then keeps on until the
/// daemon has dropped the hog's first 16 connections for their silence
/// (after 5 s) and the hog has taken the slots again.
fn hog_while_pinging(pause: Duration) -> HogOutcome {
    let daemon = Daemon::start();
    let live = Arc::new(HogLive::default());
    let hog = {
        let socket = daemon.socket.clone();
        let live = Arc::clone(&live);
        std::thread::spawn(move || hog(&socket, 256, pause, &live))
    };
    wait_for("the hog to hold its 16 connections", || {
        live.held.load(Ordering::SeqCst) >= 16 || hog.is_finished()
    });
    let user = daemon.user("ada");
    let mut failed_pings = Vec::new();
    let started = Instant::now();
    for _ in 0..20 {
        let run = user.run(&["ping"]);
        if run.code != 0 || !run.stdout.starts_with("pong") {
            failed_pings.push(run);
        }
    }
    let pings_took = started.elapsed();
    let recycled = holds_within(Duration::from_secs(15), || {
        live.silent_drops.load(Ordering::SeqCst) >= 16 && live.welcomes.load(Ordering::SeqCst) >= 32
    });
    let hog_outlived_pings = !hog.is_finished();
    live.stop.store(true, Ordering::SeqCst);
    let report = hog.join().expect("the hog");
    let count = |needle: &str| {
        report
            .refusals
            .iter()
            .filter(|m| m.contains(needle))
            .count()
    };
    let per_client = count("already holds its limit of 16 connections");
    let global = count("already serving its limit");
    let silent = live.silent_drops.load(Ordering::SeqCst);
    eprintln!(
        "connection hog (pause {pause:?}): {} connects ({} failed), {} welcomed, at most {} held \
         at once, {per_client} refused by the per-process limit, {global} by the global one, \
         {silent} dropped for silence, {} other errors; 20 pings took {pings_took:.1?}, {} failed",
        report.connects,
        report.connect_failures,
        report.welcomes,
        report.most_held,
        report.refusals.len() - per_client - global - silent,
        failed_pings.len(),
    );
    HogOutcome {
        report,
        failed_pings,
        pings_took,
        hog_outlived_pings,
        recycled,
        per_client,
        global,
    }
}

/// The test process holds every connection it can get (256 tries at all
/// times, a sweep every 2 ms or so) while the real client pings 20 times:
/// every ping gets through. The hog gets its 16, and gets them back after
/// the daemon drops them for silence.
#[test]
fn one_process_holding_every_connection_it_can_does_not_keep_others_out() {
    let out = hog_while_pinging(Duration::from_millis(2));
    assert!(
        out.failed_pings.is_empty(),
        "pings failed: {:#?}",
        out.failed_pings
    );
    assert!(
        out.hog_outlived_pings,
        "the hog stopped before the pings ended ({:?})",
        out.pings_took
    );
    assert!(
        out.report.most_held <= 16,
        "one process held {} connections",
        out.report.most_held
    );
    assert!(
        out.per_client > 0,
        "the hog was never refused by the per-process limit: {:?}",
        out.report
    );
    assert!(
        out.recycled && out.report.welcomes >= 32,
        "the hog's silent connections were not dropped and retaken: {:?}",
        out.report
    );
}

/// A connection that shook hands and then says nothing is dropped after
/// five seconds, even when the configured client time-out is 30.
#[test]
fn a_silent_connection_without_a_session_is_dropped_within_5_s() {
    let daemon = Daemon::start_with(&["--client-timeout", "30"], &[]);
    let mut silent = handshake(&daemon.socket).expect("handshake");
    let started = Instant::now();
    let e = expect_error(&mut silent);
    let waited = started.elapsed();
    eprintln!("silent connection dropped after {waited:.1?}");
    assert!(e.message.contains("no request within"), "{}", e.message);
    assert!(
        waited < Duration::from_secs(12),
        "dropped only after {waited:?}"
    );
    assert!(closed_after(&mut silent));
}

/// A connection without a session that keeps talking (a ping every half
/// second) still ends: its whole life is bounded, not only its silences.
#[test]
fn a_busy_connection_without_a_session_ends_too() {
    let daemon = Daemon::start_with(&["--client-timeout", "1"], &[]);
    let mut busy = handshake(&daemon.socket).expect("handshake");
    let started = Instant::now();
    let ping = ClientFrame::Request(Envelope {
        token: None,
        request: Request::Ping,
    });
    let ended = loop {
        assert!(started.elapsed() < PATIENCE, "a busy connection lived on");
        // A send may fail once the daemon has closed: its error frame is
        // still there to read.
        let _ = send_frame(&mut busy, &ping);
        match read_frame(&mut busy) {
            Ok(Some(ServerFrame::Reply(_))) => std::thread::sleep(Duration::from_millis(500)),
            Ok(Some(ServerFrame::Error(e))) => break e,
            other => panic!("unexpected answer: {other:?}"),
        }
    };
    let e = ended;
    assert!(e.message.contains("no session within"), "{}", e.message);
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 4 and 5. Provider errors and huge replies
// ---------------------------------------------------------------------------

fn mock_daemon(mock: &MockProvider, extra: &[&str], envs: &[(&str, &str)]) -> Daemon {
    let mut args = vec!["--first-byte-timeout", "5"];
    args.extend_from_slice(extra);
    mock.daemon(&args, envs)
}

fn signed_up(daemon: &Daemon) -> User {
    let user = daemon.user("ada");
    user.signup().ok();
    user
}

fn db(daemon: &Daemon) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        daemon.data_dir.join("appforge.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database read-only")
}

/// Every column of every `generation_history` row, as text.
fn history_rows(daemon: &Daemon) -> Vec<Vec<(String, String)>> {
    let conn = db(daemon);
    let mut stmt = conn
        .prepare("SELECT * FROM generation_history ORDER BY id")
        .expect("query the history");
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let rows = stmt
        .query_map([], |row| {
            (0..names.len())
                .map(|i| {
                    use rusqlite::types::ValueRef;
                    let text = match row.get_ref(i)? {
                        ValueRef::Null => String::new(),
                        ValueRef::Integer(n) => n.to_string(),
                        ValueRef::Real(x) => x.to_string(),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                    };
                    Ok((names[i].clone(), text))
                })
                .collect()
        })
        .expect("read the history")
        .collect::<Result<_, _>>()
        .expect("read the history");
    rows
}

fn column<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no column {name} in {row:?}"))
}

fn project_count(daemon: &Daemon) -> i64 {
    db(daemon)
        .query_row("SELECT count(*) FROM projects", [], |r| r.get(0))
        .expect("count the projects")
}

/// A provider that echoes the request's credentials in its 401: the key is
/// scrubbed from what the client sees, the log and the history.
#[test]
fn a_provider_that_echoes_the_api_key_leaks_it_nowhere() {
    const KEY: &str = "sk-exhaustion-Zq8vN3xK7pL2mW9tR4yB";
    let mock = MockProvider::start();
    mock.set_default(Answer::EchoAuthorization);
    let daemon = mock_daemon(&mock, &[], &[("OPENAI_API_KEY", KEY)]);
    let user = signed_up(&daemon);
    let out = user.run(&["generate", "a todo app", "--save"]);
    eprintln!("client's error: {}", out.stderr.trim());

    // The key really went out, and really came back in the error body.
    let requests = mock.requests();
    assert_eq!(requests.len(), 1, "an auth failure must not be retried");
    assert_eq!(
        requests[0].header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );

    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        !holds_part_of(&out.stderr, KEY) && !holds_part_of(&out.stdout, KEY),
        "the key reached the client: {out:?}"
    );
    assert!(out.stderr.contains("refused the API key"), "{out:?}");
    assert!(out.stderr.contains("[redacted]"), "{out:?}");

    assert!(
        !holds_part_of(&daemon.log(), KEY),
        "the key reached the daemon's log"
    );

    let rows = history_rows(&daemon);
    assert_eq!(rows.len(), 1, "one failed generation is recorded: {rows:?}");
    for row in &rows {
        for (name, value) in row {
            assert!(
                !holds_part_of(value, KEY),
                "the key is in generation_history.{name}: {value}"
            );
        }
    }
    let error = column(&rows[0], "error");
    assert!(
        error.contains("refused the API key") && error.contains("[redacted]"),
        "{error}"
    );
    assert_eq!(column(&rows[0], "outcome"), "failed");
    assert_eq!(project_count(&daemon), 0);
    // Nor anywhere in the database's files.
    for file in ["appforge.db", "appforge.db-wal"] {
        let bytes = std::fs::read(daemon.data_dir.join(file)).unwrap_or_default();
        assert!(
            !holds_part_of(&String::from_utf8_lossy(&bytes), KEY),
            "the key is in {file}"
        );
    }
}

/// A reply over 2 MiB, streamed or not, is dropped: the client hears it was
/// too large, nothing is saved, and the history holds none of it.
#[test]
fn a_reply_over_2_mib_is_refused_and_not_stored() {
    const MAX_REPLY_BYTES: usize = 2 * 1024 * 1024;
    let size = MAX_REPLY_BYTES + 512 * 1024;
    for extra in [&[][..], &["--no-stream"][..]] {
        let mock = MockProvider::start();
        mock.set_default(Answer::Huge(size));
        let daemon = mock_daemon(&mock, extra, &[]);
        let user = signed_up(&daemon);
        let started = Instant::now();
        let out = user.run(&["generate", "a todo app", "--save"]);
        eprintln!(
            "{size}-byte reply ({extra:?}) refused in {:.1?}: {}",
            started.elapsed(),
            out.stderr.trim()
        );
        assert_ne!(out.code, 0, "{extra:?}: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("grew past {MAX_REPLY_BYTES} bytes")),
            "{extra:?}: {out:?}"
        );
        assert_eq!(mock.requests().len(), 1, "{extra:?}: retried");
        assert_eq!(project_count(&daemon), 0, "{extra:?}: a project was saved");
        let rows = history_rows(&daemon);
        assert!(!rows.is_empty(), "{extra:?}: no history row");
        for row in &rows {
            assert_eq!(column(row, "outcome"), "failed", "{extra:?}");
            for (name, value) in row {
                assert!(
                    value.len() <= 64 * 1024,
                    "{extra:?}: generation_history.{name} holds {} bytes",
                    value.len()
                );
            }
        }
        ping_works(&daemon);
    }
}

// ---------------------------------------------------------------------------
// 6. The data directory
// ---------------------------------------------------------------------------

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A data directory left open to others (0755, files 0644, a killed
/// daemon's -wal and -shm included) is made private again at start.
#[test]
fn the_data_directory_is_made_private_whatever_mode_it_had() {
    let mut daemon = Daemon::start();
    daemon.user("ada").signup().ok();
    // Killed, so the -wal and -shm files stay behind.
    daemon.signal_and_wait(Signal::SIGKILL);
    let dir = daemon.data_dir.clone();
    let stray = dir.join("notes.txt");
    std::fs::write(&stray, "left here by someone").expect("a stray file");
    set_mode(&dir, 0o755);
    let mut files = vec![stray];
    for name in ["appforge.db", "appforge.db-wal", "appforge.db-shm"] {
        let path = dir.join(name);
        assert!(path.exists(), "{} is missing after a kill", path.display());
        files.push(path);
    }
    for file in &files {
        set_mode(file, 0o644);
    }

    daemon.restart();
    assert_eq!(mode(&dir), 0o700, "data dir mode {:o}", mode(&dir));
    for file in &files {
        assert_eq!(
            mode(file),
            0o600,
            "{} has mode {:o}",
            file.display(),
            mode(file)
        );
    }
    // Files SQLite makes from now on are private too.
    daemon.user("bob").signup().ok();
    for entry in std::fs::read_dir(&dir).expect("list the data dir") {
        let entry = entry.expect("an entry");
        if entry.file_type().expect("file type").is_file() {
            assert_eq!(
                mode(&entry.path()),
                0o600,
                "{} has mode {:o}",
                entry.path().display(),
                mode(&entry.path())
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 7. Another user's socket
// ---------------------------------------------------------------------------

fn find_setpriv() -> Option<std::path::PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// `appforge status` as uid/gid 65534.
fn run_as_nobody(setpriv: &Path, socket: &Path, home: &Path) -> std::process::Output {
    std::process::Command::new(setpriv)
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(appforge_e2e::bin("appforge"))
        .arg("--socket")
        .arg(socket)
        .arg("status")
        .env_remove("APPFORGE_SOCKET")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run setpriv")
}

/// Someone who may not open the socket hears "permission denied" and gets
/// exit status 4, whether the socket's folder or the socket refuses them.
#[test]
#[ignore = "needs root and setpriv to run the client as another user: tests/run-ignored runs it"]
fn a_socket_the_user_may_not_open_says_permission_denied() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs the client as another user and needs root: run it with \
         tests/run-ignored (as root, or with sudo -n allowed)"
    );
    let setpriv = find_setpriv()
        .expect("this test needs setpriv (util-linux) to run the client as another user");
    let daemon = Daemon::start();
    let home = tempfile::tempdir().expect("a home folder");
    set_mode(home.path(), 0o777);

    // The owner (root) gets through, so the path and command are right.
    let own = daemon.user("root").run(&["status"]);
    assert_eq!(own.code, 0, "{own:?}");

    // Nobody cannot even reach the socket: the daemon made its folder 0700.
    let socket_dir = daemon.socket.parent().expect("socket folder");
    let out = run_as_nobody(&setpriv, &daemon.socket, home.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "socket folder mode {:o}, socket mode {:o}: {:?} {}",
        mode(socket_dir),
        mode(&daemon.socket),
        out.status.code(),
        stderr.trim()
    );
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");

    // With the folders opened, the socket's own mode (0600) refuses.
    set_mode(daemon.dir.path(), 0o755);
    set_mode(socket_dir, 0o755);
    assert_eq!(mode(&daemon.socket) & 0o777, 0o600);
    let out = run_as_nobody(&setpriv, &daemon.socket, home.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "socket mode 600 alone: {:?} {}",
        out.status.code(),
        stderr.trim()
    );
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
}

// ---------------------------------------------------------------------------
// Gaps found while writing these tests: ignored until the daemon is fixed,
// run them with `--ignored`.
// ---------------------------------------------------------------------------

/// A provider's message is cut to 300 characters before the key is
/// scrubbed from it, so a key the cut splits is not recognised: a provider
/// that puts the key at character 266 shows all of it but its last
/// character to the client, and stores that in the history.
#[test]
fn a_key_split_by_the_message_cap_is_still_scrubbed() {
    const KEY: &str = "sk-exhaustion-Zq8vN3xK7pL2mW9tR4yB";
    let mock = MockProvider::start();
    mock.set_default(Answer::EchoKeyAfter(300 - (KEY.len() - 1)));
    let daemon = mock_daemon(&mock, &[], &[("OPENAI_API_KEY", KEY)]);
    let user = signed_up(&daemon);
    let out = user.run(&["generate", "a todo app", "--save"]);
    eprintln!("client's error: {}", out.stderr.trim());
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("refused the API key"), "{out:?}");
    assert!(
        !holds_part_of(&out.stderr, KEY),
        "part of the key reached the client: {}",
        out.stderr
    );
    assert!(
        !holds_part_of(&daemon.log(), KEY),
        "part of the key reached the log"
    );
    for row in history_rows(&daemon) {
        for (name, value) in &row {
            assert!(
                !holds_part_of(value, KEY),
                "part of the key is in generation_history.{name}: {value}"
            );
        }
    }
}

/// While a request runs, the daemon watches the connection for a hang-up
/// with a read of up to 16 MiB whether or not it has shown a session, so
/// bytes sent during a queued sign-in escape the 8 KiB limit: 16
/// connections of one process, each sending 8 MiB while its sign-in waits
/// for a hashing permit, grow the daemon by some 150 MiB.
#[test]
fn bytes_sent_during_a_sign_in_are_held_to_the_limit_without_a_session() {
    const QUEUED: usize = 100;
    const ATTACKERS: usize = 16;
    let daemon = Daemon::start_with(&["--max-connections-per-client", "300"], &[]);
    let pid = daemon.pid();
    ping_works(&daemon);
    let idle = rss(pid);
    // Sign-ins queued ahead, so the attackers' own wait for a permit.
    let queued: Vec<UnixStream> = (0..QUEUED)
        .map(|i| {
            let mut s = handshake(&daemon.socket).expect("handshake");
            let frame = login(&format!("queued-{i}@example.com"), "some-password-123");
            send_frame(&mut s, &frame).expect("send a sign-in");
            s
        })
        .collect();
    let sampler = PeakSampler::start(pid);
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            let socket = daemon.socket.clone();
            std::thread::spawn(move || {
                let mut s = handshake(&socket).expect("handshake");
                let frame = login(&format!("attacker-{i}@example.com"), "some-password-123");
                send_frame(&mut s, &frame).expect("send a sign-in");
                let mut bytes = prefix(SIXTEEN_MIB).to_vec();
                bytes.extend(std::iter::repeat_n(b'x', 8 * 1024 * 1024));
                // The daemon may refuse and close: that is the hoped-for end.
                let _ = s.write_all(&bytes);
                holds_within(Duration::from_secs(20), || unread_by_peer(&s) == 0);
                s
            })
        })
        .collect();
    let attackers: Vec<UnixStream> = attackers
        .into_iter()
        .map(|t| t.join().expect("an attacker"))
        .collect();
    let (peak, _, _) = sampler.finish();
    eprintln!(
        "{ATTACKERS} connections without a session sent 8 MiB each during their sign-in: \
         VmRSS idle {}, peak {} (+{})",
        mib(idle),
        mib(peak),
        mib(peak.saturating_sub(idle))
    );
    drop((queued, attackers));
    let bound = (2 * HASH_MIB + STORM_OVERHEAD_MIB) * MIB;
    assert!(
        peak <= idle + bound,
        "the daemon grew from {} to {} (bound: idle + {})",
        mib(idle),
        mib(peak),
        mib(bound)
    );
}

/// The global limit (256) is taken when a connection is accepted, before
/// the per-process limit refuses it, so a process that reconnects without
/// pause keeps up to 256 connections in flight, 240 of them about to be
/// refused, and others meet "already serving its limit of 256 clients":
/// the hog itself is told so (6 to 19 times a run here), and 1 run in 3 a
/// ping of the real client fails with it.
#[test]
fn a_process_reconnecting_without_pause_cannot_fill_the_global_limit() {
    let out = hog_while_pinging(Duration::ZERO);
    assert!(
        out.failed_pings.is_empty(),
        "pings failed: {:#?}",
        out.failed_pings
    );
    assert_eq!(
        out.global, 0,
        "a process holding 16 connections met the global limit of 256: {:?}",
        out.report
    );
}

// ---------------------------------------------------------------------------
// 6. Slots kept for clients, frames sharing one budget, too large a request
// ---------------------------------------------------------------------------

/// One process of the slot flood: holds `n` connections that say hello
/// and nothing more, opens a new one whenever the daemon drops one, and
/// gives up after `secs` whatever happens.
const SILENT_HOLDER: &str = r#"
import select, socket, sys, time
path, hello, n, secs = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
conns, deadline = [], time.time() + secs
while time.time() < deadline:
    while len(conns) < n:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            s.sendall(hello)
        except OSError:
            s.close()
            break
        conns.append(s)
    ready, _, _ = select.select(conns, [], [], 0.05) if conns else ([], [], time.sleep(0.05))
    for s in ready:
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            conns.remove(s)
            s.close()
"#;

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Child processes the test started, killed when dropped.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `processes` Python processes, each holding `each` silent connections
/// to the daemon for 90 s at most, re-opened when dropped.
fn silent_holders(daemon: &Daemon, processes: usize, each: usize) -> Children {
    let hello = codec::encode(&ClientFrame::Hello(Hello::current())).expect("encode");
    let hello: String = hello.iter().map(|b| format!("{b:02x}")).collect();
    Children(
        (0..processes)
            .map(|_| {
                std::process::Command::new(appforge_e2e::python())
                    .arg("-c")
                    .arg(SILENT_HOLDER)
                    .arg(&daemon.socket)
                    .arg(&hello)
                    .arg(each.to_string())
                    .arg("90")
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("start a silent holder")
            })
            .collect(),
    )
}

/// 16 processes each hold 16 silent connections, re-opened whenever the
/// daemon drops one (256, the daemon's whole limit), while a client pings
/// 40 times: the pings get through, as each takes the slot of a silent
/// connection of a process holding more than its share.
#[test]
fn silent_connections_from_16_processes_do_not_shut_out_ping() {
    const PROCESSES: usize = 16;
    const EACH: usize = 16;
    let daemon = Daemon::start();
    let pid = daemon.pid();
    let ada = daemon.user("ada");
    ada.signup().ok();
    let idle_fds = open_fds(pid);
    let children = silent_holders(&daemon, PROCESSES, EACH);
    // Most of the 256 are in; the rest are refused and retried.
    wait_for("the silent holders to take the daemon's slots", || {
        open_fds(pid) >= idle_fds + 200
    });
    let mut failed = Vec::new();
    let started = Instant::now();
    for _ in 0..40 {
        let run = ada.run(&["ping"]);
        if run.code != 0 || !run.stdout.starts_with("pong") {
            failed.push(run);
        }
    }
    let most_fds = open_fds(pid);
    eprintln!(
        "40 pings under {PROCESSES} x {EACH} silent connections took {:.1?}: {} failed; \
         the daemon held {most_fds} fds ({idle_fds} idle)",
        started.elapsed(),
        failed.len()
    );
    assert!(
        children.0.len() == PROCESSES && failed.len() <= 1,
        "{} of 40 pings failed: {failed:#?}",
        failed.len()
    );
    // Slots are handed over, not added: descriptors stay near the limit.
    assert!(
        most_fds <= idle_fds + 256 + 64,
        "the daemon held {most_fds} fds"
    );
    drop(children);
    ping_works(&daemon);
}

/// As many processes as the daemon has slots each hold one silent
/// connection, re-opened when dropped: no process holds more than another,
/// so no slot may be taken from one, yet a signed-in `ping` still gets in,
/// on the session it shows at once, into the part kept for signed-in
/// connections.
#[test]
fn silent_connections_one_per_process_do_not_shut_out_a_signed_in_ping() {
    const TOTAL: usize = 32;
    let daemon = Daemon::start_with(&["--max-connections", &TOTAL.to_string()], &[]);
    let pid = daemon.pid();
    let ada = daemon.user("ada");
    ada.signup().ok();
    let idle_fds = open_fds(pid);
    let children = silent_holders(&daemon, TOTAL, 1);
    // Seven eighths of the slots are for connections without a session.
    wait_for("the silent holders to take the daemon's slots", || {
        open_fds(pid) >= idle_fds + TOTAL * 7 / 8
    });
    let failed: Vec<_> = (0..20)
        .map(|_| ada.run(&["ping"]))
        .filter(|run| run.code != 0 || !run.stdout.starts_with("pong"))
        .collect();
    assert!(
        children.0.len() == TOTAL && failed.is_empty(),
        "{} of 20 pings failed: {failed:#?}",
        failed.len()
    );
    drop(children);
    ping_works(&daemon);
}

/// 64 signed-in connections each send one frame of 15 MB at once: the
/// bytes in flight share one budget of 64 MiB, so the daemon grows by
/// about that (not by 64 x 15 MB), frames past it are refused with a
/// clear error, and the budget comes back.
#[test]
fn frames_of_64_signed_in_connections_share_one_budget() {
    const CONNECTIONS: usize = 64;
    const FRAME: usize = 15 * 1000 * 1000;
    let daemon = Daemon::start_with(&["--max-connections-per-client", "100"], &[]);
    let pid = daemon.pid();
    let token = raw_signup(&daemon.socket, "ada@example.com");
    let base = settled_rss(pid);
    // One buffer for every sender, so the test itself stays small.
    let mut bytes = prefix(FRAME).to_vec();
    bytes.extend(std::iter::repeat_n(b'x', FRAME));
    let bytes = Arc::new(bytes);
    let sampler = PeakSampler::start(pid);
    let started = Instant::now();
    let senders: Vec<JoinHandle<Option<WireError>>> = (0..CONNECTIONS)
        .map(|_| {
            let (socket, token, bytes) = (daemon.socket.clone(), token.clone(), Arc::clone(&bytes));
            std::thread::spawn(move || {
                let mut stream = handshake(&socket).expect("handshake");
                send_frame(&mut stream, &ClientFrame::Authenticate(token)).expect("session");
                stream.set_write_timeout(Some(PATIENCE)).expect("time-out");
                // The daemon may refuse and close midway: that is one end.
                let _ = stream.write_all(&bytes);
                match read_frame(&mut stream) {
                    Ok(Some(ServerFrame::Error(e))) => Some(e),
                    _ => None,
                }
            })
        })
        .collect();
    let answers: Vec<Option<WireError>> = senders
        .into_iter()
        .map(|t| t.join().expect("a sender"))
        .collect();
    let took = started.elapsed();
    let (peak, _, samples) = sampler.finish();
    let busy = answers
        .iter()
        .flatten()
        .filter(|e| e.message.contains("64 MiB of requests"))
        .count();
    let malformed = answers
        .iter()
        .flatten()
        .filter(|e| e.message.contains("malformed"))
        .count();
    let others: std::collections::BTreeSet<&str> = answers
        .iter()
        .map(|a| a.as_ref().map_or("(no answer)", |e| e.message.as_str()))
        .collect();
    eprintln!("answers: {others:?}");
    eprintln!(
        "{CONNECTIONS} signed-in connections sending 15 MB frames: {busy} refused for the \
         budget, {malformed} read whole (and malformed), in {took:.1?}; VmRSS {} -> peak {} \
         (+{}), {samples} samples",
        mib(base),
        mib(peak),
        mib(peak.saturating_sub(base))
    );
    let bound = (64 + 32) * MIB;
    assert!(
        peak <= base + bound,
        "VmRSS grew from {} to {} (bound: + {})",
        mib(base),
        mib(peak),
        mib(bound)
    );
    assert!(busy > 0, "no frame was refused for the budget: {others:?}");
    // Each sender learnt what became of its frame, none was cut off.
    assert_eq!(
        busy + malformed,
        CONNECTIONS,
        "some senders got no reason: {others:?}"
    );
    // The budget was given back: one more frame is read whole.
    let mut stream = handshake(&daemon.socket).expect("handshake");
    send_frame(&mut stream, &ClientFrame::Authenticate(token)).expect("session");
    stream.write_all(&bytes).expect("send a frame");
    let e = expect_error(&mut stream);
    assert!(e.message.contains("malformed"), "{}", e.message);
    ping_works(&daemon);
}

/// An edit of 17 MB is refused by the client before it sends anything,
/// with exit 2 and the limit named.
#[test]
fn a_request_over_16_mib_exits_2_and_names_the_limit() {
    let daemon = Daemon::start();
    let ada = daemon.user("ada");
    ada.signup().ok();
    ada.run(&[
        "generate",
        "a notes app",
        "--save",
        "--name",
        "big",
        "--no-check",
    ])
    .ok();
    let huge = "x".repeat(17 * 1000 * 1000);
    let out = ada
        .run_with_stdin(&["edit", "big", "--file", "notes.txt", "--stdin"], &huge)
        .fails_with(2);
    assert!(
        out.stderr.contains("over the 16 MiB limit of one request"),
        "{out:?}"
    );
    let listed = ada.run(&["--json", "history", "big"]).ok().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}
