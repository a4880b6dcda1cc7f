//! Room passwords: stored only as salted Argon2id hashes, verified in constant time.

use argon2::password_hash::{PasswordHash as ParsedHash, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::error::ValidationError;

/// Longest password accepted, in bytes (the contract's limit).
pub const PASSWORD_MAX_BYTES: usize = 128;

/// A PHC-format Argon2id hash. Never holds the password itself.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Hashes a new room password. Empty passwords are refused: "no password" is `None`.
    pub fn hash(password: &str) -> Result<Self, ValidationError> {
        if password.is_empty() || password.len() > PASSWORD_MAX_BYTES {
            return Err(ValidationError::new(
                "password",
                format!("password must be 1-{PASSWORD_MAX_BYTES} bytes"),
            ));
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| ValidationError::new("password", e.to_string()))?;
        Ok(Self(hash.to_string()))
    }

    /// Wraps a hash read back from storage.
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `candidate` matches. Argon2's verifier compares digests in constant time;
    /// a corrupt stored hash verifies nothing rather than failing open.
    pub fn verify(&self, candidate: &str) -> bool {
        if candidate.len() > PASSWORD_MAX_BYTES {
            return false;
        }
        match ParsedHash::new(&self.0) {
            Ok(parsed) => Argon2::default()
                .verify_password(candidate.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_the_right_password_only() {
        let hash = PasswordHash::hash("s3cret").unwrap();
        assert!(!hash.as_str().contains("s3cret"));
        assert!(hash.verify("s3cret"));
        assert!(!hash.verify("s3cret "));
        assert!(!hash.verify(""));
    }

    #[test]
    fn hashes_are_salted() {
        let a = PasswordHash::hash("same").unwrap();
        let b = PasswordHash::hash("same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn out_of_range_passwords_are_refused() {
        assert_eq!(PasswordHash::hash("").unwrap_err().field, "password");
        assert!(PasswordHash::hash(&"x".repeat(129)).is_err());
        assert!(PasswordHash::hash(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn corrupt_stored_hash_fails_closed() {
        assert!(!PasswordHash::from_stored("garbage".into()).verify("anything"));
    }
}
