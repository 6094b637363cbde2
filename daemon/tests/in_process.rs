//! The daemon as a library: `run(settings, shutdown)` started inside the
//! test's own process opens its store, serves the socket, and returns once
//! its shutdown future resolves, removing the socket. (The end-to-end
//! suites in tests/ drive the `appforged` binary from other processes.)

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use appforge_daemon::config::{Cli, Secrets, Settings};
use appforge_shared::codec;
use appforge_shared::protocol::ServerFrame;
use clap::Parser;

/// What the daemon answers on `socket` to a client of its own process:
/// it refuses it, as it refuses every process it started, apps included.
/// `None` until it listens.
fn answer(socket: &Path) -> Option<ServerFrame> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut prefix = [0u8; codec::PREFIX_LEN];
    stream.read_exact(&mut prefix).ok()?;
    let mut payload = vec![0u8; codec::payload_len(prefix).ok()?];
    stream.read_exact(&mut payload).ok()?;
    codec::decode_payload(&payload).ok()
}

/// The daemon starts its apps' shims from the program beside its own
/// binary; here that binary is this test's, so the shim is put beside it.
fn shim_beside_this_test() {
    let here = std::env::current_exe().unwrap();
    let beside = here.parent().unwrap().join("appforge-shim");
    if !beside.exists() {
        let _ = std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_appforge-shim"), &beside);
    }
}

#[test]
fn a_daemon_started_in_process_serves_until_told_to_stop() {
    shim_beside_this_test();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("appforged.sock");
    let data = dir.path().join("data");
    let cli = Cli::parse_from([
        "appforged".as_ref(),
        "--socket".as_ref(),
        socket.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--web-addr".as_ref(),
        "off".as_ref(),
    ]);
    let settings = Settings::from_cli(cli, Secrets::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = runtime.spawn(appforge_daemon::run(settings, async {
        let _ = stopped.await;
    }));

    let deadline = Instant::now() + Duration::from_secs(120);
    let answered = loop {
        if let Some(frame) = answer(&socket) {
            break frame;
        }
        assert!(!served.is_finished(), "the daemon ended before serving");
        assert!(Instant::now() < deadline, "the daemon never answered");
        std::thread::sleep(Duration::from_millis(20));
    };
    match answered {
        ServerFrame::Error(e) => assert!(e.message.contains("supervised apps"), "{e:?}"),
        other => panic!("its own process was let in: {other:?}"),
    }
    assert!(data.join("appforge.db").exists());

    stop.send(()).unwrap();
    let outcome = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), served).await })
        .expect("run returns once told to stop")
        .unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(!socket.exists(), "the socket file is removed");
}
