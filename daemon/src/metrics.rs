//! Counters of what the daemon does, in the Prometheus text format (0.0.4):
//! served by `appforge metrics` over the socket and, with `--metrics-addr`,
//! over HTTP (see `web::metrics`).
//!
//! The counters are `prometheus-client`'s atomic ones, kept here: the rest
//! of the daemon bumps them through the few methods of [`Metrics`] and never
//! sees a Prometheus type.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GenerationLabels {
    provider: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// The daemon's counters. Cheap to bump from any task: each is an atomic.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    generations: Family<GenerationLabels, Counter>,
    tokens: Family<ProviderLabels, Counter>,
    app_starts: Counter,
    app_restarts: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let requests = Family::<RequestLabels, Counter>::default();
        let generations = Family::<GenerationLabels, Counter>::default();
        let tokens = Family::<ProviderLabels, Counter>::default();
        let app_starts = Counter::default();
        let app_restarts = Counter::default();
        // Names without `_total` and help without its full stop: the
        // encoder adds both.
        let mut registry = Registry::default();
        registry.register(
            "appforge_requests",
            "Requests served, by kind and outcome",
            requests.clone(),
        );
        registry.register(
            "appforge_generations",
            "Generations (generate and improve), by provider and outcome",
            generations.clone(),
        );
        registry.register(
            "appforge_tokens_used",
            "Tokens used by generations, by provider",
            tokens.clone(),
        );
        registry.register(
            "appforge_app_starts",
            "App processes started",
            app_starts.clone(),
        );
        registry.register(
            "appforge_app_restarts",
            "Apps restarted by the supervisor after an exit or failed health checks",
            app_restarts.clone(),
        );
        Metrics {
            registry,
            requests,
            generations,
            tokens,
            app_starts,
            app_restarts,
        }
    }
}

impl Metrics {
    /// A request of `kind` ended with `outcome` (`ok` or an error code).
    pub fn request(&self, kind: &str, outcome: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A generation by `provider` ended with `outcome`, using `tokens`.
    pub fn generation(&self, provider: &str, outcome: &str, tokens: u64) {
        self.generations
            .get_or_create(&GenerationLabels {
                provider: provider.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.tokens
            .get_or_create(&ProviderLabels {
                provider: provider.to_string(),
            })
            .inc_by(tokens);
    }

    /// An app process was started (first start or restart).
    pub fn app_started(&self) {
        self.app_starts.inc();
    }

    /// An app was restarted by the supervisor.
    pub fn app_restarted(&self) {
        self.app_restarts.inc();
    }

    /// Everything, as Prometheus text; `apps` counts the supervised apps by
    /// state, `uptime` is the daemon's.
    pub fn render(&self, apps: &BTreeMap<&'static str, u64>, uptime: Duration) -> String {
        // The gauges are read at each scrape, so they live in a registry of
        // this scrape alone: a state no app is in any more is not left
        // behind, and two scrapes at once cannot mix their readings.
        let states = Family::<StateLabels, Gauge>::default();
        for (&state, &n) in apps {
            states
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let up = Gauge::<i64>::default();
        up.set(i64::try_from(uptime.as_secs()).unwrap_or(i64::MAX));
        let mut scrape = Registry::default();
        scrape.register("appforge_apps", "Supervised apps, by state", states);
        scrape.register(
            "appforge_uptime_seconds",
            "Seconds since the daemon started",
            up,
        );
        let mut out = String::new();
        // Writing into a String fails only if an encoder itself reports an
        // error, which these metrics never do.
        let encoded = prometheus_text::encode(&mut out, &self.registry)
            .and_then(|()| prometheus_text::encode(&mut out, &scrape));
        if let Err(e) = encoded {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        out
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
        m.generation("groq", "error", 30);
        m.generation("weird\"name\\", "ok", 1);
        m.app_started();
        m.app_restarted();
        let apps = BTreeMap::from([("running", 2), ("failed", 1)]);
        let text = m.render(&apps, Duration::from_secs(7));
        let lines: Vec<&str> = text.lines().collect();
        for line in [
            "# HELP appforge_requests_total Requests served, by kind and outcome.",
            "# TYPE appforge_requests_total counter",
            "appforge_requests_total{kind=\"status\",outcome=\"ok\"} 2",
            "appforge_requests_total{kind=\"run\",outcome=\"not-found\"} 1",
            "# TYPE appforge_generations_total counter",
            "appforge_generations_total{provider=\"groq\",outcome=\"ok\"} 1",
            "appforge_generations_total{provider=\"groq\",outcome=\"error\"} 1",
            "# TYPE appforge_tokens_used_total counter",
            "appforge_tokens_used_total{provider=\"groq\"} 150",
            "appforge_tokens_used_total{provider=\"weird\\\"name\\\\\"} 1",
            "# TYPE appforge_app_starts_total counter",
            "appforge_app_starts_total 1",
            "# TYPE appforge_app_restarts_total counter",
            "appforge_app_restarts_total 1",
            "# TYPE appforge_apps gauge",
            "appforge_apps{state=\"running\"} 2",
            "appforge_apps{state=\"failed\"} 1",
            "# TYPE appforge_uptime_seconds gauge",
            "appforge_uptime_seconds 7",
        ] {
            assert!(lines.contains(&line), "no line {line:?} in:\n{text}");
        }
        assert!(
            !text.contains("# EOF"),
            "the 0.0.4 format has no EOF:\n{text}"
        );
    }

    #[test]
    fn a_state_no_app_is_in_any_more_is_not_shown() {
        let m = Metrics::default();
        let before = m.render(&BTreeMap::from([("failed", 1)]), Duration::ZERO);
        assert!(
            before.contains("appforge_apps{state=\"failed\"} 1"),
            "{before}"
        );
        let after = m.render(&BTreeMap::from([("running", 1)]), Duration::ZERO);
        assert!(!after.contains("state=\"failed\""), "{after}");
        assert!(
            after.contains("appforge_apps{state=\"running\"} 1"),
            "{after}"
        );
    }

    #[test]
    fn counters_count_from_many_threads() {
        let m = std::sync::Arc::new(Metrics::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = std::sync::Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        m.request("ping", "ok");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = m.render(&BTreeMap::new(), Duration::ZERO);
        assert!(
            text.contains("appforge_requests_total{kind=\"ping\",outcome=\"ok\"} 4000"),
            "{text}"
        );
    }
}
