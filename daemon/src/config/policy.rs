//! When to restart a crashed app, and when to stop trying.
//!
//! Pure bookkeeping: every method takes the current `Instant` from the caller
//! and never reads a clock, so the whole policy is unit-testable.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Tunables for restarting an app that exits unexpectedly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay before the second consecutive restart; it doubles for each further one.
    pub base: Duration,
    /// Longest delay between two restarts.
    pub cap: Duration,
    /// Sliding window in which restarts are counted for giving up.
    pub window: Duration,
    /// Restarts allowed within `window`; the failure after that gives up.
    pub max_restarts: u32,
    /// Time healthy without a failure after which the backoff starts over.
    pub healthy_reset: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(30),
            window: Duration::from_secs(60),
            max_restarts: 5,
            healthy_reset: Duration::from_secs(60),
        }
    }
}

/// What the supervisor should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start the app again once `after` has passed.
    Restart {
        /// How long to wait before starting it.
        after: Duration,
    },
    /// Crash loop: leave the app stopped (state `failed`).
    GiveUp,
}

/// The delay before the restart for failure number `n` of a streak, counted from 0.
///
/// `n == 0` (the first failure) restarts at once; failure `n >= 1` waits
/// `base × 2^(n-1)`, capped at `cap`. Saturates instead of overflowing for huge `n`.
pub fn delay_for(policy: &RestartPolicy, n: u32) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    // 2^(n-1) only fits a u32 for n <= 32; anything larger is past any sane cap anyway.
    let factor = 1u32.checked_shl(n - 1);
    factor
        .and_then(|f| policy.base.checked_mul(f))
        .map_or(policy.cap, |d| d.min(policy.cap))
}

/// Per-app restart bookkeeping: the backoff streak and the recent restarts.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    policy: RestartPolicy,
    /// Consecutive failures not separated by a long enough healthy period.
    streak: u32,
    /// Start of the current healthy period; cleared by a failure so that
    /// "healthy for `healthy_reset`" means continuously healthy.
    healthy_since: Option<Instant>,
    /// When each recent restart was decided; pruned to `window`, bounded by `max_restarts`.
    recent: VecDeque<Instant>,
    /// All restarts decided since `new`/`reset`, for `ps`.
    total: u32,
}

impl RestartTracker {
    /// A tracker with no history.
    pub fn new(policy: RestartPolicy) -> Self {
        RestartTracker {
            policy,
            streak: 0,
            healthy_since: None,
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// The app became healthy at `now` (it answers HTTP).
    pub fn healthy(&mut self, now: Instant) {
        // Repeated health reports must not move the start of the healthy period forward.
        if self.healthy_since.is_none() {
            self.healthy_since = Some(now);
        }
    }

    /// The app exited unexpectedly or failed its health checks at `now`.
    pub fn failed(&mut self, now: Instant) -> Decision {
        if let Some(since) = self.healthy_since.take() {
            if now.saturating_duration_since(since) >= self.policy.healthy_reset {
                self.streak = 0;
            }
        }

        let window = self.policy.window;
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        let in_window = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        if in_window >= self.policy.max_restarts {
            return Decision::GiveUp;
        }

        let after = delay_for(&self.policy, self.streak);
        self.streak = self.streak.saturating_add(1);
        self.recent.push_back(now);
        self.total = self.total.saturating_add(1);
        Decision::Restart { after }
    }

    /// Restarts counted so far (for `ps`), since the app was last started by the user.
    pub fn restarts(&self) -> u32 {
        self.total
    }

    /// Forget everything (the user started or stopped the app).
    #[cfg(test)]
    pub fn reset(&mut self) {
        *self = RestartTracker::new(self.policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn after(d: Decision) -> Duration {
        match d {
            Decision::Restart { after } => after,
            Decision::GiveUp => panic!("unexpected GiveUp"),
        }
    }

    #[test]
    fn delay_sequence_doubles_from_base() {
        let p = RestartPolicy::default();
        let got: Vec<Duration> = (0..6).map(|n| delay_for(&p, n)).collect();
        assert_eq!(
            got,
            vec![ms(0), ms(100), ms(200), ms(400), ms(800), ms(1600)]
        );
    }

    #[test]
    fn delay_is_capped_and_overflow_safe() {
        let p = RestartPolicy::default();
        assert_eq!(delay_for(&p, 9), ms(25_600));
        assert_eq!(delay_for(&p, 10), Duration::from_secs(30));
        for n in [11, 31, 32, 33, 64, 1000, u32::MAX] {
            assert_eq!(delay_for(&p, n), Duration::from_secs(30), "n = {n}");
        }
        let huge = RestartPolicy {
            base: Duration::MAX,
            cap: Duration::MAX,
            ..RestartPolicy::default()
        };
        assert_eq!(delay_for(&huge, 5), Duration::MAX);
    }

    #[test]
    fn tracker_gives_the_delay_sequence() {
        // A large window so giving up does not interfere.
        let p = RestartPolicy {
            max_restarts: 100,
            ..RestartPolicy::default()
        };
        let mut t = RestartTracker::new(p);
        let t0 = Instant::now();
        let got: Vec<Duration> = (0..5)
            .map(|i| after(t.failed(t0 + Duration::from_secs(20 * i))))
            .collect();
        assert_eq!(got, vec![ms(0), ms(100), ms(200), ms(400), ms(800)]);
        assert_eq!(t.restarts(), 5);
    }

    #[test]
    fn tracker_delay_reaches_cap() {
        let p = RestartPolicy {
            max_restarts: u32::MAX,
            ..RestartPolicy::default()
        };
        let mut t = RestartTracker::new(p);
        let t0 = Instant::now();
        let mut last = Duration::ZERO;
        for i in 0..40 {
            last = after(t.failed(t0 + Duration::from_secs(i)));
            assert!(last <= p.cap);
        }
        assert_eq!(last, p.cap);
    }

    #[test]
    fn long_healthy_period_resets_the_streak() {
        let p = RestartPolicy::default();
        let mut t = RestartTracker::new(p);
        let t0 = Instant::now();
        assert_eq!(after(t.failed(t0)), ms(0));
        assert_eq!(after(t.failed(t0 + ms(10))), ms(100));
        assert_eq!(after(t.failed(t0 + ms(200))), ms(200));
        // Healthy from 1 s on, several reports, then a failure 60 s after the first.
        t.healthy(t0 + Duration::from_secs(1));
        t.healthy(t0 + Duration::from_secs(30));
        t.healthy(t0 + Duration::from_secs(60));
        assert_eq!(after(t.failed(t0 + Duration::from_secs(61))), ms(0));
        assert_eq!(after(t.failed(t0 + Duration::from_secs(62))), ms(100));
        assert_eq!(t.restarts(), 5);
    }

    #[test]
    fn short_healthy_period_keeps_the_streak() {
        let p = RestartPolicy::default();
        let mut t = RestartTracker::new(p);
        let t0 = Instant::now();
        assert_eq!(after(t.failed(t0)), ms(0));
        t.healthy(t0 + ms(50));
        assert_eq!(after(t.failed(t0 + Duration::from_secs(10))), ms(100));
        t.healthy(t0 + Duration::from_secs(11));
        assert_eq!(after(t.failed(t0 + Duration::from_secs(70))), ms(200));
    }

    #[test]
    fn healthy_period_must_be_continuous() {
        // A healthy report before a failure does not count towards the next period.
        let p = RestartPolicy {
            max_restarts: 100,
            ..RestartPolicy::default()
        };
        let mut t = RestartTracker::new(p);
        let t0 = Instant::now();
        t.healthy(t0);
        assert_eq!(after(t.failed(t0 + ms(1))), ms(0));
        t.healthy(t0 + Duration::from_secs(59));
        // 61 s after the first healthy report, but only 2 s after the current period began.
        assert_eq!(after(t.failed(t0 + Duration::from_secs(61))), ms(100));
    }

    #[test]
    fn gives_up_after_five_restarts_within_the_window() {
        let mut t = RestartTracker::new(RestartPolicy::default());
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(matches!(
                t.failed(t0 + Duration::from_secs(i * 10)),
                Decision::Restart { .. }
            ));
        }
        assert_eq!(t.failed(t0 + Duration::from_secs(59)), Decision::GiveUp);
        assert_eq!(t.restarts(), 5);
    }

    #[test]
    fn restarts_spread_over_more_than_the_window_never_give_up() {
        let mut t = RestartTracker::new(RestartPolicy::default());
        let t0 = Instant::now();
        // One failure every 13 s: at most 5 fall within any 60 s window.
        for i in 0..50 {
            let d = t.failed(t0 + Duration::from_secs(i * 13));
            assert!(matches!(d, Decision::Restart { .. }), "failure {i}: {d:?}");
        }
        assert_eq!(t.restarts(), 50);
    }

    #[test]
    fn window_slides() {
        let mut t = RestartTracker::new(RestartPolicy::default());
        let t0 = Instant::now();
        for i in 0..5 {
            after(t.failed(t0 + Duration::from_secs(i)));
        }
        assert_eq!(t.failed(t0 + Duration::from_secs(59)), Decision::GiveUp);
        // 60 s after the first restart it has left the window: one more is allowed.
        assert!(matches!(
            t.failed(t0 + Duration::from_secs(60)),
            Decision::Restart { .. }
        ));
        assert_eq!(t.failed(t0 + Duration::from_secs(60)), Decision::GiveUp);
    }

    #[test]
    fn reset_forgets_everything() {
        let mut t = RestartTracker::new(RestartPolicy::default());
        let t0 = Instant::now();
        for i in 0..5 {
            after(t.failed(t0 + ms(i)));
        }
        assert_eq!(t.failed(t0 + ms(10)), Decision::GiveUp);
        t.reset();
        assert_eq!(t.restarts(), 0);
        assert_eq!(after(t.failed(t0 + ms(11))), ms(0));
        assert_eq!(t.restarts(), 1);
    }

    #[test]
    fn zero_max_restarts_always_gives_up() {
        let p = RestartPolicy {
            max_restarts: 0,
            ..RestartPolicy::default()
        };
        let mut t = RestartTracker::new(p);
        assert_eq!(t.failed(Instant::now()), Decision::GiveUp);
        assert_eq!(t.restarts(), 0);
    }
}
