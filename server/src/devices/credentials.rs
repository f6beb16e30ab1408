//! Device credentials: an access token (256-bit random, stored as SHA-256) or MQTT basic
//! credentials (user name, argon2id-hashed password, optionally a required client id), with an
//! optional expiry. A secret is shown once, when it is issued.

use chrono::{DateTime, Utc};
use stead_api_types::{CredentialsType, DeviceCredentials, MqttBasicCredentials, SetCredentials};

use super::repo::DeviceIdentity;
use crate::auth::tokens;
use crate::error::{Error, Result};

/// argon2id parameters of MQTT passwords: m = 7 MiB, t = 5, p = 1.
///
/// Device passwords may be chosen by people (8 characters at least), so a stolen database must
/// not make them cheap to guess: these are one of OWASP's minimum argon2id configurations, as
/// costly to brute-force as the 19 MiB / t = 2 that people's passwords use. Among the equivalent
/// configurations it is the one with the least memory (7 MiB per verification) and measured the
/// fastest here (about 20 ms on one core of this 2-core machine, against about 25 ms for
/// 19 MiB / t = 2): a reconnect storm costs verifications, not weaker hashes. What bounds a
/// storm's CPU is elsewhere: verifications run on the blocking pool, at most one per core at a
/// time (`Sessions::authenticate_mqtt_basic`), and a verified login is cached until the
/// credentials change, so a fleet reconnecting after a network cut verifies nothing.
/// Generated passwords carry 144 random bits, beyond any brute force whatever the cost.
fn device_argon2() -> Result<argon2::Argon2<'static>> {
    let params = argon2::Params::new(7 * 1024, 5, 1, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ))
}

/// argon2id of an MQTT password, on the blocking pool.
async fn hash_mqtt_password(pw: &str) -> Result<String> {
    use argon2::PasswordHasher as _;
    let pw = pw.to_owned();
    tokio::task::spawn_blocking(move || {
        let hash = device_argon2()?
            .hash_password(pw.as_bytes())
            .map_err(|e| anyhow::anyhow!("hashing an MQTT password: {e}"))?;
        Ok(hash.to_string())
    })
    .await
    .map_err(|e| anyhow::anyhow!("hashing an MQTT password: {e}"))?
}

/// Whether `password` matches the stored argon2id `hash`, computed on the blocking pool (the
/// parameters are read from the hash, so hashes made with other parameters still verify).
pub async fn verify_mqtt_password(password: Vec<u8>, hash: String) -> bool {
    use argon2::PasswordVerifier as _;
    tokio::task::spawn_blocking(move || {
        device_argon2().is_ok_and(|a| a.verify_password(&password, hash.as_str()).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// What an MQTT CONNECT presents. `Debug` never shows the password.
pub struct MqttLogin {
    pub username: String,
    pub password: Vec<u8>,
    pub client_id: String,
}

impl std::fmt::Debug for MqttLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttLogin")
            .field("client_id", &self.client_id)
            .field("password", &format_args!("{} bytes", self.password.len()))
            .finish_non_exhaustive()
    }
}

impl MqttLogin {
    /// The key under which a verified login is cached: a SHA-256 of user name, password and
    /// client id (length-prefixed, so no two logins share it), never the plaintext.
    pub fn cache_key(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        for part in [
            self.username.as_bytes(),
            &self.password,
            self.client_id.as_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        format!("mqtt:{}", hex::encode(h.finalize()))
    }
}

/// Why a device is refused at CONNECT or on the HTTP device API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Neither an access token nor an MQTT user name that a device has.
    Unknown,
    WrongClientId,
    WrongPassword,
    /// Quarantined, with the reason an operator gave.
    Disabled(String),
    Expired,
}

impl Why {
    /// A short, fixed reason: a metrics label and the start of the timeline entry.
    pub fn reason(&self) -> &'static str {
        match self {
            Why::Unknown => "unknown or revoked access token",
            Why::WrongClientId => "client id does not match",
            Why::WrongPassword => "wrong MQTT password",
            Why::Disabled(_) => "device disabled",
            Why::Expired => "credentials expired",
        }
    }

    /// The operator's words, for a disabled device.
    pub fn note(&self) -> Option<&str> {
        match self {
            Why::Disabled(reason) => Some(reason),
            _ => None,
        }
    }
}

/// A refusal, with the device when the credentials named one (for its timeline).
#[derive(Debug)]
pub struct Denied {
    pub device: Option<Box<DeviceIdentity>>,
    pub why: Why,
}

/// A device that proved who it is may still be barred: disabled, or its credentials expired.
pub fn admissible(identity: DeviceIdentity) -> Result<DeviceIdentity, Denied> {
    let why = match (&identity.disabled_reason, identity.credentials_expire_at) {
        (Some(reason), _) => Why::Disabled(reason.clone()),
        (None, Some(at)) if at <= chrono::Utc::now().timestamp_millis() => Why::Expired,
        _ => return Ok(identity),
    };
    Err(Denied {
        device: Some(Box::new(identity)),
        why,
    })
}

/// Credentials ready to store, and what to show the caller once.
pub struct Issued {
    pub credentials_type: &'static str,
    pub token_hash: String,
    pub mqtt_client_id: Option<String>,
    pub mqtt_username: Option<String>,
    pub mqtt_password_hash: Option<String>,
    pub expire_at: Option<i64>,
    pub shown: DeviceCredentials,
}

fn parse_mqtt_field(value: &str, field: &'static str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_credentials",
            field,
            format!("`{field}` has 1 to 128 printable characters"),
        ));
    }
    Ok(value.to_owned())
}

fn parse_expiry(at: Option<DateTime<Utc>>) -> Result<Option<i64>> {
    match at {
        Some(at) if at <= Utc::now() => Err(Error::invalid(
            "invalid_credentials",
            "expires_at",
            "`expires_at` must be in the future",
        )),
        other => Ok(other.map(|t| t.timestamp_millis())),
    }
}

fn parse_token(t: String) -> Result<String> {
    if t.len() < 16 || t.len() > 256 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "invalid_credentials",
            "token",
            "an access token has 16 to 256 printable ASCII characters (omit it to have one generated)",
        ));
    }
    if t == "provision" {
        return Err(Error::invalid(
            "invalid_credentials",
            "token",
            "\"provision\" is reserved for provisioning",
        ));
    }
    Ok(t)
}

fn parse_username(username: &str) -> Result<String> {
    let username = parse_mqtt_field(username, "username")?;
    if username == "provision" {
        return Err(Error::invalid(
            "invalid_credentials",
            "username",
            "\"provision\" is reserved for provisioning",
        ));
    }
    Ok(username)
}

fn parse_password(pw: String) -> Result<String> {
    if pw.chars().count() < 8 || pw.chars().count() > 256 {
        return Err(Error::invalid(
            "invalid_credentials",
            "password",
            "an MQTT password has 8 to 256 characters (omit it to have one generated)",
        ));
    }
    Ok(pw)
}

/// Checks credentials as `issue` does, without issuing (hashing) anything: an import's dry run.
pub fn check(set: &SetCredentials) -> Result<()> {
    match set {
        SetCredentials::AccessToken { token, expires_at } => {
            token.clone().map(parse_token).transpose()?;
            parse_expiry(*expires_at)?;
        }
        SetCredentials::MqttBasic {
            client_id,
            username,
            password,
            expires_at,
        } => {
            parse_username(username)?;
            client_id
                .as_deref()
                .map(|c| parse_mqtt_field(c, "client_id"))
                .transpose()?;
            password.clone().map(parse_password).transpose()?;
            parse_expiry(*expires_at)?;
        }
    }
    Ok(())
}

/// No credentials at all (type `none`): a sub-device speaks only through its gateway. The token
/// hash is of a token nobody knows, so the column stays unique and non-null.
pub fn none() -> Issued {
    Issued {
        credentials_type: "none",
        token_hash: tokens::hash_token(&tokens::random_token()),
        mqtt_client_id: None,
        mqtt_username: None,
        mqtt_password_hash: None,
        expire_at: None,
        shown: DeviceCredentials {
            credentials_type: CredentialsType::None,
            access_token: None,
            mqtt_basic: None,
            expires_at: None,
        },
    }
}

/// Checks and prepares new credentials (an access token when none are given). Hashing an MQTT
/// password runs on the blocking pool.
pub async fn issue(set: Option<SetCredentials>) -> Result<Issued> {
    match set.unwrap_or(SetCredentials::AccessToken {
        token: None,
        expires_at: None,
    }) {
        SetCredentials::AccessToken { token, expires_at } => {
            let token = match token {
                Some(t) => parse_token(t)?,
                None => tokens::random_token(),
            };
            let expire_at = parse_expiry(expires_at)?;
            Ok(Issued {
                credentials_type: "access_token",
                token_hash: tokens::hash_token(&token),
                mqtt_client_id: None,
                mqtt_username: None,
                mqtt_password_hash: None,
                expire_at,
                shown: DeviceCredentials {
                    credentials_type: CredentialsType::AccessToken,
                    access_token: Some(token),
                    mqtt_basic: None,
                    expires_at: None,
                }
                .with_expiry(expire_at),
            })
        }
        SetCredentials::MqttBasic {
            client_id,
            username,
            password: pw,
            expires_at,
        } => {
            let username = parse_username(&username)?;
            let client_id = client_id
                .map(|c| parse_mqtt_field(&c, "client_id"))
                .transpose()?;
            let pw = match pw {
                Some(p) => parse_password(p)?,
                None => tokens::random_token()[..24].to_owned(),
            };
            let hash = hash_mqtt_password(&pw).await?;
            let expire_at = parse_expiry(expires_at)?;
            Ok(Issued {
                credentials_type: "mqtt_basic",
                // No access token works for this device.
                token_hash: tokens::hash_token(&tokens::random_token()),
                mqtt_client_id: client_id.clone(),
                mqtt_username: Some(username.clone()),
                mqtt_password_hash: Some(hash),
                expire_at,
                shown: DeviceCredentials {
                    credentials_type: CredentialsType::MqttBasic,
                    access_token: None,
                    mqtt_basic: Some(MqttBasicCredentials {
                        client_id,
                        username,
                        password: pw,
                    }),
                    expires_at: None,
                }
                .with_expiry(expire_at),
            })
        }
    }
}

trait WithExpiry {
    fn with_expiry(self, at: Option<i64>) -> Self;
}

impl WithExpiry for DeviceCredentials {
    fn with_expiry(mut self, at: Option<i64>) -> Self {
        self.expires_at = at.and_then(DateTime::from_timestamp_millis);
        self
    }
}

/// The unique-index violation of an MQTT user name, as the caller should see it.
pub fn username_taken(e: sea_orm::DbErr) -> Error {
    Error::on_unique_violation(
        e,
        "mqtt_username_taken",
        "another device already uses this MQTT user name",
    )
}
