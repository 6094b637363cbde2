//! The web dashboard over real HTTP: every rule of its guard tried for real
//! (Host, Origin, CSRF token, cookie flags, headers, body cap), the same
//! owner rules as the socket, and an app that steals the session cookie.

use appforge_e2e::apps::{log_text, new_project, project_with_app, run_app, signed_up};
use appforge_e2e::mock_provider::{Answer, MockProvider};
use appforge_e2e::web::{
    cookie_value, daemon_with_dashboard, dashboard_link, dashboard_of, path_of, send, signed_in,
    Browser,
};
use appforge_e2e::{wait_for, Daemon};
use serde_json::{json, Value};
use std::collections::BTreeSet;

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

/// The page's script is ES modules the browser loads one by one, with no
/// build step: every module the page imports, directly or not, is served
/// with a JavaScript content type (under `nosniff` a browser refuses a
/// module of any other type) and the page's headers, and every script in
/// `daemon/web/assets` is one of them.
#[test]
fn every_module_the_page_imports_is_served_as_javascript() {
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let host = addr.to_string();
    let page = send(addr, "GET", "/", &[("Host", &host)], b"").text();
    assert!(
        page.contains(r#"<script type="module" src="/assets/app.js"></script>"#),
        "the page does not load app.js as a module:\n{page}"
    );
    let mut queue = vec!["app.js".to_string()];
    let mut served = BTreeSet::new();
    while let Some(name) = queue.pop() {
        if !served.insert(name.clone()) {
            continue;
        }
        let path = format!("/assets/{name}");
        let r = send(addr, "GET", &path, &[("Host", &host)], b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("text/javascript; charset=utf-8"),
            "{path}"
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        queue.extend(imports_of(&path, &r.text()));
    }
    assert!(served.len() > 1, "app.js imports no module");
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/web/assets");
    let scripts: BTreeSet<String> = std::fs::read_dir(&folder)
        .expect("daemon/web/assets")
        .map(|entry| entry.expect("an entry of daemon/web/assets").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".js"))
        .collect();
    assert_eq!(
        served, scripts,
        "the modules the page imports are not the scripts in daemon/web/assets"
    );
}

/// The modules a module imports (`import … from "./NAME.js"`), as names
/// under `/assets/`. Any other import could not load without a build step.
fn imports_of(path: &str, source: &str) -> Vec<String> {
    source
        .split("from \"")
        .skip(1)
        .chain(source.split("import \"").skip(1))
        .map(|rest| {
            let spec = rest.split('"').next().unwrap_or_default();
            spec.strip_prefix("./")
                .filter(|name| name.ends_with(".js") && !name.contains('/'))
                .unwrap_or_else(|| {
                    panic!("{path} imports {spec:?}, which the dashboard does not serve")
                })
                .to_string()
        })
        .collect()
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
    }
    let r = send(addr, "GET", "/", &[], b"");
    assert_eq!(r.status, 403, "no Host: {}", r.text());
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        assert_eq!(send(addr, "GET", "/", &[("Host", &host)], b"").status, 200);
    }
}

#[test]
fn a_post_without_the_csrf_token_or_from_another_origin_is_refused() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let (_ada, browser) = signed_in(&daemon, addr, "ada");
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
        let r = send(addr, "POST", &browser.api("call"), &h, list.as_bytes());
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
        let r = send(addr, "POST", &browser.api("call"), &h, list.as_bytes());
        assert_eq!(r.status, 403, "{what}: {}", r.text());
    }
    // Not even a signed-in page signs anyone up or in, nor asks for a link.
    for request in [
        json!({"Signup": {"email": "eve@example.com", "password": "eve-password-123"}}),
        json!({"Login": {"email": "ada@example.com", "password": "ada-password-123"}}),
        json!("DashboardLink"),
    ] {
        let r = browser.call(request.clone());
        assert_eq!(r.status, 403, "{request}: {}", r.text());
        assert!(r.text().contains("appforge dashboard"), "{}", r.text());
        assert!(cookie_value(&r, "appforge_session").is_none());
    }
}

#[test]
fn the_session_cookie_is_http_only_strict_and_sign_out_revokes_it() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let ada = daemon.user("ada");
    ada.signup().ok();
    let mut browser = Browser::open(addr);
    let signup = browser.follow_link(&dashboard_link(&ada));
    assert_eq!(signup.status, 303, "{}", signup.text());
    let cookie = signup
        .headers_named("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("appforge_session="))
        .expect("a session cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let key = browser.api_key.clone().expect("the API's key");
    assert!(cookie.contains(&format!("Path=/api/{key}/;")), "{cookie}");
    // The session is the browser's own, not the CLI's.
    let cli_session =
        std::fs::read_to_string(ada.config_home.join("appforge/session.json")).unwrap_or_default();
    assert!(cli_session.contains("afs_"), "{cli_session}");
    assert!(
        !cli_session.contains(browser.session_cookie.as_deref().unwrap()),
        "the browser got the CLI's own session"
    );
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
            .any(|c| c.starts_with("appforge_session=;")
                && c.contains("Max-Age=0")
                && c.contains(&format!("Path=/api/{key}/;"))),
        "sign-out clears the cookie: {:?}",
        out.headers
    );
    // The old cookie and token, replayed, no longer act for anyone.
    let replay = browser.call(json!("Whoami"));
    assert_ne!(replay.status, 200, "{}", replay.text());
    let mut signed_out = Browser::open(addr);
    signed_out.session_cookie = browser.session_cookie.clone();
    signed_out.csrf_token = browser.csrf_token.clone();
    signed_out.api_key = browser.api_key.clone();
    let r = signed_out.call(json!("Whoami"));
    assert_eq!(error_code(&r), "unauthenticated", "{}", r.text());
}

/// Were an app's server to get the dashboard's session cookie (cookies are
/// shared by every port of 127.0.0.1; its path keeps it from apps), and
/// even the API's key, it can send any header it likes: with no CSRF token
/// issued to the page, it gets nothing.
#[test]
fn an_app_holding_the_stolen_cookies_cannot_act_for_the_user() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let (ada, browser) = signed_in(&daemon, addr, "ada");
    new_project(&ada, "secret-project");
    let stolen = format!(
        "appforge_session={}",
        browser.session_cookie.as_deref().unwrap()
    );
    let origin = format!("http://{addr}");
    let show = json!({"ShowProject": {"project": "secret-project", "version": null}}).to_string();
    for token in [browser.session_cookie.as_deref().unwrap(), "", "0000"] {
        let h = [
            ("Host", addr.to_string()),
            ("Origin", origin.clone()),
            ("Cookie", stolen.clone()),
            ("X-CSRF-Token", token.to_string()),
            ("Content-Type", "application/json".to_string()),
        ];
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = send(addr, "POST", &browser.api("call"), &h, show.as_bytes());
        assert_eq!(r.status, 403, "token {token:?}: {}", r.text());
        assert!(!r.text().contains("app.py"), "{}", r.text());
        let export = json!({"project": "secret-project", "format": "Zip"}).to_string();
        let r = send(addr, "POST", &browser.api("export"), &h, export.as_bytes());
        assert_eq!(r.status, 403, "export with token {token:?}");
    }
}

#[test]
fn another_users_project_is_answered_like_a_missing_one() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let bob = signed_up(&daemon, "bob");
    let id = new_project(&bob, "bobs-app");
    let (_ada, browser) = signed_in(&daemon, addr, "ada");
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
    let r = browser.export(json!({"project": id.to_string(), "format": "Zip"}));
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
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let (_ada, browser) = signed_in(&daemon, addr, "ada");
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
    let archive = browser.export(json!({"project": "todo", "format": "Zip"}));
    assert_eq!(archive.status, 200, "{}", archive.text());
    assert_eq!(archive.header("content-type"), Some("application/zip"));
    assert!(archive.body.starts_with(b"PK"), "a zip archive");
    let disposition = archive.header("content-disposition").unwrap_or_default();
    assert_eq!(disposition, "attachment; filename=\"todo.zip\"");
}

#[test]
fn an_app_started_a_moment_ago_has_a_point_on_its_usage_charts() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let (_ada, browser) = signed_in(&daemon, addr, "ada");
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
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let (_ada, browser) = signed_in(&daemon, addr, "ada");
    let headers = browser.headers();
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let call = browser.api("call");
    let r = send(addr, "POST", &call, &h, b"{not json");
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
    let r = send(addr, "POST", &call, &h, &big);
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

/// A client that asks for page after page and never reads the answers
/// (they pile up in its small receive buffer) holds its slot only until
/// the server's writes have made no progress for a while: then the server
/// closes the connection.
#[test]
fn a_client_that_never_reads_its_answers_is_closed() {
    use std::io::Write;
    let (_daemon, addr) = daemon_with_dashboard(&[]);
    let host = addr.to_string();
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::RcvBuf, &4096)
        .expect("a small receive buffer");
    // A write the server does not take in times out rather than blocking
    // the test; only a reset or a broken pipe says the server closed.
    stream
        .set_write_timeout(Some(std::time::Duration::from_secs(1)))
        .expect("a write timeout");
    let request = format!("GET /assets/app.js HTTP/1.1\r\nHost: {host}\r\n\r\n");
    // Enough answers (tens of MB) that no buffer holds them all.
    let mut writer = &stream;
    for _ in 0..400 {
        if writer.write_all(request.as_bytes()).is_err() {
            break;
        }
    }
    // Closed by the server: writing then fails, a reset, as the requests
    // it did not read were still queued when it closed its descriptor.
    // (Counting the daemon's descriptors instead would race its others.)
    wait_for("the stalled connection to be closed", || {
        writer.write_all(b"\r\n").is_err_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        })
    });
}

/// A provider that fails answers the page with the same error the client
/// gets, after the progress so far, and nothing is saved.
#[test]
fn a_failing_provider_is_reported_on_the_page_and_nothing_is_saved() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Status(500));
    let daemon = mock.daemon(&["--web-addr", "127.0.0.1:0", "--max-retries", "1"], &[]);
    let addr = dashboard_of(&daemon);
    let (_ada, browser) = signed_in(&daemon, addr, "ada");
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
    let r = browser.export(json!({"project": "todo", "format": "Zip"}));
    assert_eq!(r.status, 404, "{}", r.text());
}

/// Signed out, the API answers every project request as unauthenticated,
/// and an export with 401; without the API's key, with 404.
#[test]
fn a_signed_out_browser_gets_nothing() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let mut browser = Browser::open(addr);
    let r = browser.call(json!("ListProjects"));
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(error_code(&r), "unauthenticated", "{}", r.text());
    // Knowing the key (from another browser's sign-in) gets no further.
    let (_ada, other) = signed_in(&daemon, addr, "ada");
    browser.api_key = other.api_key.clone();
    let r = browser.call(json!("ListProjects"));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(error_code(&r), "unauthenticated", "{}", r.text());
    let r = browser.export(json!({"project": "1", "format": "Zip"}));
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
    let (ada, browser) = signed_in(&daemon, addr, "ada");
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
        "POST {} HTTP/1.1\r\nContent-Length: {}\r\n",
        browser.api("call"),
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

/// The attack of issue 20: a program (another OS user, an app) opens the
/// page, makes up a CSRF cookie with the same value in the header, forges
/// the Origin and asks to sign up or in. Without a link from the socket it
/// gets no session, whatever it sends, and can call nothing.
#[test]
fn a_process_without_a_link_gets_no_session_and_can_call_nothing() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "secret-project");
    // Were the API's key known (it is not: it reaches only a signed-in
    // page), the session check still stops everything.
    let call = Browser::signed_in(addr, &ada).api("call");
    let host = addr.to_string();
    let page = send(addr, "GET", "/", &[("Host", &host)], b"");
    assert_eq!(page.status, 200);
    assert!(
        page.headers_named("set-cookie").is_empty(),
        "the page hands out a cookie: {:?}",
        page.headers
    );
    let made_up = "a".repeat(64);
    let cookie = format!("appforge_csrf={made_up}");
    let origin = format!("http://{host}");
    let forged = [
        ("Host", host.as_str()),
        ("Origin", origin.as_str()),
        ("Cookie", cookie.as_str()),
        ("X-CSRF-Token", made_up.as_str()),
        ("Content-Type", "application/json"),
    ];
    for request in [
        json!({"Signup": {"email": "eve@example.com", "password": "eve-password-123"}}),
        json!({"Login": {"email": &ada.email, "password": &ada.password}}),
        json!("DashboardLink"),
        json!("ListProjects"),
        json!({"ShowProject": {"project": "secret-project", "version": null}}),
        generate_todo(false),
    ] {
        let without_key = send(
            addr,
            "POST",
            "/api/call",
            &forged,
            request.to_string().as_bytes(),
        );
        assert_eq!(without_key.status, 404, "{request}: {}", without_key.text());
        let r = send(addr, "POST", &call, &forged, request.to_string().as_bytes());
        assert_eq!(r.status, 401, "{request}: {}", r.text());
        assert_eq!(error_code(&r), "unauthenticated", "{request}");
        assert!(r.text().contains("appforge dashboard"), "{}", r.text());
        assert!(cookie_value(&r, "appforge_session").is_none(), "{request}");
        assert!(!r.text().contains("app.py"));
    }
    // Nothing was made: no account, no project.
    let status = ada.run(&["--json", "status"]).ok().json();
    assert_eq!(status["users"], 1, "{status}");
    assert_eq!(status["projects"], 1, "{status}");
    let export = json!({"project": "secret-project", "format": "Zip"}).to_string();
    let export_path = call.replace("/call", "/export");
    let r = send(addr, "POST", &export_path, &forged, export.as_bytes());
    assert_eq!(r.status, 401, "{}", r.text());
}

/// `appforge dashboard` hands out a link that signs one browser in as the
/// CLI's account, once, and only while signed in on the socket.
#[test]
fn a_link_from_the_socket_signs_in_as_the_clis_account_once() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "adas-app");
    let link = dashboard_link(&ada);
    assert!(
        link.starts_with(&format!("http://{addr}/login?token=afl_")),
        "{link}"
    );
    let token = link.rsplit('=').next().unwrap();
    assert!(token.len() >= 4 + 32, "at least 128 bits: {token}");
    // Text for people says how long it lasts.
    let text = ada.run(&["dashboard", "--no-open"]).ok().stdout;
    assert!(
        text.contains("/login?token=") && text.contains("60 s"),
        "{text}"
    );

    // A HEAD (a link preview) does not use the link up.
    let host = addr.to_string();
    let head = send(addr, "HEAD", &path_of(&link), &[("Host", &host)], b"");
    assert!(cookie_value(&head, "appforge_session").is_none());
    let mut browser = Browser::open(addr);
    let opened = browser.follow_link(&link);
    assert_eq!(opened.status, 303, "{}", opened.text());
    let location = opened.header("location").unwrap_or_default();
    assert!(
        location.starts_with("/#csrf=") && location.contains("&api="),
        "{location}"
    );
    let me = browser.call(json!("Whoami"));
    assert_eq!(
        me.last()["reply"]["User"]["email"],
        ada.email,
        "{}",
        me.text()
    );
    let list = browser.call(json!("ListProjects")).last();
    assert_eq!(list["reply"]["Projects"][0]["name"], "adas-app", "{list}");

    // Used once: the same link, again, signs no one in.
    for path in [
        path_of(&link),
        "/login?token=afl_0000".to_string(),
        format!("/login?token={}", "f".repeat(64)),
    ] {
        let r = send(addr, "GET", &path, &[("Host", &host)], b"");
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(cookie_value(&r, "appforge_session").is_none(), "{path}");
        assert!(r.text().contains("appforge dashboard"), "{}", r.text());
        assert!(r.text().contains("used or expired"), "{}", r.text());
    }
    let r = send(addr, "GET", "/login", &[("Host", &host)], b"");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("appforge dashboard"), "{}", r.text());
    // A link opened under another host name is refused (DNS rebinding).
    let fresh = dashboard_link(&ada);
    let r = send(
        addr,
        "GET",
        &path_of(&fresh),
        &[("Host", "evil.example")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert!(cookie_value(&r, "appforge_session").is_none());

    // Signed out on the socket: no link.
    let nobody = daemon.user("nobody");
    let r = nobody.run(&["dashboard", "--no-open"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("not signed in"), "{}", r.stderr);
}

#[test]
fn a_daemon_without_a_dashboard_says_so() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let r = ada.run(&["dashboard", "--no-open"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--web-addr"), "{}", r.stderr);
}

/// The daemon's resident memory, and its peak, in bytes.
fn memory(daemon: &Daemon) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid()))
        .expect("the daemon's /proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// 40 connections with no session each announce and send a 15 MB body:
/// each is answered from its headers, before a byte of body is read, and
/// its connection closed, so the daemon's memory stays where it was.
#[test]
fn unauthenticated_bodies_are_refused_unread_and_cost_no_memory() {
    use std::io::{Read, Write};
    const BODY: usize = 15 * 1024 * 1024;
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let host = addr.to_string();
    // The API's key, as if known (a quarter of the senders lack it).
    let (_ada, browser) = signed_in(&daemon, addr, "ada");
    let call = browser.api("call");
    // Warm up: the page and a refused call once.
    assert_eq!(send(addr, "GET", "/", &[("Host", &host)], b"").status, 200);
    let (rss_before, peak_before) = memory(&daemon);
    let senders: Vec<_> = (0..40)
        .map(|i| {
            let host = host.clone();
            let path = if i % 4 == 3 {
                "/api/call".to_string()
            } else {
                call.clone()
            };
            std::thread::spawn(move || -> (String, usize, bool) {
                let mut stream = std::net::TcpStream::connect(addr).expect("connect");
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(20)))
                    .unwrap();
                stream
                    .set_write_timeout(Some(std::time::Duration::from_secs(20)))
                    .unwrap();
                // Half with made-up cookies, half with none.
                let cookie = if i % 2 == 0 {
                    "Cookie: appforge_session=afs_made_up\r\nX-CSRF-Token: made-up\r\n"
                } else {
                    ""
                };
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
                     Content-Type: application/json\r\n{cookie}Content-Length: {BODY}\r\n\r\n"
                );
                stream.write_all(head.as_bytes()).expect("send head");
                // The answer comes before any body byte is sent.
                let mut answer = [0u8; 64];
                let n = stream.read(&mut answer).unwrap_or(0);
                let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
                // Then the body, as far as the daemon takes it.
                let chunk = vec![b' '; 64 * 1024];
                let mut sent = 0;
                while sent < BODY {
                    match stream.write(&chunk[..chunk.len().min(BODY - sent)]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => sent += n,
                    }
                }
                (answer, sent, i % 4 == 3)
            })
        })
        .collect();
    for sender in senders {
        let (answer, sent, keyless) = sender.join().expect("a sender");
        let expected = if keyless {
            "HTTP/1.1 404"
        } else {
            "HTTP/1.1 401"
        };
        assert!(
            answer.starts_with(expected),
            "answered before the body: {answer:?}"
        );
        assert!(
            sent < BODY,
            "the daemon took the whole 15 MB body of a request it refused"
        );
    }
    let (rss_after, peak_after) = memory(&daemon);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "RSS {:.1} MiB -> {:.1} MiB, peak {:.1} MiB -> {:.1} MiB",
        mib(rss_before),
        mib(rss_after),
        mib(peak_before),
        mib(peak_after)
    );
    let allowed = rss_before.max(peak_before) + 8 * 1024 * 1024;
    assert!(
        peak_after <= allowed,
        "the daemon's peak grew to {:.1} MiB under refused bodies (idle {:.1} MiB)",
        mib(peak_after),
        mib(rss_before)
    );
    // The dashboard still answers.
    assert_eq!(send(addr, "GET", "/", &[("Host", &host)], b"").status, 200);
}

/// Sends `head` on a new connection, then one byte of body a second until
/// the daemon closes it or `limit` passes; returns how long it stayed open
/// and what it answered.
fn trickle(
    addr: std::net::SocketAddr,
    head: String,
    limit: std::time::Duration,
) -> (std::time::Duration, String) {
    trickle_on(sent_head(addr, &head), limit)
}

/// A new connection to `addr` that has sent `head`, and when.
fn sent_head(addr: std::net::SocketAddr, head: &str) -> (std::net::TcpStream, std::time::Instant) {
    use std::io::Write;
    let started = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.write_all(head.as_bytes()).expect("send head");
    (stream, started)
}

/// [`trickle`] on a connection that has sent its head.
fn trickle_on(
    (mut stream, started): (std::net::TcpStream, std::time::Instant),
    limit: std::time::Duration,
) -> (std::time::Duration, String) {
    use std::io::{Read, Write};
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let mut answer = Vec::new();
    while started.elapsed() < limit {
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                if stream.write_all(b" ").is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

/// A signed-in request whose body comes a byte a second is dropped at the
/// body's deadline (10 s), like a slow header.
#[test]
fn a_slow_body_is_dropped_at_its_deadline() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let (_ada, browser) = signed_in(&daemon, addr, "ada");
    let mut head = format!(
        "POST {} HTTP/1.1\r\nContent-Length: 1000\r\n",
        browser.api("call")
    );
    for (name, value) in browser.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let (held, answer) = trickle(addr, head, std::time::Duration::from_secs(40));
    assert!(
        held < std::time::Duration::from_secs(25),
        "a slow body held its connection {held:?}: {answer:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

/// 130 connections that send a full header and then a byte of body a
/// second, without a session, hold no slot: a signed-in request is served
/// at once all the same.
#[test]
fn slow_bodies_without_a_session_do_not_keep_a_signed_in_request_out() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let (_ada, browser) = signed_in(&daemon, addr, "ada");
    let host = addr.to_string();
    let call = browser.api("call");
    let head = format!(
        "POST {call} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
         Content-Length: 100000\r\n\r\n"
    );
    // All connected, each with its head sent, before the signed-in request.
    let slow: Vec<_> = (0..130)
        .map(|_| {
            let connection = sent_head(addr, &head);
            std::thread::spawn(move || trickle_on(connection, std::time::Duration::from_secs(30)))
        })
        .collect();
    let started = std::time::Instant::now();
    let me = browser.call(json!("Whoami"));
    let waited = started.elapsed();
    assert_eq!(me.status, 200, "{}", me.text());
    assert!(
        waited < std::time::Duration::from_secs(5),
        "a signed-in request waited {waited:?} behind slow bodies"
    );
    for t in slow {
        let (held, answer) = t.join().expect("a slow sender");
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "held {held:?}: {answer:?}"
        );
        assert!(held < std::time::Duration::from_secs(25), "held {held:?}");
    }
}

/// Cookie tossing: an app on another port of 127.0.0.1 sets
/// `appforge_session=x` at a path above the API's (`/`, `/api/`), which the
/// browser then sends along with the session cookie. The dashboard's
/// session survives it, and a link signs in despite it.
#[test]
fn a_tossed_session_cookie_neither_signs_out_nor_blocks_sign_in() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let ada = signed_up(&daemon, "ada");
    let mut browser = Browser::open(addr);
    browser.tossed = vec!["x".into()];
    let opened = browser.follow_link(&dashboard_link(&ada));
    assert_eq!(opened.status, 303, "{}", opened.text());
    let me = browser.call(json!("Whoami"));
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.last()["reply"]["User"]["email"], ada.email);
    // Tossed after sign-in, several and of every shape, even another
    // session of this daemon's (bob's, signed in on another browser).
    let (_bob, bobs) = signed_in(&daemon, addr, "bob");
    browser.tossed = vec![
        "x".into(),
        bobs.session_cookie.clone().unwrap(),
        String::new(),
        "afs_0000".into(),
    ];
    let me = browser.call(json!("Whoami"));
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(
        me.last()["reply"]["User"]["email"],
        ada.email,
        "{}",
        me.text()
    );
    // Bob's cookie with Ada's token acts for no one.
    let mut mixed = Browser::open(addr);
    mixed.session_cookie = bobs.session_cookie.clone();
    mixed.csrf_token = browser.csrf_token.clone();
    mixed.api_key = browser.api_key.clone();
    assert_eq!(mixed.call(json!("Whoami")).status, 403);
}

/// A browser's cookie jar for one host, as far as this needs: a cookie is
/// known by its name and path (not its port), a new one of the same name
/// and path replaces the old, and a request carries every cookie whose path
/// is a prefix of its own, longest path first.
#[derive(Default)]
struct Jar(Vec<(String, String, String)>);

impl Jar {
    /// Takes `Set-Cookie: header`, as a response on any port of the host sets it.
    fn set(&mut self, header: &str) {
        let mut parts = header.split(';').map(str::trim);
        let (name, value) = parts
            .next()
            .and_then(|p| p.split_once('='))
            .expect("a cookie's name and value");
        let path = parts
            .find_map(|p| p.strip_prefix("Path="))
            .unwrap_or("/")
            .to_string();
        self.0.retain(|(n, p, _)| !(n == name && *p == path));
        self.0.push((name.to_string(), path, value.to_string()));
    }

    /// The Cookie header of a request to `path`.
    fn header_for(&self, path: &str) -> String {
        let mut sent: Vec<&(String, String, String)> = self
            .0
            .iter()
            .filter(|(_, p, _)| path.starts_with(p.as_str()))
            .collect();
        sent.sort_by_key(|(_, p, _)| std::cmp::Reverse(p.len()));
        sent.iter()
            .map(|(n, _, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Browsers share cookies across ports: an app on 127.0.0.1:PORT answering
/// `Set-Cookie: appforge_session=x; Path=/` would replace a dashboard
/// cookie of that path and sign the user out, and apps would be sent the
/// real cookie. The session cookie lives at `/api/{key}/` (a key apps never
/// see), so the app's cookie is a second one: a request carrying only it
/// is refused, the browser's own (both) works, and an API path without the
/// key is refused from the path alone, its body unread.
#[test]
fn an_apps_cookie_at_the_root_neither_signs_out_nor_in() {
    use std::io::{Read, Write};
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let ada = signed_up(&daemon, "ada");
    let host = addr.to_string();
    let mut browser = Browser::open(addr);
    let opened = browser.follow_link(&dashboard_link(&ada));
    assert_eq!(opened.status, 303, "{}", opened.text());
    let call = browser.api("call");
    let mut jar = Jar::default();
    for cookie in opened.headers_named("set-cookie") {
        jar.set(cookie);
    }
    // An app's page was sent nothing: its paths are not the API's.
    assert_eq!(jar.header_for("/"), "", "an app is sent the session");
    assert_eq!(
        jar.header_for("/api/call"),
        "",
        "an app is sent the session"
    );
    // The app tosses its cookies of the dashboard's name.
    for path in ["/", "/api/", "/api/call"] {
        jar.set(&format!("appforge_session=x; Path={path}"));
    }
    let csrf = browser.csrf_token.clone().unwrap();
    let origin = format!("http://{host}");
    let whoami = json!("Whoami").to_string();
    let with_cookie = |cookie: &str, path: &str| {
        let h = [
            ("Host", host.as_str()),
            ("Origin", origin.as_str()),
            ("Cookie", cookie),
            ("X-CSRF-Token", csrf.as_str()),
            ("Content-Type", "application/json"),
        ];
        send(addr, "POST", path, &h, whoami.as_bytes())
    };
    // Only the tossed cookie, with the right CSRF token: no one.
    let r = with_cookie("appforge_session=x", &call);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(error_code(&r), "unauthenticated", "{}", r.text());
    // The browser's own request, with what its jar now holds: Ada.
    let sent = jar.header_for(&call);
    assert!(
        sent.contains(browser.session_cookie.as_deref().unwrap()),
        "the app's cookie replaced the dashboard's: {sent}"
    );
    let r = with_cookie(&sent, &call);
    assert_eq!(r.status, 200, "{sent}: {}", r.text());
    assert_eq!(
        r.last()["reply"]["User"]["email"],
        ada.email,
        "{}",
        r.text()
    );
    let key = browser.api_key.clone().unwrap_or_default();
    assert!(
        key.len() >= 32 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "the API's key is at least 128 bits in hex: {:?}",
        opened.header("location")
    );
    assert_eq!(call, format!("/api/{key}/call"));
    for cookie in opened.headers_named("set-cookie") {
        assert!(
            cookie.contains(&format!("; Path=/api/{key}/;")),
            "the session cookie's path is the API's: {cookie}"
        );
    }
    // A wrong or missing key, with the real cookie and token: refused from
    // the path, before a byte of the announced body is sent.
    let real = format!(
        "appforge_session={}",
        browser.session_cookie.as_deref().unwrap()
    );
    let wrong = format!("/api/{}/call", "0".repeat(32));
    for path in [wrong.as_str(), "/api/call", "/api//call", "/api/export"] {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(appforge_e2e::PATIENCE))
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nCookie: {real}\r\n\
             X-CSRF-Token: {csrf}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).expect("send head");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 404") || answer.starts_with("HTTP/1.1 403"),
            "{path}: {answer}"
        );
        assert!(
            !answer.contains(&ada.email) && !answer.contains(&key),
            "{path}: {answer}"
        );
    }
    // The session still works.
    let r = browser.call(json!("Whoami"));
    assert_eq!(r.status, 200, "{}", r.text());
}

/// An app that, when imported, tries the attack of issue 20 on the
/// dashboard: take the page's cookie, sign up with it. `ADDR` is replaced
/// by the dashboard's address.
const DASHBOARD_CALLING_APP: &str = r#"import http.client, json

from flask import Flask

HOST = "ADDR"

def attack():
    try:
        host, port = HOST.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request("GET", "/", headers={"Host": HOST})
        r = c.getresponse()
        r.read()
        cookie = r.getheader("Set-Cookie") or ""
        token = cookie.split(";")[0].split("=", 1)[1] if "appforge_csrf=" in cookie else "a" * 64
        body = json.dumps({"Signup": {"email": "app@example.com", "password": "app-password-123"}})
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request("POST", "/api/call", body=body, headers={
            "Host": HOST, "Origin": "http://" + HOST, "Cookie": "appforge_csrf=" + token,
            "X-CSRF-Token": token, "Content-Type": "application/json"})
        r = c.getresponse()
        got = "appforge_session=" in (r.getheader("Set-Cookie") or "")
        print("dashboard answered %d, session %s" % (r.status, "GOT" if got else "none"), flush=True)
    except Exception as e:
        print("dashboard unreachable: %r" % (e,), flush=True)

attack()
app = Flask(__name__)

@app.route("/")
def index():
    return "ok\n"
"#;

/// An app on this machine calls the dashboard at import time, as one did in
/// issue 20 (signed up, generated, ran a second app). It gets no session:
/// whether it reaches the dashboard at all or not, no account is made.
#[test]
fn an_app_calling_the_dashboard_gets_no_session() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let ada = signed_up(&daemon, "ada");
    let code = DASHBOARD_CALLING_APP.replace("ADDR", &addr.to_string());
    let id = project_with_app(&ada, "caller", &code);
    run_app(&ada, "caller");
    let mut log = String::new();
    wait_for("the app's attempt in its log", || {
        log = log_text(&daemon, id);
        log.contains("dashboard answered") || log.contains("dashboard unreachable")
    });
    assert!(!log.contains("session GOT"), "{log}");
    let status = ada.run(&["--json", "status"]).ok().json();
    assert_eq!(status["users"], 1, "the app made an account: {status}");
}

/// A page's event stream (`GET /api/{key}/events`), read on a thread of
/// its own: every event, by name, with its data as JSON.
struct EventStream {
    status: u16,
    /// The daemon ended the stream (or the connection).
    ended: std::sync::Arc<std::sync::atomic::AtomicBool>,
    events: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    stream: std::net::TcpStream,
}

impl EventStream {
    /// Opens the stream as `browser`'s page would, with `headers` left out.
    fn open(browser: &Browser, without: &[&str]) -> EventStream {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::net::TcpStream::connect(browser.addr).expect("connect");
        let mut head = format!("GET {} HTTP/1.1\r\n", browser.api("events"));
        for (name, value) in browser.headers() {
            if name != "Content-Type" && !without.contains(&name.as_str()) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("Accept: text/event-stream\r\n\r\n");
        stream.write_all(head.as_bytes()).expect("send the request");
        let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("a status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("odd status line {status_line:?}"));
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&events);
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ends = std::sync::Arc::clone(&ended);
        std::thread::spawn(move || {
            // The body is chunked; each event comes whole, `event:` then
            // `data:` lines, so the chunk sizes between them are skipped.
            let mut name = String::new();
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if let Some(event) = line.strip_prefix("event: ") {
                    name = event.to_string();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    let data = serde_json::from_str(data).unwrap_or(Value::Null);
                    seen.lock().unwrap().push((name.clone(), data));
                }
                // The last chunk of a body the daemon ended.
                if line == "0" {
                    break;
                }
            }
            ends.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        EventStream {
            status,
            ended,
            events,
            stream,
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.close();
    }
}

impl EventStream {
    /// Closes the connection, for the reading thread's copy too.
    fn close(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// The `apps` events so far: each the names and statuses of the apps.
    fn apps(&self) -> Vec<Vec<(String, String)>> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, _)| name == "apps")
            .map(|(_, data)| {
                data["apps"]
                    .as_array()
                    .expect("apps is an array")
                    .iter()
                    .map(|a| {
                        (
                            a["name"].as_str().unwrap_or_default().to_string(),
                            a["status"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    /// How many events named `name` came.
    fn count(&self, name: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n == name)
            .count()
    }

    /// Whether the last `apps` event says `apps`.
    fn last_says(&self, apps: &[(&str, &str)]) -> bool {
        let wanted: Vec<(String, String)> = apps
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        self.apps().last() == Some(&wanted)
    }
}

/// The page's one event stream follows its account's apps and projects,
/// whoever changes them (here the CLI), and tells of no one else's.
#[test]
fn the_event_stream_follows_the_accounts_apps_and_no_one_elses() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let (ada, ada_page) = signed_in(&daemon, addr, "ada");
    let (bob, bob_page) = signed_in(&daemon, addr, "bob");
    new_project(&ada, "todo");
    new_project(&bob, "books");
    let ada_events = EventStream::open(&ada_page, &[]);
    let bob_events = EventStream::open(&bob_page, &[]);
    assert_eq!(ada_events.status, 200);
    assert_eq!(bob_events.status, 200);
    wait_for("ada's first event: no app", || ada_events.last_says(&[]));
    wait_for("bob's first event: no app", || bob_events.last_says(&[]));

    run_app(&ada, "todo");
    wait_for("ada's page to hear her app runs", || {
        ada_events.last_says(&[("todo", "running")])
    });
    ada.run(&["stop", "todo"]).ok();
    wait_for("ada's page to hear her app stopped", || {
        ada_events.last_says(&[])
    });
    // Ada's changes do not even wake bob's stream.
    assert_eq!(bob_events.apps().len(), 1, "{:?}", bob_events.apps());
    run_app(&bob, "books");
    wait_for("bob's page to hear his app runs", || {
        bob_events.last_says(&[("books", "running")])
    });
    // A project made from the CLI is news on its owner's page only.
    new_project(&ada, "notes");
    wait_for("ada's page to hear of her new project", || {
        ada_events.count("projects") > 0
    });
    assert_eq!(
        bob_events.count("projects"),
        0,
        "bob heard of ada's project"
    );

    let ada_saw: BTreeSet<String> = ada_events
        .apps()
        .into_iter()
        .flatten()
        .map(|(n, _)| n)
        .collect();
    let bob_saw: BTreeSet<String> = bob_events
        .apps()
        .into_iter()
        .flatten()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        ada_saw,
        BTreeSet::from(["todo".to_string()]),
        "{:?}",
        ada_events.apps()
    );
    assert_eq!(
        bob_saw,
        BTreeSet::from(["books".to_string()]),
        "{:?}",
        bob_events.apps()
    );
}

/// The stream proves its session like every API request, and open pages
/// cannot take every connection: past the streams' cap a page is told so,
/// while requests still get through, and a closed stream frees its slot.
#[test]
fn event_streams_need_a_session_and_are_capped() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let (_ada, page) = signed_in(&daemon, addr, "ada");
    let no_csrf = EventStream::open(&page, &["X-CSRF-Token"]);
    assert_eq!(no_csrf.status, 403);
    let no_cookie = EventStream::open(&page, &["Cookie"]);
    assert_eq!(no_cookie.status, 401);

    // The daemon's cap on streams (web/events.rs).
    const MAX_STREAMS: usize = 32;
    let open: Vec<EventStream> = (0..MAX_STREAMS)
        .map(|_| EventStream::open(&page, &[]))
        .collect();
    assert!(open.iter().all(|s| s.status == 200));
    let refused = EventStream::open(&page, &[]);
    assert_eq!(refused.status, 503);
    let me = page.call(json!("Whoami"));
    assert_eq!(me.status, 200, "{}", me.text());
    assert!(me.last()["reply"]["User"].is_object(), "{}", me.text());

    let mut open = open;
    open.pop().expect("a stream").close();
    wait_for("a closed stream's slot to be free again", || {
        EventStream::open(&page, &[]).status == 200
    });
    drop(open);
}

/// A page signed out elsewhere (another tab, a revoked session) is told so
/// on its stream, which then ends: an open stream is no session of its own.
#[test]
fn an_event_stream_ends_when_its_session_is_signed_out() {
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let (_ada, page) = signed_in(&daemon, addr, "ada");
    let events = EventStream::open(&page, &[]);
    assert_eq!(events.status, 200);
    wait_for("the first event", || events.last_says(&[]));
    let out = page.call(json!("Logout"));
    assert_eq!(out.status, 200, "{}", out.text());
    wait_for("the stream to say it is signed out", || {
        events.count("signed-out") == 1
    });
    wait_for("the stream to end", || {
        events.ended.load(std::sync::atomic::Ordering::SeqCst)
    });
    let refused = EventStream::open(&page, &[]);
    assert_eq!(refused.status, 401);
}
