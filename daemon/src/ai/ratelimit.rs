//! A client-side limit on requests and tokens per minute, so appforge waits
//! its turn instead of collecting 429s.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Requests and tokens sent in the last minute. A limit of 0 is no limit.
#[derive(Debug)]
pub struct RateLimiter {
    requests_per_minute: u32,
    tokens_per_minute: u64,
    sent: Mutex<VecDeque<(Instant, u64)>>,
}

impl RateLimiter {
    /// A limiter with these limits.
    pub fn new(requests_per_minute: u32, tokens_per_minute: u64) -> Self {
        RateLimiter {
            requests_per_minute,
            tokens_per_minute,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until a request of `tokens` fits, then counts it.
    pub async fn acquire(&self, tokens: u64) {
        loop {
            match self.try_acquire(tokens, Instant::now()) {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Counts the request if it fits now, else says how long to wait.
    pub fn try_acquire(&self, tokens: u64, now: Instant) -> Result<(), Duration> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        while sent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= WINDOW)
        {
            sent.pop_front();
        }
        let requests_ok =
            self.requests_per_minute == 0 || sent.len() < self.requests_per_minute as usize;
        let used: u64 = sent.iter().map(|(_, t)| t).sum();
        // A request bigger than the whole budget still goes once the window is
        // empty; waiting longer would never help.
        let tokens_ok = self.tokens_per_minute == 0
            || used + tokens <= self.tokens_per_minute
            || sent.is_empty();
        if requests_ok && tokens_ok {
            sent.push_back((now, tokens));
            return Ok(());
        }
        let oldest = sent.front().map(|(at, _)| *at).unwrap_or(now);
        Err((oldest + WINDOW)
            .saturating_duration_since(now)
            .max(Duration::from_millis(10)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_per_minute_are_limited() {
        let l = RateLimiter::new(2, 0);
        let t = Instant::now();
        assert!(l.try_acquire(1, t).is_ok());
        assert!(l.try_acquire(1, t).is_ok());
        assert_eq!(l.try_acquire(1, t), Err(WINDOW));
        assert!(l.try_acquire(1, t + WINDOW).is_ok());
    }

    #[test]
    fn tokens_per_minute_are_limited_but_a_big_request_goes_alone() {
        let l = RateLimiter::new(0, 100);
        let t = Instant::now();
        assert!(l.try_acquire(500, t).is_ok(), "alone, it must go");
        assert!(l.try_acquire(1, t + Duration::from_secs(1)).is_err());
        assert!(l.try_acquire(60, t + WINDOW).is_ok());
        assert!(l.try_acquire(40, t + WINDOW).is_ok());
        assert!(l.try_acquire(1, t + WINDOW).is_err());
    }

    #[test]
    fn zero_means_unlimited() {
        let l = RateLimiter::new(0, 0);
        let t = Instant::now();
        for _ in 0..1000 {
            assert!(l.try_acquire(1_000_000, t).is_ok());
        }
    }
}
