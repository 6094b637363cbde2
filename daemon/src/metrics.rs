//! Counters of what the daemon does, in the Prometheus text format: served
//! by `appforge metrics` over the socket and, with `--metrics-addr`, over
//! HTTP on loopback.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The daemon's counters. Cheap to bump from any task.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String), u64>>,
    generations: Mutex<BTreeMap<(String, String), u64>>,
    tokens: Mutex<BTreeMap<String, u64>>,
    app_starts: Mutex<u64>,
    app_restarts: Mutex<u64>,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, by: u64) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    *map.entry(key).or_insert(0) += by;
}

impl Metrics {
    /// A request of `kind` ended with `outcome` (`ok` or an error code).
    pub fn request(&self, kind: &str, outcome: &str) {
        bump(&self.requests, (kind.to_string(), outcome.to_string()), 1);
    }

    /// A generation by `provider` ended with `outcome`, using `tokens`.
    pub fn generation(&self, provider: &str, outcome: &str, tokens: u64) {
        bump(
            &self.generations,
            (provider.to_string(), outcome.to_string()),
            1,
        );
        bump(&self.tokens, provider.to_string(), tokens);
    }

    /// An app process was started (first start or restart).
    pub fn app_started(&self) {
        *self.app_starts.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    /// An app was restarted by the supervisor.
    pub fn app_restarted(&self) {
        *self.app_restarts.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    /// Everything, as Prometheus text; `apps` counts the supervised apps by
    /// state, `uptime` is the daemon's.
    pub fn render(&self, apps: &BTreeMap<&'static str, u64>, uptime: Duration) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "appforge_requests_total",
            "counter",
            "Requests served, by kind and outcome.",
        );
        for ((kind, outcome), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "appforge_requests_total{{kind=\"{}\",outcome=\"{}\"}} {n}",
                label(kind),
                label(outcome)
            );
        }
        family(
            &mut out,
            "appforge_generations_total",
            "counter",
            "Generations (generate and improve), by provider and outcome.",
        );
        for ((provider, outcome), n) in self
            .generations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "appforge_generations_total{{provider=\"{}\",outcome=\"{}\"}} {n}",
                label(provider),
                label(outcome)
            );
        }
        family(
            &mut out,
            "appforge_tokens_used_total",
            "counter",
            "Tokens used by generations, by provider.",
        );
        for (provider, n) in self.tokens.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "appforge_tokens_used_total{{provider=\"{}\"}} {n}",
                label(provider)
            );
        }
        let starts = *self.app_starts.lock().unwrap_or_else(|p| p.into_inner());
        family(
            &mut out,
            "appforge_app_starts_total",
            "counter",
            "App processes started.",
        );
        let _ = writeln!(out, "appforge_app_starts_total {starts}");
        let restarts = *self.app_restarts.lock().unwrap_or_else(|p| p.into_inner());
        family(
            &mut out,
            "appforge_app_restarts_total",
            "counter",
            "Apps restarted by the supervisor after an exit or failed health checks.",
        );
        let _ = writeln!(out, "appforge_app_restarts_total {restarts}");
        family(
            &mut out,
            "appforge_apps",
            "gauge",
            "Supervised apps, by state.",
        );
        for (state, n) in apps {
            let _ = writeln!(out, "appforge_apps{{state=\"{state}\"}} {n}");
        }
        family(
            &mut out,
            "appforge_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
        );
        let _ = writeln!(out, "appforge_uptime_seconds {}", uptime.as_secs());
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped, as the format demands.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `addr` until the runtime ends. `render` builds
/// the text for each scrape.
pub async fn serve(
    listener: TcpListener,
    render: impl Fn() -> String + Send + Sync + Clone + 'static,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut head = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            // A scraper sends a small request; anything slow or huge is dropped.
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let line = String::from_utf8_lossy(&head);
            let wanted = line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?");
            let (status, body) = match wanted {
                true => ("200 OK", render()),
                false => (
                    "404 Not Found",
                    "only GET /metrics is served here\n".to_string(),
                ),
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_help_type_and_escaped_labels() {
        let m = Metrics::default();
        m.request("status", "ok");
        m.request("status", "ok");
        m.request("run", "not-found");
        m.generation("groq", "ok", 120);
        m.generation("weird\"name", "ok", 1);
        m.app_started();
        m.app_restarted();
        let apps = BTreeMap::from([("running", 2), ("failed", 1)]);
        let text = m.render(&apps, Duration::from_secs(7));
        assert!(text.contains("# TYPE appforge_requests_total counter"));
        assert!(text.contains("appforge_requests_total{kind=\"status\",outcome=\"ok\"} 2"));
        assert!(text.contains("appforge_requests_total{kind=\"run\",outcome=\"not-found\"} 1"));
        assert!(text.contains("appforge_tokens_used_total{provider=\"groq\"} 120"));
        assert!(text.contains("provider=\"weird\\\"name\""));
        assert!(text.contains("appforge_apps{state=\"running\"} 2"));
        assert!(text.contains("appforge_app_restarts_total 1"));
        assert!(text.contains("appforge_uptime_seconds 7"));
    }
}
