//! The rules every dashboard request passes before any handler runs: its
//! Host must be one of the dashboard's own names (against DNS rebinding), a
//! request that changes anything must come from the dashboard's own origin,
//! and every response carries headers that keep the page out of frames and
//! its scripts to its own files.

use axum::http::{header, HeaderMap, HeaderValue, Method};

/// The Content-Security-Policy of every response: scripts and styles only
/// from the dashboard's own files, no inline code, no framing by others. The
/// app preview frames apps on loopback ports.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; \
    frame-src http://127.0.0.1:* http://localhost:*; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// The Host values the dashboard answers to: the names of loopback with its
/// port, and the address it listens on.
#[derive(Debug, Clone)]
pub struct Hosts(Vec<String>);

impl Hosts {
    /// The names of the dashboard listening on `addr`.
    pub fn for_addr(addr: std::net::SocketAddr) -> Hosts {
        let port = addr.port();
        let mut hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ];
        let own = addr.to_string();
        if !hosts.contains(&own) {
            hosts.push(own);
        }
        Hosts(hosts)
    }

    /// Whether `host` (a Host header) names the dashboard. Compared whole
    /// and without case, so `127.0.0.1:7070.evil.com` is not a match.
    pub fn allows(&self, host: &str) -> bool {
        self.0.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether `origin` (an Origin header) is the dashboard's own.
    pub fn allows_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.allows(host))
    }
}

/// Why a request is refused before it reaches a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The Host header is missing or not the dashboard's.
    ForeignHost,
    /// A request that may change something came from elsewhere.
    ForeignOrigin,
}

impl Refusal {
    /// The message for people.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::ForeignHost => {
                "this address is not the dashboard's; open it as http://127.0.0.1:PORT/ or \
                 http://localhost:PORT/"
            }
            Refusal::ForeignOrigin => {
                "the request did not come from the dashboard's own page; reload it and try again"
            }
        }
    }
}

/// Checks Host for every request, and Origin for every request that is not
/// a plain read.
pub fn check(hosts: &Hosts, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !host.is_some_and(|h| hosts.allows(h)) {
        return Err(Refusal::ForeignHost);
    }
    if method != Method::GET && method != Method::HEAD {
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        if !origin.is_some_and(|o| hosts.allows_origin(o)) {
            return Err(Refusal::ForeignOrigin);
        }
    }
    Ok(())
}

/// Adds the headers every response carries.
pub fn harden(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::CACHE_CONTROL, "no-store");
    set(
        headers,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        headers,
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
}

/// Every value of cookie `name` in the request, in the order sent. A
/// browser sends several when an app on another port of the same host set
/// one with the same name and another path that the request's matches
/// (cookies ignore ports), longest path first: so no one value may be
/// trusted because of its place.
pub fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_the_dashboards_own_hosts_pass() {
        let hosts = Hosts::for_addr("127.0.0.1:7070".parse().unwrap());
        for good in [
            "127.0.0.1:7070",
            "localhost:7070",
            "LOCALHOST:7070",
            "[::1]:7070",
        ] {
            assert!(hosts.allows(good), "{good}");
        }
        for bad in [
            "evil.com",
            "127.0.0.1:7070.evil.com",
            "localhost.evil.com:7070",
            "127.0.0.1:8100",
            "127.0.0.1",
            "",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
        assert!(hosts.allows_origin("http://localhost:7070"));
        assert!(!hosts.allows_origin("https://localhost:7070"));
        assert!(!hosts.allows_origin("http://127.0.0.1:8100"));
        assert!(!hosts.allows_origin("null"));
    }

    #[test]
    fn reads_pass_without_origin_and_writes_need_the_dashboards() {
        let hosts = Hosts::for_addr("127.0.0.1:7070".parse().unwrap());
        let read = headers(&[("host", "127.0.0.1:7070")]);
        assert_eq!(check(&hosts, &Method::GET, &read), Ok(()));
        assert_eq!(
            check(&hosts, &Method::POST, &read),
            Err(Refusal::ForeignOrigin)
        );
        let app_page = headers(&[
            ("host", "127.0.0.1:7070"),
            ("origin", "http://127.0.0.1:8100"),
        ]);
        assert_eq!(
            check(&hosts, &Method::POST, &app_page),
            Err(Refusal::ForeignOrigin)
        );
        let own = headers(&[
            ("host", "127.0.0.1:7070"),
            ("origin", "http://127.0.0.1:7070"),
        ]);
        assert_eq!(check(&hosts, &Method::POST, &own), Ok(()));
        let rebound = headers(&[("host", "attacker.example:7070")]);
        assert_eq!(
            check(&hosts, &Method::GET, &rebound),
            Err(Refusal::ForeignHost)
        );
        assert_eq!(
            check(&hosts, &Method::GET, &HeaderMap::new()),
            Err(Refusal::ForeignHost)
        );
    }

    #[test]
    fn cookies_are_found_by_exact_name_every_one_of_them() {
        let h = headers(&[(
            "cookie",
            "a=1; appforge_session=tossed; x_appforge_session=no; appforge_session=tok",
        )]);
        let found: Vec<&str> = cookies(&h, "appforge_session").collect();
        assert_eq!(found, ["tossed", "tok"]);
        assert_eq!(cookies(&h, "session").count(), 0);
    }
}
