//! People's passwords: argon2id with the crate's recommended parameters, always computed on the
//! blocking pool so that a burst of logins cannot stall the async workers.

use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};

use crate::users::Password;

pub async fn hash(password: &Password) -> anyhow::Result<String> {
    hash_secret(password.expose()).await
}

/// argon2id of any secret (people's passwords go through `hash`, which takes a checked
/// `Password`; devices' MQTT passwords have their own rules).
pub async fn hash_secret(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let hash: argon2::PasswordHash = Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
        Ok(hash.to_string())
    })
    .await?
}

/// Whether `password` matches `hash`. With no stored hash (unknown account) a dummy hash is
/// checked anyway, so the answer takes as long either way and does not reveal which e-mails exist.
pub async fn verify(password: &str, hash: Option<String>) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        ok && known
    })
    .await
    .unwrap_or(false)
}

/// argon2id of a random string nobody knows, with the default parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c3RlYWRkdW1teXNhbHQ$8kqUq1c0Y6+z9U8gVb1f4mS0cP9dC7m3kS7hQe5mFqI";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let pw = Password::parse("correct horse battery").unwrap();
        let h = hash(&pw).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(h.clone())).await);
        assert!(!verify("wrong password!!", Some(h)).await);
        assert!(!verify("anything at all", None).await);
    }
}
