//! The daemon as a server: status and ping, bad frames, silent clients,
//! shutdown, a second daemon, and crash safety of the database.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use appforge_e2e::apps::{log_raw, project_with_app, run_app};
use appforge_e2e::web::{dashboard_of, signed_in};
use appforge_e2e::{handshake, read_frame, send_frame, wait_for, Daemon};
use appforge_shared::protocol::{
    ClientFrame, Credentials, Envelope, Hello, Reply, Request, Secret, ServerFrame,
};
use appforge_shared::ErrorCode;
use nix::sys::signal::Signal;
use serde_json::json;

fn ping_works(daemon: &Daemon) {
    let out = daemon.user("pinger").run(&["--json", "ping"]).ok().json();
    assert!(out["daemon_version"].is_string());
}

fn expect_error(stream: &mut UnixStream, code: ErrorCode, needle: &str) {
    match read_frame(stream).expect("read the answer") {
        Some(ServerFrame::Error(e)) => {
            assert_eq!(e.code, code, "{e:?}");
            assert!(e.message.contains(needle), "{e:?}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    // ... and then the daemon closes the connection.
    assert!(read_frame(stream).expect("read after the error").is_none());
}

#[test]
fn status_and_ping_report_the_daemon() {
    let daemon = Daemon::start();
    let user = daemon.user("ada");
    let status = user.run(&["--json", "status"]).ok().json();
    for key in ["version", "pid", "uptime_s", "socket", "data_dir"] {
        assert!(status.get(key).is_some(), "status lacks {key}: {status}");
    }
    assert_eq!(status["pid"], daemon.pid());
    assert_eq!(status["socket"], daemon.socket.display().to_string());
    assert_eq!(status["data_dir"], daemon.data_dir.display().to_string());
    let text = user.run(&["ping"]).ok();
    assert!(text.stdout.starts_with("pong"), "{text:?}");

    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
}

#[test]
fn status_says_why_there_is_no_dashboard_and_what_to_do() {
    // Turned off: the harness starts daemons with --web-addr off.
    let daemon = Daemon::start();
    let user = appforge_e2e::apps::signed_up(&daemon, "ada");
    let text = user.run(&["status"]).ok().stdout;
    assert!(
        text.contains("dashboard:   off: turned off by --web-addr off; start appforged with --web-addr 127.0.0.1:PORT"),
        "{text}"
    );
    let status = user.run(&["--json", "status"]).ok().json();
    assert_eq!(status["web_url"], serde_json::Value::Null, "{status}");
    assert!(status["web_off"].as_str().is_some(), "{status}");

    // Its port held by another program: which port, and what to do.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let port = holder.local_addr().unwrap().port();
    let daemon = Daemon::start_with(&["--web-addr", &format!("127.0.0.1:{port}")], &[]);
    let user = appforge_e2e::apps::signed_up(&daemon, "ada");
    let text = user.run(&["status"]).ok().stdout;
    let why = format!(
        "dashboard:   off: port {port} is taken by another program (another appforged, say): \
         restart appforged with --web-addr 127.0.0.1:0 to take any free port"
    );
    assert!(text.contains(&why), "{text}");
    let status = user.run(&["--json", "status"]).ok().json();
    assert_eq!(status["web_url"], serde_json::Value::Null, "{status}");
    // Asking for a link says the same.
    let out = user.run(&["dashboard", "--no-open"]).fails_with(2);
    assert!(
        out.stderr.contains(&format!("port {port} is taken")),
        "{out:?}"
    );
    drop(holder);
}

#[test]
fn a_missing_daemon_gets_one_line_and_status_5() {
    let daemon = Daemon::start();
    let user = appforge_e2e::User {
        socket: daemon.dir.path().join("nothing-here.sock"),
        ..daemon.user("ada")
    };
    let out = user.run(&["status"]).fails_with(5);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("appforged is not running"), "{out:?}");
    assert!(!out.stderr.contains("panicked"));
    user.run(&["--json", "whoami"]).fails_with(5);
}

#[test]
fn garbage_frames_get_an_error_while_others_are_served() {
    let daemon = Daemon::start();

    let mut garbage = UnixStream::connect(&daemon.socket).unwrap();
    garbage
        .write_all(&[5, 0, 0, 0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb])
        .unwrap();
    expect_error(&mut garbage, ErrorCode::InvalidInput, "malformed frame");
    ping_works(&daemon);

    let mut oversized = UnixStream::connect(&daemon.socket).unwrap();
    oversized.write_all(&u32::MAX.to_le_bytes()).unwrap();
    expect_error(&mut oversized, ErrorCode::InvalidInput, "over the");
    ping_works(&daemon);

    let mut wrong_version = UnixStream::connect(&daemon.socket).unwrap();
    let hello = ClientFrame::Hello(Hello {
        protocol: 999,
        client_version: "9.9.9".into(),
    });
    send_frame(&mut wrong_version, &hello).unwrap();
    expect_error(&mut wrong_version, ErrorCode::InvalidInput, "version 999");
    ping_works(&daemon);

    // A request before the handshake is refused too.
    let mut rude = UnixStream::connect(&daemon.socket).unwrap();
    let ping = ClientFrame::Request(Envelope {
        token: None,
        request: Request::Ping,
    });
    send_frame(&mut rude, &ping).unwrap();
    expect_error(&mut rude, ErrorCode::InvalidInput, "handshake");

    // Garbage after a good handshake closes only that connection.
    let mut good = handshake(&daemon.socket).unwrap();
    good.write_all(&[3, 0, 0, 0, 9, 9, 9]).unwrap();
    expect_error(&mut good, ErrorCode::InvalidInput, "malformed");
    ping_works(&daemon);
}

#[test]
fn a_silent_client_neither_blocks_others_nor_stays_forever() {
    let daemon = Daemon::start_with(&["--client-timeout", "1"], &[]);
    let mut silent = UnixStream::connect(&daemon.socket).unwrap();
    let mut half_frame = UnixStream::connect(&daemon.socket).unwrap();
    half_frame.write_all(&[100, 0]).unwrap();
    for _ in 0..3 {
        ping_works(&daemon);
    }
    expect_error(&mut silent, ErrorCode::InvalidInput, "no request within");
    expect_error(
        &mut half_frame,
        ErrorCode::InvalidInput,
        "no request within",
    );
}

#[test]
fn clients_over_the_limit_are_told_to_retry() {
    let daemon = Daemon::start_with(&["--max-connections", "2"], &[]);
    let _a = handshake(&daemon.socket).unwrap();
    let _b = handshake(&daemon.socket).unwrap();
    let mut c = UnixStream::connect(&daemon.socket).unwrap();
    expect_error(&mut c, ErrorCode::Forbidden, "limit of 2 clients");
    drop(_a);
    wait_for("a free connection slot", || {
        handshake(&daemon.socket).is_ok()
    });
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_removes_the_socket() {
    let mut daemon = Daemon::start();
    let mut stream = handshake(&daemon.socket).unwrap();
    // Signing up hashes a password, which takes a while: long enough to be
    // in flight when the signal lands.
    let signup = ClientFrame::Request(Envelope {
        token: None,
        request: Request::Signup(Credentials {
            email: "late@example.com".into(),
            password: Secret("password-123".into()),
        }),
    });
    send_frame(&mut stream, &signup).unwrap();
    let status = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    match read_frame(&mut stream).unwrap() {
        Some(ServerFrame::Reply(Reply::Session(s))) => assert_eq!(s.email, "late@example.com"),
        other => panic!("the request in flight was not answered: {other:?}"),
    }
    assert!(!daemon.socket.exists(), "the socket file was left behind");
    // The account was really stored.
    daemon.restart();
    let late = appforge_e2e::User {
        email: "late@example.com".into(),
        password: "password-123".into(),
        ..daemon.user("late")
    };
    late.login().ok();
}

/// Two daemons on one SQLite file would each supervise its apps: one on
/// the same data folder with a socket of its own is refused, naming the first.
#[test]
fn a_second_daemon_on_the_same_data_folder_is_refused_whatever_its_socket() {
    let daemon = Daemon::start();
    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(appforge_e2e::bin("appforged"))
        .arg("--socket")
        .arg(other.path().join("other.sock"))
        .arg("--data-dir")
        .arg(&daemon.data_dir)
        .args(["--web-addr", "off", "--host-name", "elsewhere"])
        .env("XDG_CONFIG_HOME", other.path())
        .env_remove("APPFORGE_DATABASE_URL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("already uses the database"), "{err}");
    assert!(err.contains(&format!("pid {}", daemon.pid())), "{err}");
    assert!(!other.path().join("other.sock").exists());
    ping_works(&daemon);
}

#[test]
fn a_second_daemon_refuses_a_live_socket_and_replaces_a_stale_one() {
    let mut daemon = Daemon::start();
    let second = daemon.run_another(&[]);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    // Same socket and same data: the database's lock, taken first, refuses it.
    assert!(err.contains("already uses the database"), "{err}");
    assert!(err.contains(&daemon.pid().to_string()), "{err}");
    ping_works(&daemon);

    // kill -9 leaves the socket file behind; the next daemon replaces it.
    daemon.signal_and_wait(Signal::SIGKILL);
    assert!(std::fs::symlink_metadata(&daemon.socket)
        .unwrap()
        .file_type()
        .is_socket());
    // Meanwhile a client says nothing listens there, and how to start it.
    let out = daemon.user("late").run(&["ping"]).fails_with(5);
    assert!(
        out.stderr.contains("nothing listens there"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    daemon.restart();
    ping_works(&daemon);
    assert!(daemon.log().contains("stale socket"));
}

#[test]
fn a_file_in_the_way_of_the_socket_is_not_deleted() {
    let mut daemon = Daemon::start();
    daemon.signal_and_wait(Signal::SIGTERM);
    std::fs::write(&daemon.socket, "keep me").unwrap();
    let out = daemon.run_another(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&daemon.socket).unwrap(), "keep me");
}

#[test]
fn kill_9_during_a_burst_of_signups_leaves_a_sound_database() {
    let mut daemon = Daemon::start();
    let socket = daemon.socket.clone();
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let socket = socket.clone();
            let acknowledged = acknowledged.clone();
            std::thread::spawn(move || {
                let mut done = 0;
                for i in 0.. {
                    let Ok(mut stream) = handshake(&socket) else {
                        break;
                    };
                    let signup = ClientFrame::Request(Envelope {
                        token: None,
                        request: Request::Signup(Credentials {
                            email: format!("w{w}-{i}@example.com"),
                            password: Secret("password-123".into()),
                        }),
                    });
                    if send_frame(&mut stream, &signup).is_err() {
                        break;
                    }
                    match read_frame(&mut stream) {
                        Ok(Some(ServerFrame::Reply(_))) => {
                            done += 1;
                            acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        _ => break,
                    }
                }
                done
            })
        })
        .collect();
    let db_path = daemon.data_dir.join("appforge.db");
    // Wait on replies the clients read, not on rows: a row can be committed
    // before its reply is read, and then it is not acknowledged.
    wait_for("a few acknowledged sign-ups", || {
        acknowledged.load(std::sync::atomic::Ordering::SeqCst) >= 8
    });
    daemon.signal_and_wait(Signal::SIGKILL);
    let done: i32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(done >= 8);

    let conn = rusqlite::Connection::open(&db_path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let users: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    // Every acknowledged sign-up survived.
    assert!(
        users >= i64::from(done),
        "{users} users, {done} acknowledged"
    );
    drop(conn);
    daemon.restart();
    let status = daemon.user("after").run(&["--json", "status"]).ok().json();
    assert_eq!(status["users"], users);
}

#[test]
fn logs_can_be_json_lines() {
    let daemon = Daemon::start_with(&["--log-format", "json"], &[]);
    ping_works(&daemon);
    let log = daemon.log();
    let ready = log
        .lines()
        .find(|l| l.contains("appforged ready"))
        .expect("a ready line");
    let v: serde_json::Value = serde_json::from_str(ready).expect("a JSON log line");
    assert_eq!(v["level"], "INFO");
    assert!(v["socket"].is_string());
}

/// An app that says on stdout each time it is probed, so the test sees the
/// probe timer fire.
const PROBED_APP: &str = r#"from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "idle\n"


@app.route("/healthz")
def healthz():
    print("probed", flush=True)
    return "ok\n"
"#;

/// The longest period of the daemon's periodic timers here: the usage
/// sampler's (`usage::INTERVAL`, 60 s), which has no setting. The others are
/// set short below or are short already: health probes (`--health-interval
/// 1`), systemd watchdog pings (half of `WATCHDOG_USEC`, 0.5 s here) and the
/// shim's limit passes (processes every second, disk every 3 s). The host
/// claim's renewal runs on PostgreSQL only (tests/postgres.rs).
const LONGEST_PERIOD: Duration = Duration::from_secs(60);

/// A datagram socket standing for systemd's notify socket, drained by a
/// thread (the kernel queues only a few datagrams, and a full queue would
/// make the daemon warn); counts the watchdog pings.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    pings: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("a folder for the notify socket");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a read time-out");
        let pings = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopped) = (Arc::clone(&pings), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    if String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .any(|l| l == "WATCHDOG=1")
                    {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        NotifySocket {
            _dir: dir,
            path,
            pings,
            stop,
        }
    }

    fn pings(&self) -> usize {
        self.pings.load(Ordering::Relaxed)
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Lines of `after` past `before` (a log only grows here).
fn added<'a>(before: &str, after: &'a str) -> &'a str {
    after.get(before.len()..).unwrap_or(after)
}

/// Watches an idle daemon, with an app running and a dashboard session,
/// for longer than the longest period of its timers: none of them may
/// log at info (or above) in the daemon's log, nor write appforge's own
/// lines into the app's log. Each timer is seen to fire in the window, so
/// a window shorter than a period fails too.
#[test]
fn idle_daemon_logs_nothing() {
    let notify = NotifySocket::bind();
    let notify_path = notify.path.display().to_string();
    let daemon = Daemon::start_with(
        &["--web-addr", "127.0.0.1:0", "--health-interval", "1"],
        &[
            ("APPFORGE_LOG", "info"),
            ("NOTIFY_SOCKET", &notify_path),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let addr = dashboard_of(&daemon);
    let (ada, browser) = signed_in(&daemon, addr, "ada");
    let id = project_with_app(&ada, "idle", PROBED_APP);
    run_app(&ada, "idle");
    let probes = || log_raw(&daemon, id).matches("probed\n").count();
    wait_for("the app's first probe", || probes() > 0);

    let before = daemon.log();
    let app_before = log_raw(&daemon, id);
    let (pings_before, probes_before) = (notify.pings(), probes());
    // Work at the start of the window: whatever it leaves to do later
    // must not log either.
    for _ in 0..5 {
        ping_works(&daemon);
    }
    let end = Instant::now() + LONGEST_PERIOD + Duration::from_secs(2);
    while Instant::now() < end {
        let log = daemon.log();
        assert!(
            log == before,
            "an idle daemon logged at info:\n{}",
            added(&before, &log)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = daemon.log();
    assert!(
        log == before,
        "an idle daemon logged at info:\n{}",
        added(&before, &log)
    );
    let app_log = log_raw(&daemon, id);
    let notes: Vec<&str> = added(&app_before, &app_log)
        .lines()
        .filter(|l| l.starts_with('\x1e'))
        .collect();
    assert!(
        notes.is_empty(),
        "appforge wrote into the idle app's log: {notes:?}"
    );

    // The timers did fire in the window: at least half the times their
    // periods allow (a loaded machine may be late).
    let at_least =
        |period: Duration| (LONGEST_PERIOD.as_secs_f64() / period.as_secs_f64() / 2.0) as usize;
    let probed = probes() - probes_before;
    assert!(
        probed >= at_least(Duration::from_secs(1)),
        "only {probed} health probes in {LONGEST_PERIOD:?} at 1 s"
    );
    let pinged = notify.pings() - pings_before;
    assert!(
        pinged >= at_least(Duration::from_millis(500)),
        "only {pinged} watchdog pings in {LONGEST_PERIOD:?} at 0.5 s"
    );
    let usage = browser.call(json!("Usage")).last();
    let samples = usage["reply"]["Usage"][0]["samples"]
        .as_array()
        .map_or(0, Vec::len);
    // One kept sample of the minute, and the reading of the moment.
    assert!(
        samples >= 2,
        "the usage sampler took no sample in the window: {usage}"
    );
    ada.run(&["stop", "idle"]).ok();
}
