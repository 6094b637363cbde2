//! PostgreSQL as the shared store: daemons on several hosts (here, two data
//! folders and two host names) sharing one database, the host claim, apps
//! whose host's daemon is gone, a daemon killed mid-write, and the database
//! password kept secret. Every test runs against a real PostgreSQL server
//! that the harness starts.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::thread;

use appforge_e2e::apps::*;
use appforge_e2e::postgres::{self, USER};
use appforge_e2e::{
    appforged_in, handshake, is_zombie, output_of_exiting, parent_of, wait_for, Daemon, User,
};
use nix::sys::signal::Signal;
use serde_json::Value;

/// A new database on the test server.
fn database() -> String {
    postgres::server().new_database()
}

/// Two daemons, standing for hosts `alpha` and `beta`, sharing a new
/// database, and Ada signed up on alpha and signed in on beta.
fn two_hosts() -> (Daemon, Daemon, User, User) {
    let db = database();
    let alpha = Daemon::start_on_postgres(&db, &["--host-name", "alpha"]);
    let beta = Daemon::start_on_postgres(&db, &["--host-name", "beta"]);
    let ada_alpha = signed_up(&alpha, "ada");
    let ada_beta = beta.user("ada");
    ada_beta.login().ok();
    (alpha, beta, ada_alpha, ada_beta)
}

/// The single value a query returns.
fn value(daemon: &Daemon, sql: &str) -> String {
    daemon.sql(sql)[0][0].clone().expect("a value")
}

#[test]
fn two_hosts_share_the_data_and_each_runs_only_its_own_apps() {
    let (mut alpha, beta, ada_alpha, ada_beta) = two_hosts();

    // Accounts, projects, versions and history are shared.
    let todo = new_project(&ada_alpha, "todo");
    let listed = ada_beta.run(&["--json", "list"]).ok().json();
    assert_eq!(listed[0]["name"], "todo", "{listed}");
    let history = ada_beta.run(&["--json", "history", "todo"]).ok().json();
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");

    // Each host runs its own apps; ps on either shows both, with their hosts.
    let todo_pid = pid_of(&run_app(&ada_alpha, "todo"));
    let notes = new_project(&ada_beta, "notes");
    let notes_app = run_app(&ada_beta, "notes");
    let notes_pid = pid_of(&notes_app);
    for user in [&ada_alpha, &ada_beta] {
        let todo_row = ps_of(user, todo).expect("todo in ps");
        let notes_row = ps_of(user, notes).expect("notes in ps");
        assert_eq!(todo_row["host"], "alpha", "{todo_row}");
        assert_eq!(notes_row["host"], "beta", "{notes_row}");
        assert_eq!(todo_row["status"], "running");
    }
    let table = ada_beta.run(&["ps"]).ok().stdout;
    assert!(table.contains("HOST") && table.contains("alpha"), "{table}");

    // An app runs in one place: beta does not start or stop alpha's.
    let refused = ada_beta.run(&["run", "todo"]).fails_with(6);
    assert!(
        refused.stderr.contains("kept running by host `alpha`"),
        "{refused:?}"
    );
    ada_beta.run(&["stop", "todo"]).fails_with(6);
    assert!(!is_zombie(todo_pid as i32));
    // Its log is on alpha, and beta says so.
    let logs = ada_beta.run(&["logs", "todo"]).fails_with(2);
    assert!(logs.stderr.contains("runs on host `alpha`"), "{logs:?}");
    assert!(ada_alpha
        .run(&["logs", "todo"])
        .ok()
        .stdout
        .contains("started pid"));

    // alpha dies and comes back: it re-adopts its app and leaves beta's alone.
    alpha.signal_and_wait(Signal::SIGKILL);
    alpha.restart();
    wait_for("alpha to re-adopt its app", || {
        ps_of(&ada_alpha, todo).is_some_and(|a| a["status"] == "running" && a["host"] == "alpha")
    });
    assert_eq!(pid_of(&ps_of(&ada_alpha, todo).unwrap()), todo_pid);
    assert!(!is_zombie(notes_pid as i32), "beta's app was touched");
    assert_answers(port_of(&notes_app));
    let open_beta_runs = value(
        &beta,
        "SELECT count(*) FROM project_runs WHERE host = 'beta' AND stopped_at IS NULL",
    );
    assert_eq!(open_beta_runs, "1");
    ada_alpha.run(&["stop", "todo"]).ok();
    ada_beta.run(&["stop", "notes"]).ok();
}

#[test]
fn two_hosts_asked_to_run_one_app_at_once_start_it_once() {
    let (alpha, beta, ada, _) = two_hosts();
    let todo = new_project(&ada, "todo");
    for round in 0..3 {
        let runs: Vec<_> = [&alpha, &beta]
            .map(|d| {
                let user = d.user("ada");
                thread::spawn(move || user.run(&["--json", "run", "todo"]))
            })
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let started: Vec<_> = runs.iter().filter(|r| r.code == 0).collect();
        assert_eq!(started.len(), 1, "round {round}: {runs:?}");
        let refused = runs.iter().find(|r| r.code != 0).unwrap();
        assert_eq!(refused.code, 6, "{refused:?}");
        let host = started[0].json()["host"].as_str().unwrap().to_string();
        let apps = alpha.app_pids().len() + beta.app_pids().len();
        assert_eq!(apps, 1, "round {round}: the app runs {apps} times");
        let owner = if host == "alpha" { &alpha } else { &beta };
        owner.user("ada").run(&["stop", "todo"]).ok();
        assert!(ps_of(&ada, todo).is_none_or(|a| a["status"] != "running"));
    }
}

#[test]
fn edits_on_two_hosts_at_once_never_share_or_lose_a_version() {
    let (alpha, beta, ada, _) = two_hosts();
    let todo = new_project(&ada, "todo");
    let editors: Vec<_> = [&alpha, &beta]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let user = d.user("ada");
            thread::spawn(move || {
                (0..10)
                    .map(|n| {
                        user.run_with_stdin(
                            &[
                                "--json",
                                "edit",
                                "todo",
                                "--file",
                                "notes.txt",
                                "--stdin",
                                "--no-check",
                            ],
                            &format!("host {i} edit {n}\n"),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<_> = editors
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    // Each edit is saved as a version of its own, or refused by the
    // conflict rule (another host saved first): never an internal error.
    let mut versions = Vec::new();
    for out in &outcomes {
        match out.code {
            0 => versions.push(out.json()["version"].as_i64().unwrap()),
            6 => assert!(out.stderr.contains("changed while you worked"), "{out:?}"),
            _ => panic!("{out:?}"),
        }
    }
    versions.sort_unstable();
    let saved = versions.len() as i64;
    assert!(saved >= 2, "{outcomes:?}");
    assert_eq!(versions, (2..=saved + 1).collect::<Vec<i64>>());
    let newest = value(
        &alpha,
        &format!("SELECT max(version) FROM project_versions WHERE project_id = {todo}"),
    );
    assert_eq!(newest, (saved + 1).to_string());
}

/// Starts a second daemon as host `alpha` on `db`, where `first` runs as
/// `alpha`: it must refuse to start and name `first`. Returns what it said.
fn second_alpha_refused(db: &str, first: &Daemon) -> String {
    let server = postgres::server();
    let other = tempfile::tempdir().unwrap();
    let mut second = appforged_in(other.path());
    second
        .args(["--host-name", "alpha", "--database-url", &server.url(db)])
        .env("APPFORGE_DATABASE_PASSWORD", &server.password);
    let out = output_of_exiting(second);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a second `alpha` started: {err}");
    assert!(err.contains("already runs as host `alpha`"), "{err}");
    assert!(err.contains(&format!("pid {}", first.pid())), "{err}");
    err
}

#[test]
fn a_second_daemon_for_the_same_host_is_refused_and_names_the_first() {
    let db = database();
    let first = Daemon::start_on_postgres(&db, &["--host-name", "alpha"]);
    let err = second_alpha_refused(&db, &first);
    assert!(err.contains(&first.socket.display().to_string()), "{err}");
    // The first one is unharmed.
    signed_up(&first, "ada");
}

#[test]
fn an_app_whose_hosts_daemon_is_gone_is_reported_and_never_started_twice() {
    let (mut alpha, _beta, ada_alpha, ada_beta) = two_hosts();
    let todo = new_project(&ada_alpha, "todo");
    let old_pid = pid_of(&run_app(&ada_alpha, "todo"));

    alpha.signal_and_wait(Signal::SIGKILL);
    // The app outlives its daemon; beta reports the host as gone.
    wait_for("beta to see alpha gone", || {
        ps_of(&ada_beta, todo).is_some_and(|a| a["status"] == "host-gone")
    });
    let row = ps_of(&ada_beta, todo).unwrap();
    assert_eq!(row["host"], "alpha");
    assert!(
        row["hint"].as_str().unwrap().contains("not running"),
        "{row}"
    );
    let refused = ada_beta.run(&["run", "todo"]).fails_with(6);
    assert!(
        refused.stderr.contains("whose daemon is not running"),
        "{refused:?}"
    );
    assert!(!is_zombie(old_pid as i32));

    // Released by stop, it runs on beta; alpha, back, stops its left-over
    // process instead of adopting it.
    ada_beta.run(&["stop", "todo"]).ok();
    let moved = run_app(&ada_beta, "todo");
    assert_eq!(moved["host"], "beta");
    alpha.restart();
    wait_for("alpha to stop its left-over process", || {
        is_zombie(old_pid as i32)
    });
    let rows = ps(&ada_alpha);
    let todo_rows: Vec<_> = rows.iter().filter(|a| a["project_id"] == todo).collect();
    assert_eq!(todo_rows.len(), 1, "{rows:?}");
    assert_eq!(todo_rows[0]["host"], "beta");
    assert_eq!(todo_rows[0]["status"], "running");
    assert_answers(port_of(&moved));
    ada_beta.run(&["stop", "todo"]).ok();
}

#[test]
fn a_daemon_killed_mid_write_loses_nothing_and_saves_nothing_by_halves() {
    let db = database();
    let mut daemon = Daemon::start_on_postgres(&db, &[]);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "base");
    // Writers save projects and versions until the daemon dies under them.
    let saved: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let ada = daemon.user("ada");
            let saved = Arc::clone(&saved);
            thread::spawn(move || {
                for n in 0..40 {
                    let name = format!("w{w}-{n}");
                    let out = ada.run(&[
                        "--json",
                        "generate",
                        TODO_PROMPT,
                        "--save",
                        "--no-check",
                        "--provider",
                        "template",
                        "--name",
                        &name,
                    ]);
                    if out.code != 0 {
                        return;
                    }
                    let version = out.json()["version"].as_i64().unwrap_or(1);
                    saved.lock().unwrap().push((name, version));
                    let edit = ada.run_with_stdin(
                        &[
                            "--json",
                            "edit",
                            "base",
                            "--file",
                            "app.py",
                            "--stdin",
                            "--no-check",
                        ],
                        &format!("# edit {w}-{n}\nprint('hello')\n"),
                    );
                    if edit.code != 0 {
                        return;
                    }
                    let version = edit.json()["version"].as_i64().expect("a version");
                    saved.lock().unwrap().push(("base".into(), version));
                }
            })
        })
        .collect();
    wait_for("some writes to land", || saved.lock().unwrap().len() >= 8);
    daemon.signal_and_wait(Signal::SIGKILL);
    for w in writers {
        w.join().unwrap();
    }
    daemon.restart();

    // Nothing a client was told is saved is lost.
    let saved = saved.lock().unwrap().clone();
    for (name, version) in &saved {
        let found = value(
            &daemon,
            &format!(
                "SELECT count(*) FROM project_versions v JOIN projects p ON p.id = v.project_id \
                 WHERE p.name = '{name}' AND v.version = {version}"
            ),
        );
        assert_eq!(found, "1", "{name} v{version} was lost");
    }
    // Nothing is half-saved: every project has its versions from 1 up, every
    // version its files, and the project row mirrors its newest version.
    let broken = daemon.sql(
        "SELECT p.name FROM projects p WHERE \
           (SELECT count(*) FROM project_versions v WHERE v.project_id = p.id) \
             <> (SELECT coalesce(max(version), 0) FROM project_versions v WHERE v.project_id = p.id) \
           OR NOT EXISTS (SELECT 1 FROM project_versions v WHERE v.project_id = p.id) \
           OR EXISTS (SELECT 1 FROM project_versions v WHERE v.project_id = p.id \
                      AND NOT EXISTS (SELECT 1 FROM project_files f WHERE f.version_id = v.id)) \
           OR p.backend_code <> (SELECT f.content FROM project_files f JOIN project_versions v \
                 ON v.id = f.version_id WHERE v.project_id = p.id AND f.path = 'app.py' \
                 ORDER BY v.version DESC LIMIT 1)",
    );
    assert!(broken.is_empty(), "half-saved projects: {broken:?}");
    let files_per_generation = daemon.sql(
        "SELECT DISTINCT (SELECT count(*) FROM project_files f WHERE f.version_id = v.id) \
         FROM project_versions v WHERE v.kind = 'generate'",
    );
    assert_eq!(files_per_generation.len(), 1, "{files_per_generation:?}");
    // The daemon goes on serving.
    ada.run(&["list"]).ok();
}

#[test]
fn the_database_password_is_a_secret() {
    let server = postgres::server();
    let db = database();
    let with_password = format!(
        "postgres://{USER}:{}@127.0.0.1:{}/{db}?sslrootcert={}",
        server.password,
        server.port,
        server.certificate().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let appforged = |args: &[&str], envs: &[(&str, &str)]| {
        appforged_in(dir.path())
            .args(args)
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    };

    // On the command line, every user could read it: refused.
    let out = appforged(&["--database-url", &with_password], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("APPFORGE_DATABASE_PASSWORD"), "{err}");
    assert!(!err.contains(&server.password), "{err}");

    // From the environment it is taken, and --print-config hides it.
    let out = appforged(
        &["--print-config"],
        &[("APPFORGE_DATABASE_URL", &with_password)],
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(!printed.contains(&server.password), "{printed}");
    let line = format!("database-url = \"{}\"  # environment", server.url(&db));
    assert!(printed.contains(&line), "{printed}");
    assert!(
        printed.contains("database-password: set (hidden)"),
        "{printed}"
    );

    // A wrong password: a clear error that shows none.
    let out = appforged(
        &["--database-url", &server.url(&db)],
        &[("APPFORGE_DATABASE_PASSWORD", "not-the-password")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        err.contains(&server.shown_url(&db)) && !err.contains("not-the-password"),
        "{err}"
    );

    // A daemon that runs: the password reaches no log, status or app.
    let daemon = Daemon::start_on_postgres(&db, &[]);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "todo");
    let app = run_app(&ada, "todo");
    let status = ada.run(&["--json", "status"]).ok().stdout;
    assert!(status.contains(&server.shown_url(&db)), "{status}");
    let environ = std::fs::read(format!("/proc/{}/environ", pid_of(&app))).unwrap();
    for (what, text) in [
        ("the daemon's log", daemon.log()),
        ("status", status),
        (
            "the app's environment",
            String::from_utf8_lossy(&environ).into_owned(),
        ),
    ] {
        assert!(
            !text.contains(&server.password),
            "the password is in {what}"
        );
    }
    ada.run(&["stop", "todo"]).ok();
}

#[test]
fn the_password_may_live_in_a_private_config_file_only() {
    use std::os::unix::fs::PermissionsExt;
    let server = postgres::server();
    let db = database();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("appforge.toml");
    let start = |mode: u32| {
        std::fs::write(
            &config,
            format!(
                "database-url = \"{}\"\ndatabase-password = \"{}\"\n",
                server.url(&db),
                server.password
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
        appforged_in(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("--print-config")
            .output()
            .unwrap()
    };
    let out = start(0o644);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(&server.password), "{err}");
    let out = start(0o600);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("database-password: set (hidden)"),
        "{printed}"
    );
    assert!(!printed.contains(&server.password), "{printed}");

    // A daemon configured so connects: the file's password is the one used.
    let socket = dir.path().join("s.sock");
    let daemon = appforged_in(dir.path())
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = KillOnDrop(daemon);
    wait_for("the daemon to answer", || {
        assert!(daemon.0.try_wait().unwrap().is_none(), "appforged exited");
        handshake(&socket).is_ok()
    });
    let registered = server.psql(&db, "SELECT pid FROM daemons");
    assert_eq!(registered[0][0], Some(daemon.0.id().to_string()));
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_connection_is_encrypted_and_the_servers_certificate_verified() {
    let server = postgres::server();
    let db = database();
    // The harness's daemons trust the test server's own certificate.
    let daemon = Daemon::start_on_postgres(&db, &[]);
    signed_up(&daemon, "ada");
    let sessions = server.psql(
        &db,
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
         WHERE a.application_name = 'appforged'",
    );
    assert!(!sessions.is_empty());
    assert!(
        sessions.iter().all(|r| r[0].as_deref() == Some("t")),
        "{sessions:?}"
    );

    // A certificate it cannot verify stops it, saying what to do.
    let dir = tempfile::tempdir().unwrap();
    let start = |url: &str| {
        appforged_in(dir.path())
            .args(["--database-url", url])
            .env("APPFORGE_DATABASE_PASSWORD", &server.password)
            .output()
            .unwrap()
    };
    let out = start(&format!("{}?sslmode=require", server.shown_url(&db)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("certificate") && err.contains("sslrootcert=FILE"),
        "{err}"
    );
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let out = start(&format!(
        "{}?sslrootcert={}",
        server.shown_url(&db),
        not_pem.display()
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("holds no certificate"), "{err}");
}

#[test]
fn connections_the_server_ends_are_replaced_and_the_host_claimed_again() {
    let server = postgres::server();
    let db = database();
    let daemon = Daemon::start_on_postgres(&db, &["--host-name", "alpha"]);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "todo");
    // The server ends every connection of the daemon's, the host claim's
    // among them, as a restart or an administrator would.
    let ended = server.psql(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'appforged' AND datname = current_database()",
    );
    assert!(ended.len() >= 2, "{ended:?}");
    // The pool opens new ones: the daemon serves again, its data intact.
    let mut listed = None;
    wait_for("the daemon to serve from a new connection", || {
        let out = ada.run(&["--json", "list"]);
        if out.code == 0 {
            listed = Some(out.json());
        } else {
            assert!(out.stderr.contains("connection"), "{out:?}");
        }
        listed.is_some()
    });
    assert_eq!(listed.unwrap()[0]["name"], "todo");
    // The claim is taken again, and said so.
    wait_for("the host claim to be taken again", || {
        daemon.log().contains("claimed the host name again")
    });
    assert!(daemon
        .log()
        .contains("lost the database connection that holds this daemon's host claim"));
    // So a second daemon for the same host is still refused.
    second_alpha_refused(&db, &daemon);
    ada.run(&["list"]).ok();
}

/// A daemon stopped in its tracks (SIGSTOP), as one cut off from the
/// database is: it cannot reconnect until it is let go (SIGCONT), which
/// dropping this does, however the test ends.
struct Frozen(i32);

impl Frozen {
    fn of(daemon: &Daemon) -> Frozen {
        let pid = daemon.pid() as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGSTOP)
            .expect("SIGSTOP the daemon");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

fn kill_9(pid: i64) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid"));
    nix::sys::signal::kill(pid, Signal::SIGKILL).expect("SIGKILL the app");
}

/// `user`'s `--json` document of `args`, asked until the daemon answers:
/// right after the server ended its connections, a request may find one
/// of them gone.
fn asked(user: &User, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.insert(0, "--json");
    let mut doc = None;
    wait_for("the daemon to answer from a new connection", || {
        let out = user.run(&args);
        if out.code == 0 {
            doc = Some(out.json());
        } else {
            assert!(out.stderr.contains("connection"), "{out:?}");
        }
        doc.is_some()
    });
    doc.expect("an answer")
}

/// Waits until `user`'s daemon runs app `id` with another pid than `not`.
fn running_with_new_pid(user: &User, id: i64, not: i64) -> Value {
    let mut found = None;
    wait_for("the app to run again with a new pid", || {
        found = asked(user, &["ps"])
            .as_array()
            .expect("ps prints an array")
            .iter()
            .find(|a| a["project_id"].as_i64() == Some(id))
            .filter(|a| a["status"] == "running" && a["pid"].as_i64().is_some_and(|p| p != not))
            .cloned();
        found.is_some()
    });
    found.expect("found")
}

#[test]
fn a_rival_is_refused_while_the_holder_reconnects_and_the_holder_supervises_on() {
    let server = postgres::server();
    let db = database();
    let alpha = Daemon::start_on_postgres(&db, &["--host-name", "alpha"]);
    let ada = signed_up(&alpha, "ada");
    let todo = new_project(&ada, "todo");
    let first = pid_of(&run_app(&ada, "todo"));

    // PostgreSQL restarts: every connection ends, the host claim's lock is
    // free, and the holder has not reconnected yet. A second daemon for
    // the same host, started right then, is refused: the lease names a
    // holder that lives.
    let frozen = Frozen::of(&alpha);
    server.end_connections(&db);
    let err = second_alpha_refused(&db, &alpha);
    assert!(err.contains("its claim holds for"), "{err}");
    drop(frozen);

    // The holder takes its claim back and supervises as before: its app,
    // killed, is started again by it, once.
    wait_for("the holder to claim its host name again", || {
        alpha.log().contains("claimed the host name again")
    });
    kill_9(first);
    let now = running_with_new_pid(&ada, todo, first);
    assert_eq!(now["restarts"], 1, "{now}");
    assert_eq!(alpha.app_pids(), vec![pid_of(&now) as i32]);
    assert_eq!(parent_of(pid_of(&now) as i32), Some(alpha.pid() as i32));
    let status = asked(&ada, &["status"]);
    assert_eq!(status["host"]["name"], "alpha", "{status}");
    assert_eq!(status["host"]["held"], true, "{status}");
    assert!(!alpha.log().contains("FENCED"), "{}", alpha.log());
    ada.run(&["stop", "todo"]).ok();
}

#[test]
fn a_daemon_cut_off_past_its_lease_is_fenced_until_it_holds_its_claim_again() {
    let server = postgres::server();
    let db = database();
    let alpha = Daemon::start_on_postgres(&db, &["--host-name", "alpha"]);
    let ada = signed_up(&alpha, "ada");
    let todo = new_project(&ada, "todo");
    let first = pid_of(&run_app(&ada, "todo"));

    // The database refuses the daemon for longer than its lease.
    let allow = |on: bool| {
        server.psql(
            "postgres",
            &format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS {on}"),
        );
    };
    allow(false);
    server.psql(
        "postgres",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'appforged' AND datname = '{db}'"
        ),
    );
    wait_for("the daemon to fence itself", || {
        alpha.log().contains("FENCED: this daemon lost its claim")
    });
    let status = ada.run(&["--json", "status"]).ok().json();
    assert_eq!(status["host"]["held"], false, "{status}");
    assert!(
        status["database"]
            .as_str()
            .unwrap_or_default()
            .contains("unreachable"),
        "{status}"
    );
    // Its app dies meanwhile: fenced, the daemon leaves it as it is.
    let before = alpha.app_processes();
    kill_9(first);
    // Its init and the app end a moment after its shim: wait for all of
    // them, so that any process left is a new one.
    wait_for("the app's processes to end", || {
        before
            .iter()
            .all(|pid| is_zombie(*pid) || !std::path::Path::new(&format!("/proc/{pid}")).exists())
    });
    assert!(alpha.app_pids().is_empty(), "restarted while fenced");

    // The database is back: the daemon claims its name again, and only
    // then starts its app again, once.
    allow(true);
    let now = running_with_new_pid(&ada, todo, first);
    assert_eq!(now["restarts"], 1, "{now}");
    assert_eq!(alpha.app_pids(), vec![pid_of(&now) as i32]);
    let log = alpha.log();
    let back = log.find("holds its host claim again").expect("said so");
    let restarted = log.find("restarting app").expect("restarted");
    assert!(back < restarted, "{log}");
    assert_eq!(log.matches("FENCED").count(), 1, "{log}");
    assert_eq!(asked(&ada, &["status"])["host"]["held"], true);
    ada.run(&["stop", "todo"]).ok();
}

#[test]
fn a_daemon_whose_host_was_taken_over_is_fenced_and_leaves_the_apps_alone() {
    let server = postgres::server();
    let db = database();
    let old = Daemon::start_on_postgres(&db, &["--host-name", "alpha"]);
    let ada = signed_up(&old, "ada");
    let todo = new_project(&ada, "todo");
    new_project(&ada, "notes");
    let first = pid_of(&run_app(&ada, "todo"));

    // Cut off for longer than its lease: frozen, its connections ended, and
    // its lease run out (in SQL, rather than waiting it out).
    let frozen = Frozen::of(&old);
    server.end_connections(&db);
    server.psql(
        &db,
        "UPDATE daemons SET lease_until = clock_timestamp() - interval '1 second' \
         WHERE host = 'alpha'",
    );
    // Meanwhile a rival takes the host name over, and the app with it.
    let rival = Daemon::start_on_postgres(&db, &["--host-name", "alpha"]);
    wait_for("the rival to adopt the app", || {
        rival.log().contains("re-adopted app")
    });
    drop(frozen);

    // The old daemon finds the name taken, says so once, and is fenced.
    wait_for("the old daemon to find its host taken over", || {
        old.log().contains("took host `alpha` over")
    });
    let status = asked(&ada, &["status"]);
    assert_eq!(status["host"]["held"], false, "{status}");
    let detail = status["host"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("FENCED") && detail.contains(&format!("pid {}", rival.pid())),
        "{status}"
    );
    // It starts and stops nothing, and says why.
    let refused = ada.run(&["run", "notes"]).fails_with(6);
    assert!(refused.stderr.contains("FENCED"), "{refused:?}");
    let refused = ada.run(&["stop", "todo"]).fails_with(6);
    assert!(refused.stderr.contains("Stop this daemon"), "{refused:?}");
    assert!(
        !is_zombie(first as i32),
        "the fenced daemon stopped the app"
    );

    // The app dies: the rival starts it again; the old daemon, whose child
    // it was, only reaps it.
    let ada_rival = rival.user("ada");
    ada_rival.login().ok();
    kill_9(first);
    let now = running_with_new_pid(&ada_rival, todo, first);
    assert_eq!(parent_of(pid_of(&now) as i32), Some(rival.pid() as i32));
    wait_for("the old daemon to reap its child", || {
        old.log().contains("left the app to it")
    });
    assert!(old.app_pids().is_empty(), "{:?}", old.app_pids());
    let log = old.log();
    assert_eq!(log.matches("started app").count(), 1, "{log}");
    assert!(!log.contains("restarting app"), "{log}");
    assert_eq!(log.matches("took host `alpha` over").count(), 1, "{log}");
    ada_rival.run(&["stop", "todo"]).ok();
}

/// `appforged --copy-sqlite-store` of `data_dir` into `database`.
fn copy_store(data_dir: &std::path::Path, database: &str) -> std::process::Output {
    let server = postgres::server();
    let config = tempfile::tempdir().unwrap();
    let mut copy = std::process::Command::new(appforge_e2e::bin("appforged"));
    copy.arg("--data-dir")
        .arg(data_dir)
        .args([
            "--database-url",
            &server.url(database),
            "--copy-sqlite-store",
        ])
        .env("APPFORGE_DATABASE_PASSWORD", &server.password)
        .env("XDG_CONFIG_HOME", config.path())
        .env_remove("APPFORGE_DATABASE_URL")
        .stdin(Stdio::null());
    output_of_exiting(copy)
}

#[test]
fn a_sqlite_store_is_copied_whole_into_an_empty_postgres_database() {
    // A team's first daemon, on SQLite: two accounts, edits, a running app.
    let mut daemon = Daemon::start_on_sqlite();
    let ada = signed_up(&daemon, "ada");
    let bob = signed_up(&daemon, "bob");
    new_project(&ada, "todo");
    ada.run_with_stdin(
        &["edit", "todo", "--file", "app.py", "--stdin", "--no-check"],
        "print('v2')\n",
    )
    .ok();
    new_project(&ada, "notes");
    new_project(&bob, "shop");
    ada.run(&["rollback", "todo", "1", "--no-check"]).ok();
    let pid = pid_of(&run_app(&ada, "todo"));
    let before = ada.run(&["--json", "list"]).ok().json();
    let history_before = ada.run(&["--json", "history", "todo"]).ok().json();
    let shown_before = ada
        .run(&["--json", "show", "todo", "--version", "2"])
        .ok()
        .json();

    // Not while its daemon runs: the copy would miss what it writes.
    let db = database();
    let out = copy_store(&daemon.data_dir, &db);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("another appforged already uses the database"),
        "{err}"
    );

    // Stopped (its app runs on), copied, and started on the copy.
    daemon.signal_and_wait(Signal::SIGTERM);
    let out = copy_store(&daemon.data_dir, &db);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("2 users") && said.contains("3 projects"),
        "{said}"
    );
    daemon.restart_on_postgres(&db);

    // The same sessions, ids, versions and files, and the app adopted.
    let me = ada.run(&["--json", "whoami"]).ok().json();
    assert_eq!(me["email"], "ada@example.com");
    wait_for("the running app to be adopted", || {
        daemon.log().contains("re-adopted app")
    });
    // Adopted, it is probed before it counts as running again.
    let mut todo = serde_json::Value::Null;
    wait_for("the adopted app to be running", || {
        todo = ada.run(&["--json", "ps"]).ok().json()[0].clone();
        todo["status"] == "running"
    });
    assert_eq!(todo["name"], "todo");
    assert_eq!(pid_of(&todo), pid, "the app was started again, not adopted");
    let after = ada.run(&["--json", "list"]).ok().json();
    let ids = |list: &serde_json::Value| -> Vec<(i64, String)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["id"].as_i64().unwrap(),
                    p["name"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(
        ada.run(&["--json", "history", "todo"]).ok().json(),
        history_before
    );
    let shown = ada
        .run(&["--json", "show", "todo", "--version", "2"])
        .ok()
        .json();
    assert_eq!(shown, shown_before);
    assert!(shown.to_string().contains("print('v2')"), "{shown}");
    // Bob signs in with his password; new rows are numbered after the copied.
    bob.login().ok();
    let highest = ids(&after).iter().map(|(id, _)| *id).max().unwrap();
    new_project(&bob, "blog");
    let blog = bob.run(&["--json", "list"]).ok().json();
    let blog_id = ids(&blog).iter().find(|(_, n)| n == "blog").unwrap().0;
    assert!(blog_id > highest, "{blog_id} after {highest}");

    // Into a database that holds data: refused, and nothing changes there.
    let rows = |sql: &str| daemon.sql(sql)[0][0].clone().unwrap();
    let projects = rows("SELECT COUNT(*) FROM projects");
    let out = copy_store(&daemon.data_dir, &db);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("already holds data") && err.contains("4 projects"),
        "{err}"
    );
    assert_eq!(rows("SELECT COUNT(*) FROM projects"), projects);

    // A data folder without a store is named.
    let empty = tempfile::tempdir().unwrap();
    let out = copy_store(empty.path(), &database());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no SQLite store"),
        "{err}"
    );
    // A database that cannot be reached: named, and nothing copied.
    let out = copy_store(&daemon.data_dir, "no_such_database");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("could not open the database"),
        "{err}"
    );
    assert!(err.contains("no_such_database"), "{err}");
    // No database to copy into: said so.
    let mut nowhere = std::process::Command::new(appforge_e2e::bin("appforged"));
    nowhere
        .arg("--data-dir")
        .arg(&daemon.data_dir)
        .arg("--copy-sqlite-store")
        .env("XDG_CONFIG_HOME", empty.path())
        .env_remove("APPFORGE_DATABASE_URL");
    let out = output_of_exiting(nowhere);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("name it with --database-url"),
        "{err}"
    );
}

#[test]
fn both_stores_are_migrated_to_the_same_numbered_schema() {
    let db = database();
    let on_postgres = Daemon::start_on_postgres(&db, &[]);
    let on_sqlite = Daemon::start();
    let pg_version = value(&on_postgres, "SELECT version FROM schema_version");
    let sqlite_version = if on_sqlite.database.is_some() {
        // APPFORGE_TEST_STORE=postgres: this daemon is on PostgreSQL too.
        value(&on_sqlite, "SELECT version FROM schema_version")
    } else {
        value(&on_sqlite, "PRAGMA user_version")
    };
    assert_eq!(pg_version, sqlite_version);
    assert!(pg_version.parse::<u32>().unwrap() >= 5);
    // Every table of one store is in the other.
    let pg_tables = on_postgres.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_name <> 'schema_version' ORDER BY table_name",
    );
    assert!(pg_tables.len() >= 7, "{pg_tables:?}");
    for table in pg_tables {
        let table = table[0].clone().unwrap();
        on_sqlite.sql(&format!("SELECT count(*) FROM {table}"));
    }
}

/// The log lines at info or above (the harness logs at debug).
fn info_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| matches!(l.split_whitespace().nth(1), Some("INFO" | "WARN" | "ERROR")))
        .collect()
}

/// The host claim's keeper is the one timer of a daemon on PostgreSQL
/// alone: a renewal every 3 s, and a deadline 12 s after each (neither has
/// a setting). Watched for longer than the lease (15 s), which bounds both,
/// an idle daemon renews its claim and logs nothing at info.
#[test]
fn an_idle_daemon_renews_its_host_claim_without_logging() {
    const WATCHED: std::time::Duration = std::time::Duration::from_secs(16);
    let db = database();
    let alpha = Daemon::start_on_postgres(&db, &["--host-name", "alpha"]);
    let lease = || -> f64 {
        value(
            &alpha,
            "SELECT extract(epoch FROM lease_until)::float8 FROM daemons WHERE host = 'alpha'",
        )
        .parse()
        .expect("a lease in seconds")
    };
    let before_log = alpha.log();
    let before_lease = lease();
    let end = std::time::Instant::now() + WATCHED;
    while std::time::Instant::now() < end {
        let log = alpha.log();
        let added = info_lines(&log[before_log.len()..]);
        assert!(
            added.is_empty(),
            "an idle daemon logged at info: {added:#?}"
        );
        thread::sleep(std::time::Duration::from_millis(500));
    }
    let log = alpha.log();
    let added = info_lines(&log[before_log.len()..]);
    assert!(
        added.is_empty(),
        "an idle daemon logged at info: {added:#?}"
    );
    // Renewed in the window: at least half the renewals its period allows.
    let moved = lease() - before_lease;
    assert!(
        moved >= 6.0,
        "the lease moved on by {moved} s in {WATCHED:?}"
    );
}
