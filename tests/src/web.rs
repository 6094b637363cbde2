//! A small HTTP/1.1 client for the dashboard's tests: every header is the
//! test's to choose (Host, Origin, Cookie), which a browser would not allow.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::{Daemon, User, PATIENCE};

/// One HTTP response, whole.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header of that name (lower case).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body's JSON lines.
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The last JSON line: the reply or the error.
    pub fn last(&self) -> Value {
        self.lines()
            .pop()
            .unwrap_or_else(|| panic!("no JSON in {} {}", self.status, self.text()))
    }
}

/// Sends one request to `addr` and reads the whole response.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect to the dashboard");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).expect("send head");
    // A refused request may be answered before its body is read.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse(&raw)
}

fn parse(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..end])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// A daemon with its dashboard on a free loopback port.
pub fn daemon_with_dashboard(extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut args = vec!["--web-addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let daemon = Daemon::start_with(&args, &[]);
    let addr = dashboard_of(&daemon);
    (daemon, addr)
}

/// Where a daemon started with `--web-addr` serves its dashboard, as
/// `status` says.
pub fn dashboard_of(daemon: &Daemon) -> SocketAddr {
    let status = daemon
        .user("status-reader")
        .run(&["--json", "status"])
        .ok()
        .json();
    let url = status["web_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no dashboard in status: {status}"));
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("dashboard URL {url}: {e}"))
}

/// A one-time sign-in link, as `appforge --json dashboard --no-open`
/// prints it for `user`.
pub fn dashboard_link(user: &User) -> String {
    let out = user.run(&["--json", "dashboard", "--no-open"]).ok().json();
    assert_eq!(out["expires_in_s"], 60, "{out}");
    out["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no link in {out}"))
        .to_string()
}

/// The path and query of a link (`/login?token=…`).
pub fn path_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http:// link");
    rest[rest.find('/').expect("a path in the link")..].to_string()
}

/// A browser's view of the dashboard: its cookies, its CSRF token and the
/// API's key.
pub struct Browser {
    /// The dashboard's address.
    pub addr: SocketAddr,
    /// The Host and Origin it sends.
    pub host: String,
    /// `appforge_session` cookie, once signed in.
    pub session_cookie: Option<String>,
    /// The CSRF token the sign-in link handed to the page.
    pub csrf_token: Option<String>,
    /// The key in the API's paths (`/api/{key}/call`), handed to the page
    /// with the CSRF token.
    pub api_key: Option<String>,
    /// Cookies of the same names that apps on other ports set at paths
    /// above the API's (`/`, `/api/`): sent with every request, the API's
    /// included, after the session cookie (theirs are shorter paths).
    pub tossed: Vec<String>,
}

impl Browser {
    /// Opens the page, as a browser would first: signed out, and no
    /// cookie is given out.
    pub fn open(addr: SocketAddr) -> Browser {
        let host = addr.to_string();
        let page = send(addr, "GET", "/", &[("Host", &host)], b"");
        assert_eq!(page.status, 200, "{}", page.text());
        assert!(
            page.headers_named("set-cookie").is_empty(),
            "the page gives out no cookie: {:?}",
            page.headers
        );
        Browser {
            addr,
            host,
            session_cookie: None,
            csrf_token: None,
            api_key: None,
            tossed: Vec::new(),
        }
    }

    /// A browser signed in as `user` through a link from `appforge dashboard`.
    pub fn signed_in(addr: SocketAddr, user: &User) -> Browser {
        let mut browser = Browser::open(addr);
        let opened = browser.follow_link(&dashboard_link(user));
        assert_eq!(opened.status, 303, "{}", opened.text());
        assert!(
            browser.session_cookie.is_some()
                && browser.csrf_token.is_some()
                && browser.api_key.is_some()
        );
        browser
    }

    /// Opens a sign-in link; on success keeps the session cookie, and the
    /// CSRF token and API key from the redirect's fragment
    /// (`/#csrf=…&api=…`).
    pub fn follow_link(&mut self, url: &str) -> Response {
        // The session cookie's path is the API's: only tossed ones go here.
        let cookies = self.cookie_header(false);
        let mut headers = vec![("Host", self.host.as_str())];
        if !cookies.is_empty() {
            headers.push(("Cookie", cookies.as_str()));
        }
        let response = send(self.addr, "GET", &path_of(url), &headers, b"");
        if response.status == 303 {
            self.session_cookie = cookie_value(&response, "appforge_session");
            let fragment = response
                .header("location")
                .and_then(|l| l.strip_prefix("/#"))
                .unwrap_or_default();
            let field = |name: &str| {
                fragment
                    .split('&')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .map(str::to_string)
            };
            self.csrf_token = field("csrf");
            self.api_key = field("api");
        }
        response
    }

    /// The Cookie header as a browser sends it: to an API path, the
    /// session cookie (the longest path) first, then the tossed ones.
    fn cookie_header(&self, to_api: bool) -> String {
        let session = self.session_cookie.iter().filter(|_| to_api);
        session
            .chain(self.tossed.iter())
            .map(|value| format!("appforge_session={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The path of API endpoint `name` (`call`, `export`) under this
    /// browser's key; `/api/{name}` without one.
    pub fn api(&self, name: &str) -> String {
        match &self.api_key {
            Some(key) => format!("/api/{key}/{name}"),
            None => format!("/api/{name}"),
        }
    }

    /// The headers a request from the dashboard's page carries.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            ("Host".into(), self.host.clone()),
            ("Origin".into(), format!("http://{}", self.host)),
            ("Content-Type".into(), "application/json".into()),
        ];
        let cookies = self.cookie_header(true);
        if !cookies.is_empty() {
            headers.push(("Cookie".into(), cookies));
        }
        if let Some(token) = &self.csrf_token {
            headers.push(("X-CSRF-Token".into(), token.clone()));
        }
        headers
    }

    /// POSTs `body` to `path` as the page would.
    pub fn post(&self, path: &str, body: &Value) -> Response {
        let headers = self.headers();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        send(
            self.addr,
            "POST",
            path,
            &headers,
            body.to_string().as_bytes(),
        )
    }

    /// One protocol request through `/api/{key}/call`.
    pub fn call(&self, request: Value) -> Response {
        self.post(&self.api("call"), &request)
    }

    /// An export request through `/api/{key}/export`.
    pub fn export(&self, request: Value) -> Response {
        self.post(&self.api("export"), &request)
    }
}

/// A signed-up user `name` and a browser signed in as them.
pub fn signed_in(daemon: &Daemon, addr: SocketAddr, name: &str) -> (User, Browser) {
    let user = daemon.user(name);
    user.signup().ok();
    let browser = Browser::signed_in(addr, &user);
    (user, browser)
}

/// The value a response's Set-Cookie gives `name`.
pub fn cookie_value(response: &Response, name: &str) -> Option<String> {
    response
        .headers_named("set-cookie")
        .into_iter()
        .filter_map(|c| c.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.to_string())
}
