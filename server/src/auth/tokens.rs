//! Opaque bearer secrets (device access tokens, refresh tokens): 256 random bits, base64url, and
//! stored only as their SHA-256. A hash, not a password hash: these secrets have full entropy, so
//! one SHA-256 is as strong as argon2 and costs nothing on a reconnect storm.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

/// 32 random bytes from a cryptographic generator, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // ThreadRng is a CSPRNG (ChaCha12) seeded and periodically reseeded from the OS.
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token: SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The states of a one-time link (an invitation, a password reset), in the order they are
/// checked, each with its own answer.
pub struct OneTime {
    pub used: bool,
    pub revoked: bool,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl OneTime {
    pub fn check(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        if self.used {
            return Err(link_used());
        }
        if self.revoked {
            return Err(Error::gone(
                "link_revoked",
                "this link was withdrawn: ask for a new one",
            ));
        }
        if self.expires_at <= chrono::Utc::now() {
            return Err(Error::gone(
                "link_expired",
                "this link has expired: ask for a new one",
            ));
        }
        Ok(())
    }
}

/// A one-time link that was already used (also what a use that lost a race to another gets).
pub fn link_used() -> crate::error::Error {
    crate::error::Error::conflict(
        "link_used",
        "this link was already used: it works once (sign in, or ask for a new one)",
    )
}

/// A link token nobody issued.
pub fn invalid_link() -> crate::error::Error {
    crate::error::Error::invalid(
        "invalid_link",
        "token",
        "this link is not valid: copy the whole link from the e-mail, or ask for a new one",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hash_stably() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(hash_token(&a).len(), 64);
    }
}
