//! Accounts end to end: sign-up, sign-in, sign-out and who-am-I through the
//! real client and daemon, and every way they can be refused.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use appforge_e2e::{handshake, read_frame, send_frame, Daemon, User};
use appforge_shared::protocol::{ClientFrame, Credentials, Envelope, Request, Secret, ServerFrame};

#[test]
fn the_account_flow_works_and_keeps_the_token_private() {
    let daemon = Daemon::start();
    let ada = daemon.user("ada");

    let signed_up = ada.signup().ok().json();
    assert_eq!(signed_up["email"], "ada@example.com");
    let user_id = signed_up["user_id"].as_i64().expect("user_id");
    assert!(
        signed_up.get("token").is_none(),
        "the token must not be printed"
    );

    let session_file = ada.config_home.join("appforge/session.json");
    let mode = std::fs::metadata(&session_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "session file mode {mode:o}");
    let dir_mode = std::fs::metadata(session_file.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "config folder mode {dir_mode:o}");

    let me = ada.run(&["--json", "whoami"]).ok().json();
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["user_id"], user_id);
    let text = ada.run(&["whoami"]).ok();
    assert!(text.stdout.contains("ada@example.com"), "{text:?}");

    ada.run(&["logout"]).ok();
    assert!(!session_file.exists());
    let out = ada.run(&["whoami"]).fails_with(4);
    assert!(out.stderr.contains("not signed in"), "{out:?}");
    ada.run(&["logout"]).fails_with(4);

    let logged_in = ada.login().ok().json();
    assert_eq!(logged_in["user_id"], user_id);
    assert_eq!(
        ada.run(&["--json", "whoami"]).ok().json()["user_id"],
        user_id
    );

    // The password and token never reach the daemon's log or database.
    let token = std::fs::read_to_string(&session_file).unwrap();
    let token: serde_json::Value = serde_json::from_str(&token).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let log = daemon.log();
    assert!(!log.contains(&ada.password) && !log.contains(&token));
    let stored = daemon.store_bytes();
    assert!(!stored.is_empty(), "the store holds the account");
    let text = String::from_utf8_lossy(&stored);
    assert!(text.contains("ada@"), "the dump shows the rows");
    assert!(!text.contains(&ada.password) && !text.contains(&token));
}

#[test]
fn emails_are_case_insensitive_and_unique() {
    let daemon = Daemon::start();
    let ada = daemon.user("ada");
    ada.signup().ok();
    let shouting = User {
        email: "  ADA@Example.COM ".into(),
        ..daemon.user("ada2")
    };
    let dup = shouting.signup().fails_with(6);
    assert!(dup.stderr.contains("already exists"), "{dup:?}");
    let json_error: serde_json::Value = serde_json::from_str(dup.stderr.trim()).unwrap();
    assert_eq!(json_error["error"]["code"], "conflict");
    let again = User {
        password: ada.password.clone(),
        ..shouting
    };
    assert_eq!(again.login().ok().json()["email"], "ada@example.com");
}

#[test]
fn bad_sign_ins_are_refused_alike_and_never_lock_the_owner_out() {
    let daemon = Daemon::start();
    let ada = daemon.user("ada");
    ada.signup().ok();
    // How long the owner's sign-in takes with no failure behind it.
    let started = Instant::now();
    ada.login().ok();
    let unhindered = started.elapsed();
    ada.run(&["logout"]).ok();

    let wrong = User {
        password: "not-the-password".into(),
        ..ada.clone()
    };
    let unknown = User {
        email: "nobody@example.com".into(),
        ..ada.clone()
    };
    let a = wrong.login().fails_with(4);
    let b = unknown.login().fails_with(4);
    // The two failures must not tell an attacker which emails exist.
    assert_eq!(a.stderr, b.stderr);
    assert!(a.stderr.contains("wrong email or password"), "{a:?}");

    // Someone else guesses the owner's password, each time on a new
    // connection, more often than any per-account lock would allow...
    for _ in 0..6 {
        let guess = wrong.login().fails_with(4);
        assert!(
            guess.stderr.contains("wrong email or password"),
            "{guess:?}"
        );
    }
    // ...and the owner's right password still signs in, at once: not
    // slowed by the failures for the same email (a connection's failures
    // alone wait 0.5 s, then 1 s, then 2 s), beyond the noise of a loaded
    // machine.
    let started = Instant::now();
    assert_eq!(ada.login().ok().json()["email"], "ada@example.com");
    let after_failures = started.elapsed();
    eprintln!("the owner signed in {after_failures:.1?} after 8 failures, {unhindered:.1?} before");
    assert!(
        after_failures < unhindered * 3 + Duration::from_secs(1),
        "the owner waited {after_failures:?} after 8 failures, {unhindered:?} before"
    );
    ada.run(&["whoami"]).ok();
}

/// A program that keeps guessing on one connection waits longer for each
/// answer, and is cut off after a few.
#[test]
fn guesses_on_one_connection_slow_down_and_end_it() {
    let daemon = Daemon::start();
    let ada = daemon.user("ada");
    ada.signup().ok();
    let mut stream = handshake(&daemon.socket).expect("handshake");
    let guess = ClientFrame::Request(Envelope {
        token: None,
        request: Request::Login(Credentials {
            email: ada.email.clone(),
            password: Secret("a-wrong-guess-123".into()),
        }),
    });
    let mut took = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        send_frame(&mut stream, &guess).expect("send a guess");
        match read_frame(&mut stream).expect("an answer") {
            Some(ServerFrame::Error(e)) => {
                assert!(e.message.contains("wrong email or password"), "{e:?}")
            }
            other => panic!("a guess was answered with {other:?}"),
        }
        took.push(started.elapsed());
    }
    eprintln!("three guesses on one connection took {took:?}");
    // Lower bounds only: a loaded machine may be slower, never faster.
    assert!(took[1] >= Duration::from_millis(1000), "{took:?}");
    assert!(took[2] >= Duration::from_millis(2000), "{took:?}");
    match read_frame(&mut stream) {
        Ok(Some(ServerFrame::Error(e))) => {
            assert!(
                e.message.contains("failed sign-ins on one connection"),
                "{e:?}"
            )
        }
        other => panic!("the connection was not closed after three guesses: {other:?}"),
    }
    assert!(matches!(read_frame(&mut stream), Ok(None)));
    // The owner is not held up by it.
    ada.login().ok();
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let daemon = Daemon::start();
    let ada = daemon.user("ada");
    for bad in ["not-an-email", "a@b", "@example.com", "a b@example.com"] {
        let user = User {
            email: bad.into(),
            ..ada.clone()
        };
        let out = user.signup().fails_with(2);
        assert!(out.stderr.contains("not a valid email"), "{out:?}");
    }
    let short = User {
        password: "short".into(),
        ..ada.clone()
    };
    assert!(short
        .signup()
        .fails_with(2)
        .stderr
        .contains("8 to 1024 bytes"));
    let long = User {
        password: "x".repeat(1025),
        ..ada.clone()
    };
    long.signup().fails_with(2);
    // Without a terminal and without --password-stdin there is nobody to ask.
    let out = ada.run(&["signup", &ada.email]).fails_with(2);
    assert!(out.stderr.contains("--password-stdin"), "{out:?}");
    // A usage error from clap is status 2 too.
    ada.run(&["signup"]).fails_with(2);
    // None of it created an account.
    let status = ada.run(&["--json", "status"]).ok().json();
    assert_eq!(status["users"], 0);
}

#[test]
fn two_users_sessions_never_mix() {
    let daemon = Daemon::start();
    let users: Vec<User> = (0..4).map(|i| daemon.user(&format!("user{i}"))).collect();
    std::thread::scope(|s| {
        for user in &users {
            s.spawn(move || {
                user.signup().ok();
                for _ in 0..5 {
                    let me = user.run(&["--json", "whoami"]).ok().json();
                    assert_eq!(me["email"].as_str(), Some(user.email.as_str()));
                }
            });
        }
    });
    // Signing one out leaves the others signed in.
    users[0].run(&["logout"]).ok();
    users[0].run(&["whoami"]).fails_with(4);
    for user in &users[1..] {
        assert_eq!(
            user.run(&["--json", "whoami"]).ok().json()["email"].as_str(),
            Some(user.email.as_str())
        );
    }
}

#[test]
fn a_forged_or_stale_token_is_refused() {
    let daemon = Daemon::start();
    let ada = daemon.user("ada");
    ada.signup().ok();
    let path = ada.config_home.join("appforge/session.json");
    let mut saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    saved["token"] = "afs_00000000".into();
    std::fs::write(&path, saved.to_string()).unwrap();
    let out = ada.run(&["whoami"]).fails_with(4);
    assert!(out.stderr.contains("session has ended"), "{out:?}");

    // A token used just before its session ended (so the daemon has
    // resolved it lately) is refused once it is signed out, on every try.
    ada.login().ok();
    ada.run(&["whoami"]).ok();
    let kept = std::fs::read_to_string(&path).unwrap();
    ada.run(&["logout"]).ok();
    std::fs::write(&path, &kept).unwrap();
    for _ in 0..3 {
        let out = ada.run(&["whoami"]).fails_with(4);
        assert!(out.stderr.contains("session has ended"), "{out:?}");
    }
}
