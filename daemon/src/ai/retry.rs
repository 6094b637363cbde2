//! When to retry a provider call and how long to wait first.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// The longest back-off between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// A `retry-after` longer than this is not waited for: the caller is told instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Whether an HTTP status is worth retrying: rate limits, time-outs,
/// capacity and server errors; never 400, 401, 404, 413 or 422.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 498) || status >= 500
}

/// The wait a server asked for, from `retry-after-ms` or `retry-after`
/// (seconds), when it is reasonable.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let wait = number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))?;
    (wait <= MAX_RETRY_AFTER).then_some(wait)
}

/// Exponential back-off from `base`, capped, less up to a quarter of jitter
/// (`jitter` in 0..1) so that clients retrying together spread out.
pub fn backoff(attempt: u32, base: Duration, jitter: f64) -> Duration {
    let full = base
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(MAX_BACKOFF);
    full.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 498, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(0, base, 0.0), base);
        assert_eq!(backoff(1, base, 0.0), base * 2);
        assert_eq!(backoff(10, base, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX, base, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(0, base, 1.0), base.mul_f64(0.75));
    }
}
