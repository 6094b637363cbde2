//! The saved session: the token from `login`, kept in the user's config
//! folder with mode 0600.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use appforge_shared::protocol::{SessionInfo, SessionToken};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

#[derive(Serialize, Deserialize)]
struct Saved {
    token: String,
    email: String,
    user_id: i64,
}

fn path() -> PathBuf {
    appforge_shared::paths::config_dir().join("session.json")
}

/// The saved token, if any.
pub fn load() -> Option<SessionToken> {
    let text = fs::read_to_string(path()).ok()?;
    let saved: Saved = serde_json::from_str(&text).ok()?;
    Some(SessionToken(saved.token))
}

/// Saves a new session, replacing any other; readable by the user only.
pub fn save(session: &SessionInfo) -> Result<(), ClientError> {
    let path = path();
    let dir = path.parent().expect("session path has a folder");
    let local = |e: std::io::Error| {
        ClientError::Local(format!(
            "could not save the session in {}: {e}",
            dir.display()
        ))
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(local)?;
    let saved = Saved {
        token: session.token.0.clone(),
        email: session.email.clone(),
        user_id: session.user_id,
    };
    let body = serde_json::to_vec(&saved).map_err(|e| ClientError::Local(e.to_string()))?;
    // Written beside the target and renamed, so a crash never leaves half a file.
    let tmp = dir.join(format!(".session.{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(local)?;
    file.write_all(&body).map_err(local)?;
    file.sync_all().map_err(local)?;
    fs::rename(&tmp, &path).map_err(local)
}

/// Forgets the saved session.
pub fn forget() -> Result<(), ClientError> {
    match fs::remove_file(path()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ClientError::Local(format!(
            "could not remove the session: {e}"
        ))),
    }
}
