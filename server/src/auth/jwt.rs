//! Access tokens: HS256 JWTs that live at most 15 minutes.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;
use crate::ids::UserId;

const ISSUER: &str = "stead";
const AUDIENCE: &str = "stead-api";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    /// The session (refresh-token family) it was issued in: revoking the session ends it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
}

pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl_secs: u64,
    /// Seals the stored TOTP secrets, with a key derived from the same server secret.
    pub sealer: super::totp::Sealer,
}

impl Keys {
    pub fn new(secret: &[u8], access_ttl_secs: u64) -> anyhow::Result<Keys> {
        // Only HS256 is accepted: `alg: none` and algorithm confusion are refused by construction.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Ok(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl_secs,
            sealer: super::totp::Sealer::new(secret)?,
        })
    }

    pub fn issue(&self, user: UserId, session: Uuid) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.0,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + self.access_ttl_secs as i64,
            sid: Some(session),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The user the token was issued to, and its session, when it is genuine and unexpired.
    pub fn verify(&self, token: &str) -> Result<(UserId, Option<Uuid>), Error> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok((UserId(data.claims.sub), data.claims.sid)),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(
                Error::unauthenticated("token_expired", "the access token has expired: refresh it"),
            ),
            Err(_) => Err(Error::unauthenticated(
                "invalid_token",
                "the access token is not valid",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_foreign_ones_do_not() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", 900).unwrap();
        let user = UserId::new();
        let session = Uuid::new_v4();
        let token = keys.issue(user, session).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), (user, Some(session)));

        let other = Keys::new(b"another-key-another-key-another-k", 900).unwrap();
        assert!(other.verify(&token).is_err());
        assert!(keys.verify("not.a.jwt").is_err());
    }
}
