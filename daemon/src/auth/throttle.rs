//! Slows down guessing without locking anyone out: a failed sign-in waits
//! before it is answered, by a global rate of failures shared by every door
//! (plus, on the socket, a delay growing with the failures of one
//! connection). Nothing is kept per account, so failures for an email
//! never refuse its owner's right password, which is answered at once.

use std::time::{Duration, Instant};

/// Failed sign-ins answered at once before the rate applies.
const BURST: u32 = 10;
/// Past the burst, one failed sign-in is answered per this much time.
const INTERVAL: Duration = Duration::from_secs(1);
/// The longest a failure waits for the global rate: a queue of failures
/// holds connection slots, so it is bounded (guesses in flight are bounded
/// by the slots, each waiting this long).
const MAX_GLOBAL_WAIT: Duration = Duration::from_secs(15);

/// Failed sign-ins one socket connection may make; it is closed after them.
pub const FAILURES_PER_CONNECTION: u32 = 3;
/// The delay of a connection's first failure; each further one doubles it.
const FIRST_CONNECTION_DELAY: Duration = Duration::from_millis(500);

/// The global rate of failed sign-ins: a token bucket kept as the time at
/// which the next failure may be answered.
#[derive(Debug)]
pub struct FailureRate {
    next: Instant,
}

impl Default for FailureRate {
    fn default() -> Self {
        FailureRate {
            next: Instant::now(),
        }
    }
}

impl FailureRate {
    /// Records a failure at `now`; how long its answer must wait.
    pub fn failed(&mut self, now: Instant) -> Duration {
        // An idle bucket refills up to its burst, no more.
        let full = now.checked_sub(INTERVAL * BURST).unwrap_or(now);
        let at = self.next.max(full);
        let wait = at.saturating_duration_since(now);
        if wait >= MAX_GLOBAL_WAIT {
            // The queue is full: this one waits the longest and takes no
            // place in it, so the queue stays bounded.
            return MAX_GLOBAL_WAIT;
        }
        self.next = at + INTERVAL;
        wait
    }
}

/// How long the `failures`-th failed sign-in on one connection waits.
pub fn connection_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(FAILURES_PER_CONNECTION);
    FIRST_CONNECTION_DELAY * 2u32.pow(doublings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_failures_wait_their_turn_up_to_a_bound() {
        let mut rate = FailureRate::default();
        let now = Instant::now() + INTERVAL * BURST * 2;
        // The burst, and the one whose turn is now.
        for _ in 0..=BURST {
            assert_eq!(rate.failed(now), Duration::ZERO);
        }
        assert_eq!(rate.failed(now), INTERVAL);
        assert_eq!(rate.failed(now), INTERVAL * 2);
        for _ in 0..100 {
            assert!(rate.failed(now) <= MAX_GLOBAL_WAIT);
        }
        // The queue does not grow past the bound.
        assert!(rate.next <= now + MAX_GLOBAL_WAIT + INTERVAL);
        // Time refills it.
        let later = now + MAX_GLOBAL_WAIT + INTERVAL * (BURST + 1);
        assert_eq!(rate.failed(later), Duration::ZERO);
    }

    #[test]
    fn a_connection_waits_longer_with_each_failure() {
        assert_eq!(connection_delay(1), FIRST_CONNECTION_DELAY);
        assert_eq!(connection_delay(2), FIRST_CONNECTION_DELAY * 2);
        assert_eq!(connection_delay(3), FIRST_CONNECTION_DELAY * 4);
        assert!(connection_delay(u32::MAX) <= FIRST_CONNECTION_DELAY * 8);
    }
}
