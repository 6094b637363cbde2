//! The dashboard's CSRF tokens, one per signed-in browser, and the key in
//! its API's paths.
//!
//! Cookies are shared by every port of a host, and the apps on
//! 127.0.0.1:PORT are model-written code. The session cookie's path holds
//! the key, so the browser sends it to no app; should one get it all the
//! same, the cookie alone grants nothing: each request must also carry this
//! token, which the page keeps in its own origin's storage, out of the
//! apps' reach. Keys and tokens live in memory, tokens hashed like
//! sessions; after a daemon restart the browser signs in again.

use std::collections::HashMap;
use std::sync::Mutex;

use appforge_shared::protocol::SessionToken;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new key for the API's paths: 128 random bits, in hex. Made once at
/// daemon start; apps never see it (it reaches the page in a redirect's
/// fragment), so they can neither be sent nor set a cookie of its path.
pub fn api_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `path` starts with `prefix` (`/api/{key}/`), compared in time
/// that does not depend on where a guess goes wrong.
pub fn prefix_matches(path: &str, prefix: &str) -> bool {
    let (path, prefix) = (path.as_bytes(), prefix.as_bytes());
    path.get(..prefix.len())
        .is_some_and(|head| bool::from(head.ct_eq(prefix)))
}

/// Browsers signed in at once, at most; the oldest token goes first.
const MAX_TOKENS: usize = 10_000;

type Hash = [u8; 32];

fn hash(text: &str) -> Hash {
    Sha256::digest(text.as_bytes()).into()
}

/// The CSRF token of each session signed in through the dashboard.
#[derive(Default)]
pub struct CsrfTokens {
    /// Session token hash → (CSRF token hash, when issued).
    tokens: Mutex<HashMap<Hash, (Hash, u64)>>,
    issued: Mutex<u64>,
}

impl CsrfTokens {
    /// A new token for `session`, replacing any it had.
    pub fn issue(&self, session: &SessionToken) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let serial = {
            let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
            *issued += 1;
            *issued
        };
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= MAX_TOKENS {
            let oldest = tokens
                .iter()
                .min_by_key(|(_, (_, serial))| *serial)
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                tokens.remove(&oldest);
            }
        }
        tokens.insert(hash(&session.0), (hash(&token), serial));
        token
    }

    /// Whether `token` is the one issued for `session`.
    pub fn matches(&self, session: &SessionToken, token: &str) -> bool {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(&hash(&session.0))
            .is_some_and(|(expected, _)| constant_time_eq(expected, &hash(token)))
    }

    /// Whether `session` was signed in through the dashboard (and not since forgotten).
    pub fn knows(&self, session: &SessionToken) -> bool {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.contains_key(&hash(&session.0))
    }

    /// Forgets `session`'s token (sign-out).
    pub fn revoke(&self, session: &SessionToken) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.remove(&hash(&session.0));
    }
}

fn constant_time_eq(a: &Hash, b: &Hash) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_its_own_session_until_revoked() {
        let tokens = CsrfTokens::default();
        let ada = SessionToken("ada-session".into());
        let bob = SessionToken("bob-session".into());
        let t = tokens.issue(&ada);
        assert!(tokens.matches(&ada, &t));
        assert!(!tokens.matches(&bob, &t));
        assert!(!tokens.matches(&ada, "guess"));
        assert!(!tokens.matches(&ada, &ada.0));
        let again = tokens.issue(&ada);
        assert!(!tokens.matches(&ada, &t) && tokens.matches(&ada, &again));
        tokens.revoke(&ada);
        assert!(!tokens.matches(&ada, &again) && !tokens.knows(&ada));
    }

    #[test]
    fn api_keys_are_fresh_and_only_their_own_prefix_matches() {
        let key = api_key();
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(key, api_key());
        let prefix = format!("/api/{key}/");
        assert!(prefix_matches(&format!("{prefix}call"), &prefix));
        assert!(prefix_matches(&prefix, &prefix));
        for bad in [
            "/api/call".to_string(),
            "/api/".to_string(),
            format!("/api/{key}"),
            format!("/api/{}/call", &key[..31]),
            // The last digit changed (to one it is not).
            format!(
                "/api/{}{}/call",
                &key[..31],
                if key.ends_with('0') { '1' } else { '0' }
            ),
        ] {
            assert!(!prefix_matches(&bad, &prefix), "{bad}");
        }
    }
}
