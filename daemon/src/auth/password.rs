//! Password hashing with Argon2id at OWASP's parameters, always off the async
//! runtime because each hash takes tens of milliseconds and 19 MiB.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// Shortest accepted password, in bytes.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in bytes; longer ones would only cost hashing time.
pub const MAX_LEN: usize = 1024;

fn hasher() -> Argon2<'static> {
    // OWASP: m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
}

/// Whether `password` matches the PHC string `stored`.
pub fn verify(password: &str, stored: &str) -> bool {
    hasher()
        .verify_password(password.as_bytes(), stored)
        .is_ok()
}

/// A hash made with the same parameters as real ones. A constant, not made
/// on first use, so that even the first unknown email costs exactly one
/// verification.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$V+JYYWbpJlJQ/GOKctdJ3A$ZwuCLrWhv/s11Qnsf76/6I5vXD2zG08x8aV/Iv5hJ74";

/// Runs a verification against a fixed hash so that signing in as an unknown
/// email costs as much as a wrong password.
pub fn verify_against_dummy(password: &str) {
    let _ = verify(password, DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_only_its_password() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsE", &h));
        assert!(!verify("correct horse", "not a phc string"));
    }

    #[test]
    fn the_dummy_hash_has_the_real_parameters() {
        assert!(DUMMY_HASH.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("appforge-dummy-password", DUMMY_HASH));
    }

    #[test]
    fn hashes_are_salted() {
        assert_ne!(hash("same").unwrap(), hash("same").unwrap());
    }
}
