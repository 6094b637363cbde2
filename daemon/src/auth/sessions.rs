//! Sessions already resolved, kept in memory so that a request does not
//! query the store for its session each time.
//!
//! Only a store this daemon alone writes (SQLite, locked for the daemon's
//! life) may be mirrored: there every session ends through this daemon
//! (`logout`) or by its expiry time, both seen here. On a shared store
//! another host's daemon can end a session, so nothing is kept.

use std::collections::HashMap;
use std::sync::Mutex;

use super::User;

/// Sessions kept at most; past it the cache starts again empty. Only
/// tokens that resolved are kept, so made-up tokens cannot fill it.
const MAX_KEPT: usize = 1024;

/// Resolved sessions by token hash.
#[derive(Debug)]
pub struct SessionCache {
    enabled: bool,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    kept: HashMap<String, Kept>,
    /// Bumped by every session ended: a lookup that began before an end
    /// may have read the ended session, and must not keep it.
    ended: u64,
}

#[derive(Debug)]
struct Kept {
    user: User,
    /// As stored: text that sorts as time does.
    expires_at: String,
}

/// Where a lookup began, to be handed back to [`SessionCache::keep`].
#[derive(Debug, Clone, Copy)]
pub struct Lookup(u64);

impl SessionCache {
    /// A cache that keeps sessions only when `enabled` (the store is this
    /// daemon's alone).
    pub fn new(enabled: bool) -> Self {
        SessionCache {
            enabled,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The user of the session `token_hash` names, if it is kept and has
    /// not expired at `now`.
    pub fn get(&self, token_hash: &str, now: &str) -> Option<User> {
        let inner = self.lock();
        let kept = inner.kept.get(token_hash)?;
        (kept.expires_at.as_str() > now).then(|| kept.user.clone())
    }

    /// Marks the start of a store lookup.
    pub fn begin(&self) -> Lookup {
        Lookup(self.lock().ended)
    }

    /// Keeps what a lookup begun at `lookup` found, unless a session ended
    /// meanwhile (it may have been this one).
    pub fn keep(&self, lookup: Lookup, token_hash: String, user: User, expires_at: String) {
        if !self.enabled {
            return;
        }
        let mut inner = self.lock();
        if inner.ended != lookup.0 {
            return;
        }
        if inner.kept.len() >= MAX_KEPT {
            inner.kept.clear();
        }
        inner.kept.insert(token_hash, Kept { user, expires_at });
    }

    /// Forgets the session `token_hash` names; called once it is ended in
    /// the store.
    pub fn ended(&self, token_hash: &str) {
        let mut inner = self.lock();
        inner.ended += 1;
        inner.kept.remove(token_hash);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> User {
        User {
            id: 1,
            email: "ada@example.org".into(),
        }
    }

    const NOW: &str = "2026-11-26 12:00:00";

    #[test]
    fn a_kept_session_is_served_until_it_expires() {
        let cache = SessionCache::new(true);
        let lookup = cache.begin();
        cache.keep(lookup, "h".into(), ada(), "2026-11-26 12:00:01".into());
        assert_eq!(cache.get("h", NOW), Some(ada()));
        assert_eq!(cache.get("h", "2026-11-26 12:00:01"), None);
        assert_eq!(cache.get("other", NOW), None);
    }

    #[test]
    fn an_ended_session_is_forgotten_and_a_lookup_racing_the_end_keeps_nothing() {
        let cache = SessionCache::new(true);
        let before = cache.begin();
        cache.keep(before, "h".into(), ada(), "2027-01-01 00:00:00".into());
        // A lookup reads the session from the store; it is ended before
        // the lookup comes back.
        let racing = cache.begin();
        cache.ended("h");
        assert_eq!(cache.get("h", NOW), None);
        cache.keep(racing, "h".into(), ada(), "2027-01-01 00:00:00".into());
        assert_eq!(cache.get("h", NOW), None);
        // A lookup begun after the end is kept again.
        let after = cache.begin();
        cache.keep(after, "h2".into(), ada(), "2027-01-01 00:00:00".into());
        assert_eq!(cache.get("h2", NOW), Some(ada()));
    }

    #[test]
    fn a_shared_store_keeps_nothing_and_the_cache_stays_bounded() {
        let shared = SessionCache::new(false);
        shared.keep(
            shared.begin(),
            "h".into(),
            ada(),
            "2027-01-01 00:00:00".into(),
        );
        assert_eq!(shared.get("h", NOW), None);
        let cache = SessionCache::new(true);
        for i in 0..MAX_KEPT + 10 {
            cache.keep(
                cache.begin(),
                format!("h{i}"),
                ada(),
                "2027-01-01 00:00:00".into(),
            );
        }
        assert!(cache.lock().kept.len() <= MAX_KEPT);
    }
}
