//! One-time sign-in links for the dashboard: the only way a browser gets a
//! session. Only a client of the socket (which the daemon's owner alone can
//! open) can ask for one, so the dashboard gives no one more than the
//! socket does. A link is random (256 bits), kept hashed in memory, valid
//! for [`LINK_TTL`] and for one use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// How long a link stays valid.
pub const LINK_TTL: Duration = Duration::from_secs(60);
/// Links waiting at once, at most: a client asking in a loop cannot grow
/// the daemon; the oldest goes first.
const MAX_LINKS: usize = 256;

type Hash = [u8; 32];

fn hash(text: &str) -> Hash {
    Sha256::digest(text.as_bytes()).into()
}

/// Why a link signs no one in. One answer for all: whoever holds a bad
/// link learns nothing about good ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this sign-in link is unknown, used or expired; run `appforge dashboard` in a terminal for a new one")]
pub struct LinkRefused;

/// The links handed out and not yet used.
#[derive(Debug, Default)]
pub struct Links {
    /// Link hash → (user id, expiry).
    waiting: Mutex<HashMap<Hash, (i64, Instant)>>,
}

impl Links {
    /// A new link token for `user_id`, valid from `now` for [`LINK_TTL`].
    pub fn issue(&self, user_id: i64, now: Instant) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!("afl_{}", hex::encode(bytes));
        let mut waiting = self.lock();
        waiting.retain(|_, (_, expires)| *expires > now);
        if waiting.len() >= MAX_LINKS {
            let oldest = waiting
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                waiting.remove(&oldest);
            }
        }
        waiting.insert(hash(&token), (user_id, now + LINK_TTL));
        token
    }

    /// The user `token` signs in, once: the link is gone afterwards,
    /// whether it was still valid or not.
    pub fn redeem(&self, token: &str, now: Instant) -> Result<i64, LinkRefused> {
        let mut waiting = self.lock();
        match waiting.remove(&hash(token)) {
            Some((user_id, expires)) if expires > now => Ok(user_id),
            _ => Err(LinkRefused),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, (i64, Instant)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_signs_in_once_within_its_minute() {
        let links = Links::default();
        let t0 = Instant::now();
        let link = links.issue(7, t0);
        assert!(link.len() >= 4 + 32, "at least 128 bits: {link}");
        assert_eq!(links.redeem(&link, t0 + Duration::from_secs(59)), Ok(7));
        assert_eq!(links.redeem(&link, t0), Err(LinkRefused), "used twice");
        assert_eq!(links.redeem("afl_guess", t0), Err(LinkRefused));
        assert_ne!(links.issue(7, t0), links.issue(7, t0));
    }

    #[test]
    fn an_expired_link_is_refused_and_forgotten() {
        let links = Links::default();
        let t0 = Instant::now();
        let link = links.issue(7, t0);
        assert_eq!(links.redeem(&link, t0 + LINK_TTL), Err(LinkRefused));
        let _ = links.issue(8, t0 + LINK_TTL + Duration::from_secs(1));
        assert_eq!(links.lock().len(), 1, "expired links are swept");
    }

    #[test]
    fn links_stay_bounded_and_the_newest_survive() {
        let links = Links::default();
        let t0 = Instant::now();
        let first = links.issue(1, t0);
        let mut last = String::new();
        for i in 0..MAX_LINKS + 10 {
            last = links.issue(2, t0 + Duration::from_millis(i as u64));
        }
        assert!(links.lock().len() <= MAX_LINKS);
        assert_eq!(links.redeem(&first, t0), Err(LinkRefused));
        assert_eq!(links.redeem(&last, t0), Ok(2));
    }
}
