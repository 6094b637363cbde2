//! Accounts and sessions: sign-up, sign-in, sign-out and resolving a session
//! token to its user.

mod links;
mod password;
mod sessions;
mod throttle;

pub use throttle::{connection_delay, FAILURES_PER_CONNECTION};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appforge_shared::protocol::{Credentials, SessionInfo, SessionToken, UserInfo};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::{days_from_now, now, Db, DbError};
use crate::params;

/// How long a session lasts.
const SESSION_DAYS: u32 = 30;

/// Why an account operation failed. Messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The email is not a plausible address.
    #[error("`{0}` is not a valid email address")]
    InvalidEmail(String),
    /// The password is too short or too long.
    #[error("passwords must be {min} to {max} bytes long", min = password::MIN_LEN, max = password::MAX_LEN)]
    PasswordLength,
    /// Someone already signed up with this email.
    #[error("an account with this email already exists; sign in with `appforge login`")]
    EmailTaken,
    /// Unknown email or wrong password (deliberately not told apart).
    #[error("wrong email or password")]
    WrongCredentials,
    /// The request carries no session token.
    #[error("you are not signed in; run `appforge login` (or `appforge signup`)")]
    NotSignedIn,
    /// The token is unknown or expired.
    #[error("your session has ended; run `appforge login` again")]
    SessionEnded,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Hashing failed.
    #[error("{0}")]
    Hashing(String),
    /// A dashboard sign-in link that is unknown, used or expired.
    #[error(transparent)]
    LinkRefused(#[from] links::LinkRefused),
}

/// A signed-in user, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's id, the `owner_id` of their projects.
    pub id: i64,
    /// The user's email.
    pub email: String,
}

/// The account service.
pub struct Accounts {
    db: Db,
    /// Failed sign-ins of every door, answered at a bounded rate.
    failures: Mutex<throttle::FailureRate>,
    /// Hashes running at once: each holds 19 MiB, so a storm of sign-ins
    /// waits here instead of growing the daemon by 19 MiB a request.
    hashing: Arc<tokio::sync::Semaphore>,
    sessions: sessions::SessionCache,
    links: links::Links,
}

/// Password hashes allowed at once: one a core, at most two, which keeps
/// the peak of a sign-in storm under 40 MiB; people sign in one at a time.
fn hashing_permits() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

impl Accounts {
    /// An account service over `db`.
    pub fn new(db: Db) -> Self {
        Accounts {
            // Only a store no other daemon writes may be mirrored.
            sessions: sessions::SessionCache::new(db.sqlite_path().is_some()),
            db,
            failures: Mutex::new(throttle::FailureRate::default()),
            hashing: Arc::new(tokio::sync::Semaphore::new(hashing_permits())),
            links: links::Links::default(),
        }
    }

    /// Creates an account and signs it in.
    pub async fn signup(&self, creds: Credentials) -> Result<SessionInfo, AuthError> {
        let email = normalize_email(&creds.email)?;
        check_password_length(&creds.password.0)?;
        let password = creds.password.0;
        let hash = self
            .hashing(move || password::hash(&password))
            .await?
            .map_err(|e| AuthError::Hashing(format!("could not hash the password: {e}")))?;
        let user_id = self
            .db
            .call(move |c| {
                c.query_opt(
                    "INSERT INTO users (email, password_hash) VALUES ($1, $2) \
                     ON CONFLICT (email) DO NOTHING RETURNING id",
                    params![email, hash],
                    |r| r.get(0),
                )
            })
            .await?
            .ok_or(AuthError::EmailTaken)?;
        tracing::info!(user_id, "account created");
        self.new_session(user_id).await
    }

    /// Signs in with an email and password.
    pub async fn login(&self, creds: Credentials) -> Result<SessionInfo, AuthError> {
        let email = normalize_email(&creds.email)?;
        check_password_length(&creds.password.0)?;
        let lookup = email.clone();
        let stored: Option<(i64, String)> = self
            .db
            .call(move |c| {
                c.query_opt(
                    "SELECT id, password_hash FROM users WHERE email = $1",
                    params![lookup],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await?;
        let password = creds.password.0;
        let user_id = self
            .hashing(move || match stored {
                Some((id, hash)) => password::verify(&password, &hash).then_some(id),
                None => {
                    password::verify_against_dummy(&password);
                    None
                }
            })
            .await?;
        let Some(user_id) = user_id else {
            // Only failures wait, so the owner's right password is never
            // held up by someone else's guesses; an unknown email waits
            // the same as a wrong password.
            let wait = self.lock().failed(Instant::now());
            tracing::info!(wait_ms = wait.as_millis() as u64, "failed sign-in");
            tokio::time::sleep(wait).await;
            return Err(AuthError::WrongCredentials);
        };
        tracing::info!(user_id, "signed in");
        self.new_session(user_id).await
    }

    /// Ends the session the token names.
    pub async fn logout(&self, token: Option<&SessionToken>) -> Result<(), AuthError> {
        let user = self.authenticate(token).await?;
        let token_hash = hash_token(token.ok_or(AuthError::NotSignedIn)?);
        let deleted = token_hash.clone();
        self.db
            .call(move |c| {
                c.execute(
                    "DELETE FROM sessions WHERE token_hash = $1",
                    params![deleted],
                )?;
                Ok(())
            })
            .await?;
        self.sessions.ended(&token_hash);
        tracing::info!(user_id = user.id, "signed out");
        Ok(())
    }

    /// The user a session token belongs to.
    pub async fn authenticate(&self, token: Option<&SessionToken>) -> Result<User, AuthError> {
        let token_hash = hash_token(token.ok_or(AuthError::NotSignedIn)?);
        let at = now();
        if let Some(user) = self.sessions.get(&token_hash, &at) {
            return Ok(user);
        }
        let lookup = self.sessions.begin();
        let hash = token_hash.clone();
        let (user, expires_at) = self
            .db
            .call(move |c| {
                c.query_opt(
                    "SELECT u.id, u.email, s.expires_at FROM sessions s \
                     JOIN users u ON u.id = s.user_id \
                     WHERE s.token_hash = $1 AND s.expires_at > $2",
                    params![hash, at],
                    |r| {
                        let user = User {
                            id: r.get(0)?,
                            email: r.get(1)?,
                        };
                        Ok((user, r.get::<String>(2)?))
                    },
                )
            })
            .await?
            .ok_or(AuthError::SessionEnded)?;
        self.sessions
            .keep(lookup, token_hash, user.clone(), expires_at);
        Ok(user)
    }

    /// The signed-in user's account details.
    pub async fn whoami(&self, token: Option<&SessionToken>) -> Result<UserInfo, AuthError> {
        let user = self.authenticate(token).await?;
        let created_at: String = self
            .db
            .call(move |c| {
                c.query_one(
                    "SELECT created_at FROM users WHERE id = $1",
                    params![user.id],
                    |r| r.get(0),
                )
            })
            .await?;
        Ok(UserInfo {
            user_id: user.id,
            email: user.email,
            created_at,
        })
    }

    /// A one-time dashboard sign-in link for the session's user: the
    /// token, and how long it stays valid.
    pub async fn dashboard_link(
        &self,
        token: Option<&SessionToken>,
    ) -> Result<(String, Duration), AuthError> {
        let user = self.authenticate(token).await?;
        tracing::info!(user_id = user.id, "dashboard sign-in link issued");
        Ok((self.links.issue(user.id, Instant::now()), links::LINK_TTL))
    }

    /// Uses up a dashboard sign-in link: a new session for its user.
    pub async fn redeem_link(&self, link: &str) -> Result<SessionInfo, AuthError> {
        let user_id = self.links.redeem(link, Instant::now())?;
        tracing::info!(user_id, "signed in to the dashboard by link");
        self.new_session(user_id).await
    }

    async fn new_session(&self, user_id: i64) -> Result<SessionInfo, AuthError> {
        let token = new_token();
        let token_hash = hash_token(&token);
        let (email, expires_at) = self
            .db
            .transaction(move |tx| {
                // Expired sessions are swept here rather than by a timer, so an
                // idle daemon does no work.
                tx.execute(
                    "DELETE FROM sessions WHERE expires_at <= $1",
                    params![now()],
                )?;
                tx.execute(
                    "INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ($1, $2, $3)",
                    params![user_id, &token_hash, days_from_now(SESSION_DAYS)],
                )?;
                tx.query_one(
                    "SELECT u.email, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.token_hash = $1",
                    params![token_hash],
                    |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
                )
            })
            .await?;
        Ok(SessionInfo {
            token,
            user_id,
            email,
            expires_at,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, throttle::FailureRate> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs CPU-heavy work on the blocking pool.
impl Accounts {
    /// Runs a password hash off the runtime, waiting for a hashing permit.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        // The permit goes with the hash into its thread: a client that
        // leaves cancels the wait, but not a hash already running.
        let permit = Arc::clone(&self.hashing)
            .acquire_owned()
            .await
            .map_err(|e| AuthError::Hashing(format!("hashing is closed: {e}")))?;
        tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|e| AuthError::Hashing(format!("hashing task failed: {e}")))
    }
}

/// A new session token: 256 random bits, hex, with a prefix that secret
/// scanners can recognise.
fn new_token() -> SessionToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SessionToken(format!("afs_{}", hex::encode(bytes)))
}

/// Only this hash of a token is stored, so a copy of the database signs no one in.
fn hash_token(token: &SessionToken) -> String {
    hex::encode(Sha256::digest(token.0.as_bytes()))
}

fn check_password_length(password: &str) -> Result<(), AuthError> {
    if (password::MIN_LEN..=password::MAX_LEN).contains(&password.len()) {
        Ok(())
    } else {
        Err(AuthError::PasswordLength)
    }
}

/// Trims and lower-cases an email after checking its shape.
pub fn normalize_email(raw: &str) -> Result<String, AuthError> {
    let email = raw.trim().to_lowercase();
    let shown = || {
        let mut s: String = raw.chars().take(80).collect();
        s.retain(|c| !c.is_control());
        AuthError::InvalidEmail(s)
    };
    if email.len() > 254 {
        return Err(shown());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(shown)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(shown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_normalized() {
        assert_eq!(
            normalize_email("  Ada@Example.ORG ").unwrap(),
            "ada@example.org"
        );
        assert_eq!(normalize_email("a.b+tag@x.co").unwrap(), "a.b+tag@x.co");
        for bad in [
            "", "plain", "@x.co", "a@", "a@x", "a@@x.co", "a b@x.co", "a@x..co", ".a@x.co",
            "a@-x.co", "a\n@x.co", "a@x.co\0",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalize_email(&format!("{}@x.co", "a".repeat(65))).is_err());
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.0.len(), 4 + 64);
        assert_ne!(hash_token(&a), a.0);
        assert_eq!(hash_token(&a), hash_token(&a));
    }
}
