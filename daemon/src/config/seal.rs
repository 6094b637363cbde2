//! Sealing of the apps' secrets: ChaCha20-Poly1305 under one key that is
//! never in the store. The key is a systemd credential (`app-secrets-key`)
//! or a file beside the SQLite store (`secrets.key`, mode 0600, made on
//! first use). Every daemon sharing a store must have the same key; each
//! sealed value names the key it was sealed with (a short digest of it), so
//! a daemon with another key says so instead of failing to open.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use sha2::Digest;

/// The name of the systemd credential that holds the key.
pub const CREDENTIAL: &str = "app-secrets-key";

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secrets.key";

/// Bytes of a key.
const KEY_LEN: usize = 32;

/// Where the key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A systemd credential: read, never made.
    Credential(PathBuf),
    /// A file of the daemon's, made on first use.
    File(PathBuf),
}

impl KeySource {
    fn path(&self) -> &Path {
        match self {
            KeySource::Credential(p) | KeySource::File(p) => p,
        }
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Credential(p) => write!(f, "the credential {}", p.display()),
            KeySource::File(p) => write!(f, "the key file {}", p.display()),
        }
    }
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No key exists yet, so nothing sealed can be opened.
    #[error(
        "this daemon has no key for the apps' secrets ({0} does not exist); give it the key \
         file of the daemon that set them (see docs/teams.md)"
    )]
    NoKey(KeySource),
    /// The key could not be read or made.
    #[error("could not use {source_of} for the apps' secrets: {error}")]
    Io {
        /// Which key.
        source_of: KeySource,
        /// What failed.
        error: std::io::Error,
    },
    /// The key is not 64 hexadecimal digits.
    #[error(
        "{0} does not hold a key for the apps' secrets: it must be 64 hexadecimal digits \
         (32 random bytes)"
    )]
    Malformed(KeySource),
    /// Others may read the key file.
    #[error("{0} may be read by other users; make it private (chmod 600)")]
    Exposed(KeySource),
    /// The value was sealed under another key.
    #[error(
        "the secret was sealed with another key (key {sealed}; this daemon's {source_of} is key \
         {ours}); every daemon sharing the store needs the same key (see docs/teams.md)"
    )]
    WrongKey {
        /// The id of the key it was sealed with.
        sealed: String,
        /// This daemon's key's id.
        ours: String,
        /// Where this daemon's key is.
        source_of: KeySource,
    },
    /// The sealed text is damaged or was not made for this place.
    #[error("the sealed secret is damaged or does not belong here; set it again")]
    Damaged,
}

/// One key, ready to seal and open.
pub struct SealKey {
    key: LessSafeKey,
    id: String,
    source: KeySource,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey").field("id", &self.id).finish()
    }
}

/// A value sealed under a key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key it was sealed with.
    pub key_id: String,
    /// The nonce and the ciphertext with its tag, in hexadecimal.
    pub text: String,
}

impl Sealed {
    /// Bytes of the value sealed in it.
    pub fn plain_len(&self) -> usize {
        (self.text.len() / 2).saturating_sub(NONCE_LEN + TAG_LEN)
    }
}

/// Bytes of the tag after the ciphertext.
const TAG_LEN: usize = 16;

impl SealKey {
    fn from_bytes(bytes: &[u8; KEY_LEN], source: KeySource) -> SealKey {
        let digest = sha2::Sha256::new()
            .chain_update(b"appforge app secrets key\0")
            .chain_update(bytes)
            .finalize();
        SealKey {
            key: LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("a 32-byte key"),
            ),
            id: hex::encode(&digest[..8]),
            source,
        }
    }

    /// The key's id: a digest that names it without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain`, bound to `context` (where it is stored): a sealed
    /// value moved elsewhere in the store does not open.
    pub fn seal(&self, context: &str, plain: &str) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system's random numbers");
        let mut in_out = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut in_out,
            )
            .expect("sealing a value this short");
        let mut all = nonce.to_vec();
        all.extend_from_slice(&in_out);
        Sealed {
            key_id: self.id.clone(),
            text: hex::encode(all),
        }
    }

    /// Opens what [`SealKey::seal`] sealed with the same `context`.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<String, SealError> {
        if sealed.key_id != self.id {
            return Err(SealError::WrongKey {
                sealed: sealed.key_id.clone(),
                ours: self.id.clone(),
                source_of: self.source.clone(),
            });
        }
        let bytes = hex::decode(&sealed.text).map_err(|_| SealError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Damaged)?;
        let mut in_out = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Damaged)
    }
}

/// The daemon's key, read when first needed and made when first needed to
/// seal (a key file only: a credential is the operator's to make).
#[derive(Debug)]
pub struct Keyring {
    source: KeySource,
    key: Mutex<Option<Arc<SealKey>>>,
}

impl Keyring {
    /// The key at `source`, not read yet.
    pub fn new(source: KeySource) -> Keyring {
        Keyring {
            source,
            key: Mutex::new(None),
        }
    }

    /// Where the key is.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The key, to open secrets with.
    pub fn opening(&self) -> Result<Arc<SealKey>, SealError> {
        self.get(false)
    }

    /// The key, to seal secrets with: made now if it does not exist yet.
    pub fn sealing(&self) -> Result<Arc<SealKey>, SealError> {
        self.get(true)
    }

    fn get(&self, make: bool) -> Result<Arc<SealKey>, SealError> {
        let mut held = self.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = &*held {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(match read(&self.source)? {
            Some(key) => key,
            None if make && matches!(self.source, KeySource::File(_)) => make_file(&self.source)?,
            None => return Err(SealError::NoKey(self.source.clone())),
        });
        *held = Some(Arc::clone(&key));
        Ok(key)
    }
}

/// Reads the key at `source`; None when it does not exist.
fn read(source: &KeySource) -> Result<Option<SealKey>, SealError> {
    let io = |error| SealError::Io {
        source_of: source.clone(),
        error,
    };
    let path = source.path();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if matches!(source, KeySource::File(_)) && meta.permissions().mode() & 0o077 != 0 {
        return Err(SealError::Exposed(source.clone()));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let mut bytes = [0u8; KEY_LEN];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|_| SealError::Malformed(source.clone()))?;
    Ok(Some(SealKey::from_bytes(&bytes, source.clone())))
}

/// Makes a new random key file at `source`, mode 0600. Two daemons making
/// it at once: the second reads the first's.
fn make_file(source: &KeySource) -> Result<SealKey, SealError> {
    let io = |error| SealError::Io {
        source_of: source.clone(),
        error,
    };
    let mut bytes = [0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random numbers");
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(source.path());
    match made {
        Ok(mut file) => {
            file.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            tracing::info!(key = %source, "made the key that seals the apps' secrets");
            Ok(SealKey::from_bytes(&bytes, source.clone()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(source)?.ok_or(SealError::NoKey(source.clone()))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(dir: &Path) -> Keyring {
        Keyring::new(KeySource::File(dir.join(KEY_FILE)))
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_context() {
        let dir = tempfile::tempdir().unwrap();
        let key = keyring(dir.path()).sealing().unwrap();
        let sealed = key.seal("1/API_KEY", "sk-very-secret");
        assert!(!sealed.text.contains("sk-very-secret"));
        assert_eq!(sealed.plain_len(), "sk-very-secret".len());
        assert_eq!(key.open("1/API_KEY", &sealed).unwrap(), "sk-very-secret");
        assert!(matches!(
            key.open("2/API_KEY", &sealed),
            Err(SealError::Damaged)
        ));
        let again = key.seal("1/API_KEY", "sk-very-secret");
        assert_ne!(again.text, sealed.text, "each seal has its own nonce");

        let other = tempfile::tempdir().unwrap();
        let theirs = keyring(other.path()).sealing().unwrap();
        let err = theirs.open("1/API_KEY", &sealed).unwrap_err();
        assert!(matches!(err, SealError::WrongKey { .. }), "{err}");
        assert!(err.to_string().contains("another key"), "{err}");
    }

    #[test]
    fn the_key_file_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let ring = keyring(dir.path());
        assert!(matches!(ring.opening(), Err(SealError::NoKey(_))));
        let made = ring.sealing().unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let read = keyring(dir.path()).opening().unwrap();
        assert_eq!(made.id(), read.id());
    }

    #[test]
    fn a_bad_or_exposed_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "not hex").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            keyring(dir.path()).opening(),
            Err(SealError::Malformed(_))
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            keyring(dir.path()).sealing(),
            Err(SealError::Exposed(_))
        ));
    }
}
