//! The web dashboard over real HTTP: every rule of its guard tried for real
//! (Host, Origin, CSRF token, cookie flags, headers, body cap), the same
//! owner rules as the socket, and an app that steals the session cookie.

use appforge_e2e::apps::{new_project, run_app, signed_up};
use appforge_e2e::mock_provider::{Answer, MockProvider};
use appforge_e2e::web::{cookie_value, daemon_with_dashboard, dashboard_of, send, Browser};
use appforge_e2e::{wait_for, Daemon};
use serde_json::{json, Value};

fn error_code(response: &appforge_e2e::web::Response) -> String {
    let last = response.last();
    last["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_page_is_served_with_headers_that_confine_it() {
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let host = addr.to_string();
    for path in ["/", "/assets/app.js", "/assets/app.css"] {
        let r = send(addr, "GET", path, &[("Host", &host)], b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert!(r.header("access-control-allow-origin").is_none(), "no CORS");
    }
    let page = send(addr, "GET", "/", &[("Host", &host)], b"").text();
    assert!(
        !page.contains("<script>") && !page.contains("onclick="),
        "inline script"
    );
    let missing = send(
        addr,
        "GET",
        "/assets/../../etc/passwd",
        &[("Host", &host)],
        b"",
    );
    assert_eq!(missing.status, 404);
}

#[test]
fn a_foreign_host_is_refused_against_dns_rebinding() {
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let port = addr.port();
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1:{port}.evil.example"),
        format!("localhost.evil.example:{port}"),
    ] {
        let r = send(addr, "GET", "/", &[("Host", &host)], b"");
        assert_eq!(r.status, 403, "{host}: {}", r.text());
        assert!(cookie_value(&r, "appforge_csrf").is_none());
    }
    let r = send(addr, "GET", "/", &[], b"");
    assert_eq!(r.status, 403, "no Host: {}", r.text());
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        assert_eq!(send(addr, "GET", "/", &[("Host", &host)], b"").status, 200);
    }
}

#[test]
fn a_post_without_the_csrf_token_or_from_another_origin_is_refused() {
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let mut browser = Browser::open(addr);
    browser.sign_up("ada@example.com", "ada-password-123");
    let list = json!("ListProjects").to_string();
    let headers = browser.headers();
    let without = |drop: &str| -> Vec<(&str, &str)> {
        headers
            .iter()
            .filter(|(k, _)| k != drop)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    };
    let replaced = |name: &str, value: &'static str| -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| {
                if k == name {
                    (k.clone(), value.to_string())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    };
    // The page's own request works.
    let ok = browser.call(json!("ListProjects"));
    assert_eq!(ok.status, 200);
    assert!(ok.last()["reply"]["Projects"].is_array(), "{}", ok.text());
    for (what, h) in [
        ("no CSRF token", without("X-CSRF-Token")),
        ("no Origin", without("Origin")),
    ] {
        let r = send(addr, "POST", "/api/call", &h, list.as_bytes());
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert_eq!(error_code(&r), "forbidden", "{what}");
    }
    for (what, name, value) in [
        ("another origin", "Origin", "http://evil.example"),
        ("an app's origin", "Origin", "http://127.0.0.1:8100"),
        ("a wrong token", "X-CSRF-Token", "0000"),
    ] {
        let h = replaced(name, value);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = send(addr, "POST", "/api/call", &h, list.as_bytes());
        assert_eq!(r.status, 403, "{what}: {}", r.text());
    }
    // Signing in needs the CSRF cookie's value and the page's origin too.
    let fresh = Browser::open(addr);
    let mut h = fresh.headers();
    h.retain(|(k, _)| k != "X-CSRF-Token");
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let login = json!({"Login": {"email": "ada@example.com", "password": "ada-password-123"}});
    let r = send(addr, "POST", "/api/call", &h, login.to_string().as_bytes());
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(cookie_value(&r, "appforge_session").is_none());
}

#[test]
fn the_session_cookie_is_http_only_strict_and_sign_out_revokes_it() {
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let mut browser = Browser::open(addr);
    let signup = browser.sign_up("ada@example.com", "ada-password-123");
    let cookie = signup
        .headers_named("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("appforge_session="))
        .expect("a session cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let reply = signup.last();
    assert_eq!(
        reply["reply"]["Session"]["token"], "",
        "the token stays in the cookie: {reply}"
    );
    assert!(!signup
        .text()
        .contains(browser.session_cookie.as_deref().unwrap()));
    let me = browser.call(json!("Whoami"));
    assert_eq!(
        me.last()["reply"]["User"]["email"],
        "ada@example.com",
        "{}",
        me.text()
    );

    let out = browser.call(json!("Logout"));
    assert!(
        out.last()["reply"].is_string() || out.last()["reply"].is_object(),
        "{}",
        out.text()
    );
    assert!(
        out.headers_named("set-cookie")
            .iter()
            .any(|c| c.starts_with("appforge_session=;") && c.contains("Max-Age=0")),
        "sign-out clears the cookie: {:?}",
        out.headers
    );
    // The old cookie and token, replayed, no longer act for anyone.
    let replay = browser.call(json!("Whoami"));
    assert_ne!(replay.status, 200, "{}", replay.text());
    let mut signed_out = Browser::open(addr);
    signed_out.session_cookie = browser.session_cookie.clone();
    let r = signed_out.call(json!("Whoami"));
    assert_eq!(error_code(&r), "unauthenticated", "{}", r.text());
}

/// An app's server receives the dashboard's cookies (cookies are shared by
/// every port of 127.0.0.1), and can send any header it likes. With the
/// stolen cookies and no CSRF token issued to the page, it gets nothing.
#[test]
fn an_app_holding_the_stolen_cookies_cannot_act_for_the_user() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let mut browser = Browser::open(addr);
    browser.sign_up("ada@example.com", "ada-password-123");
    let ada = daemon.user("ada");
    ada.login().ok();
    new_project(&ada, "secret-project");
    let stolen = format!(
        "appforge_csrf={}; appforge_session={}",
        browser.csrf_cookie,
        browser.session_cookie.as_deref().unwrap()
    );
    let origin = format!("http://{addr}");
    let show = json!({"ShowProject": {"project": "secret-project", "version": null}}).to_string();
    for token in [
        browser.csrf_cookie.as_str(),
        browser.session_cookie.as_deref().unwrap(),
        "",
    ] {
        let h = [
            ("Host", addr.to_string()),
            ("Origin", origin.clone()),
            ("Cookie", stolen.clone()),
            ("X-CSRF-Token", token.to_string()),
            ("Content-Type", "application/json".to_string()),
        ];
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = send(addr, "POST", "/api/call", &h, show.as_bytes());
        assert_eq!(r.status, 403, "token {token:?}: {}", r.text());
        assert!(!r.text().contains("app.py"), "{}", r.text());
        let export = json!({"project": "secret-project", "format": "Zip"}).to_string();
        let r = send(addr, "POST", "/api/export", &h, export.as_bytes());
        assert_eq!(r.status, 403, "export with token {token:?}");
    }
}

#[test]
fn another_users_project_is_answered_like_a_missing_one() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let bob = signed_up(&daemon, "bob");
    let id = new_project(&bob, "bobs-app");
    let mut browser = Browser::open(addr);
    browser.sign_up("ada@example.com", "ada-password-123");
    let mine_missing =
        browser.call(json!({"ShowProject": {"project": "no-such-project", "version": null}}));
    let theirs = browser.call(json!({"ShowProject": {"project": id.to_string(), "version": null}}));
    let theirs_by_name =
        browser.call(json!({"ShowProject": {"project": "bobs-app", "version": null}}));
    for r in [&mine_missing, &theirs, &theirs_by_name] {
        assert_eq!(error_code(r), "not-found", "{}", r.text());
    }
    let shape = |r: &appforge_e2e::web::Response| {
        r.last()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .replace(&id.to_string(), "X")
            .replace("bobs-app", "X")
            .replace("no-such-project", "X")
    };
    assert_eq!(shape(&theirs), shape(&mine_missing));
    let r = browser.post(
        "/api/export",
        &json!({"project": id.to_string(), "format": "Zip"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    for request in [
        json!({"Run": {"project": id.to_string(), "port": null}}),
        json!({"DeleteProject": {"project": id.to_string()}}),
    ] {
        let r = browser.call(request.clone());
        assert_eq!(error_code(&r), "not-found", "{request}: {}", r.text());
    }
    // Bob's project is untouched.
    assert!(bob
        .run(&["show", "bobs-app"])
        .ok()
        .stdout
        .contains("app.py"));
}

/// The request that generates and saves `todo` offline, checked or not.
fn generate_todo(check: bool) -> serde_json::Value {
    json!({"Generate": {
        "prompt": "a todo app with title and done flag",
        "provider": "template",
        "model": null,
        "save": true,
        "name": "todo",
        "checks": {"check": check, "keep_broken": false, "repair_rounds": null},
    }})
}

#[test]
fn generate_streams_its_progress_and_export_downloads_the_archive() {
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let mut browser = Browser::open(addr);
    browser.sign_up("ada@example.com", "ada-password-123");
    let r = browser.call(generate_todo(true));
    assert_eq!(r.status, 200, "{}", r.text());
    let lines = r.lines();
    assert!(
        lines.iter().filter(|l| l.get("progress").is_some()).count() >= 3,
        "progress before the reply: {}",
        r.text()
    );
    let reply = r.last();
    assert_eq!(
        reply["reply"]["Generated"]["check_status"], "passed",
        "{reply}"
    );
    let archive = browser.post("/api/export", &json!({"project": "todo", "format": "Zip"}));
    assert_eq!(archive.status, 200, "{}", archive.text());
    assert_eq!(archive.header("content-type"), Some("application/zip"));
    assert!(archive.body.starts_with(b"PK"), "a zip archive");
    let disposition = archive.header("content-disposition").unwrap_or_default();
    assert_eq!(disposition, "attachment; filename=\"todo.zip\"");
}

#[test]
fn an_app_started_a_moment_ago_has_a_point_on_its_usage_charts() {
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let mut browser = Browser::open(addr);
    browser.sign_up("ada@example.com", "ada-password-123");
    assert_eq!(browser.call(generate_todo(false)).status, 200);
    // Nothing runs: no series.
    let usage = browser.call(json!("Usage")).last();
    assert_eq!(usage["reply"]["Usage"], json!([]), "{usage}");
    let run = browser.call(json!({"Run": {"project": "todo", "port": null}}));
    assert!(
        run.last()["reply"].get("Running").is_some(),
        "{}",
        run.text()
    );
    // Long before the first minute's sample: a reading of the moment.
    let usage = browser.call(json!("Usage")).last();
    let series = usage["reply"]["Usage"].as_array().expect("series").clone();
    assert_eq!(series.len(), 1, "{usage}");
    assert_eq!(series[0]["name"], "todo");
    let samples = series[0]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{usage}");
    assert!(samples[0]["rss_bytes"].as_u64().unwrap() > 0, "{usage}");
    assert!(
        samples[0]["cpu_percent"].as_f64().unwrap() >= 0.0,
        "{usage}"
    );
    let stop = json!({"Stop": {"project": "todo", "all": false}});
    assert_eq!(browser.call(stop).status, 200);
}

#[test]
fn bad_requests_get_clear_errors_and_bodies_are_capped() {
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let mut browser = Browser::open(addr);
    browser.sign_up("ada@example.com", "ada-password-123");
    let headers = browser.headers();
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = send(addr, "POST", "/api/call", &h, b"{not json");
    assert_eq!(r.status, 400);
    let message = r.last()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("not a protocol request"), "{message}");
    for leak in ["panicked", "src/", "RUST_BACKTRACE", "thread '"] {
        assert!(!r.text().contains(leak), "{leak}: {}", r.text());
    }
    let r = browser.call(json!({"NoSuchRequest": {}}));
    assert_eq!(r.status, 400, "{}", r.text());
    // 17 MiB: over the 16 MiB cap, refused without being kept.
    let big = vec![b' '; 17 * 1024 * 1024];
    let r = send(addr, "POST", "/api/call", &h, &big);
    assert_eq!(r.status, 413, "{}", r.text());
    // The dashboard still answers.
    assert_eq!(browser.call(json!("Whoami")).status, 200);
}

#[test]
fn the_address_is_loopback_unless_remote_is_allowed_and_off_serves_nothing() {
    let daemon = Daemon::start();
    let refused = daemon.run_another(&["--web-addr", "0.0.0.0:0"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--web-allow-remote"), "{stderr}");
    let status: Value = daemon.user("x").run(&["--json", "status"]).ok().json();
    assert_eq!(
        status["web_url"],
        Value::Null,
        "the harness turns it off: {status}"
    );
}

/// Anything on the machine, an app included, can connect to the dashboard.
/// 300 connections that say nothing take at most its 128 slots: the
/// daemon's descriptors stay bounded, the socket still serves, and the
/// dashboard answers again once they close.
#[test]
fn a_flood_of_connections_does_not_exhaust_the_daemon() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = fds();
    let mut flood = Vec::new();
    for _ in 0..300 {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)) {
            Ok(stream) => flood.push(stream),
            Err(_) => break,
        }
    }
    appforge_e2e::wait_for("the daemon to take its share of the flood", || {
        fds() >= before + 100
    });
    let during = fds();
    assert!(
        during <= before + 128 + 8,
        "the daemon holds {during} descriptors, {before} before the flood"
    );
    let ping = daemon.user("ada").run(&["ping"]);
    assert_eq!(ping.code, 0, "{ping:?}");
    drop(flood);
    let host = addr.to_string();
    appforge_e2e::wait_for("the dashboard to answer again", || {
        send(addr, "GET", "/", &[("Host", &host)], b"").status == 200
    });
}

/// Connections that never finish a request's headers (silent ones, and a
/// slow trickle) are closed after the header time limit, so a local process
/// holding all 128 slots keeps the dashboard from no one for long.
#[test]
fn connections_that_never_finish_their_headers_are_closed() {
    use std::io::{Read, Write};
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let host = addr.to_string();
    let mut held = Vec::new();
    for i in 0..128 {
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
                .expect("connect");
        if i % 2 == 1 {
            stream
                .write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n").as_bytes())
                .unwrap();
        }
        held.push(stream);
    }
    // Every slot is taken; the request below waits in the backlog until the
    // server closes the held connections, however long they stay open here.
    let answer = send(addr, "GET", "/", &[("Host", &host)], b"");
    assert_eq!(answer.status, 200);
    for mut stream in held {
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).unwrap_or(0);
        assert!(
            n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
            "a held connection was not closed: {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
}

/// A provider that fails answers the page with the same error the client
/// gets, after the progress so far, and nothing is saved.
#[test]
fn a_failing_provider_is_reported_on_the_page_and_nothing_is_saved() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Status(500));
    let daemon = mock.daemon(&["--web-addr", "127.0.0.1:0", "--max-retries", "1"], &[]);
    let addr = dashboard_of(&daemon);
    let mut browser = Browser::open(addr);
    browser.sign_up("ada@example.com", "ada-password-123");
    let r = browser.call(json!({"Generate": {
        "prompt": "a todo app",
        "provider": null,
        "model": null,
        "save": true,
        "name": "todo",
        "checks": {"check": true, "keep_broken": false, "repair_rounds": null},
    }}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(error_code(&r), "provider-error", "{}", r.text());
    let message = r.last()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("500"), "{message}");
    let list = browser.call(json!("ListProjects"));
    assert_eq!(
        list.last()["reply"]["Projects"],
        json!([]),
        "{}",
        list.text()
    );
    // An export of what was never saved is not found, with its HTTP status.
    let r = browser.post("/api/export", &json!({"project": "todo", "format": "Zip"}));
    assert_eq!(r.status, 404, "{}", r.text());
}

/// Signed out, the API answers every project request as unauthenticated,
/// and an export with 401.
#[test]
fn a_signed_out_browser_gets_nothing() {
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let browser = Browser::open(addr);
    let r = browser.call(json!("ListProjects"));
    assert_eq!(error_code(&r), "unauthenticated", "{}", r.text());
    let r = browser.post("/api/export", &json!({"project": "1", "format": "Zip"}));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(error_code(&r), "unauthenticated");
}

/// A live-log view that the browser closes ends in the daemon too: the
/// request that follows the log is cancelled, as it is for a client on the
/// socket, and the app's log is followed no more.
#[test]
fn closing_a_live_log_view_cancels_its_request_in_the_daemon() {
    use std::io::{Read, Write};
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let mut browser = Browser::open(addr);
    browser.sign_up("ada@example.com", "ada-password-123");
    let ada = daemon.user("ada");
    ada.login().ok();
    new_project(&ada, "todo");
    run_app(&ada, "todo");
    let cancelled = || {
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("browser left; request cancelled") && l.contains("logs"))
            .count()
    };
    let body = json!({"Logs": {"project": "todo", "lines": 5, "follow": true}}).to_string();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "POST /api/call HTTP/1.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in browser.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).expect("the stream starts");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(cancelled(), 0, "a follow ends only when the browser leaves");
    drop(stream);
    wait_for("the daemon to cancel the follow", || cancelled() == 1);
}
