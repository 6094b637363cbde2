//! Slows down guessing: after a few failed sign-ins for one email, further
//! attempts are refused for a while that doubles with each failure.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Failures allowed before attempts are refused.
pub const FREE_FAILURES: u32 = 5;
/// The first lock-out; each further failure doubles it.
const FIRST_LOCKOUT: Duration = Duration::from_secs(30);
/// The longest lock-out.
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Bounds memory when someone sprays many emails.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed sign-ins per email.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: HashMap<String, Failures>,
}

/// How long an email with `count` failures is locked out after its last one.
pub fn lockout(count: u32) -> Duration {
    if count < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (count - FREE_FAILURES).min(16);
    (FIRST_LOCKOUT * 2u32.pow(doublings)).min(MAX_LOCKOUT)
}

impl Throttle {
    /// How long the caller must still wait before trying `email`, if at all.
    pub fn wait_for(&self, email: &str, now: Instant) -> Option<Duration> {
        let f = self.failures.get(email)?;
        let until = f.last + lockout(f.count);
        (until > now).then(|| until - now)
    }

    /// Records a failed attempt.
    pub fn fail(&mut self, email: &str, now: Instant) {
        if self.failures.len() >= MAX_TRACKED {
            self.failures
                .retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        }
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(email) {
            // Still full of recent failures: drop the oldest to make room.
            if let Some(oldest) = self
                .failures
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(k, _)| k.clone())
            {
                self.failures.remove(&oldest);
            }
        }
        let entry = self.failures.entry(email.to_string()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
    }

    /// Forgets failures after a successful sign-in.
    pub fn succeed(&mut self, email: &str) {
        self.failures.remove(email);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_grows_and_is_capped() {
        assert_eq!(lockout(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(lockout(FREE_FAILURES), FIRST_LOCKOUT);
        assert_eq!(lockout(FREE_FAILURES + 1), FIRST_LOCKOUT * 2);
        assert_eq!(lockout(u32::MAX), MAX_LOCKOUT);
    }

    #[test]
    fn an_email_is_locked_after_its_free_failures_and_freed_by_success() {
        let mut t = Throttle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            t.fail("a@b.co", now);
        }
        assert_eq!(t.wait_for("a@b.co", now), None);
        t.fail("a@b.co", now);
        assert_eq!(t.wait_for("a@b.co", now), Some(FIRST_LOCKOUT));
        assert_eq!(t.wait_for("other@b.co", now), None);
        assert_eq!(t.wait_for("a@b.co", now + FIRST_LOCKOUT), None);
        t.succeed("a@b.co");
        assert_eq!(t.wait_for("a@b.co", now), None);
    }

    #[test]
    fn tracked_emails_are_bounded() {
        let mut t = Throttle::default();
        let now = Instant::now();
        for i in 0..MAX_TRACKED + 10 {
            t.fail(&format!("u{i}@b.co"), now);
        }
        assert!(t.failures.len() <= MAX_TRACKED);
    }
}
