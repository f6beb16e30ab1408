//! Device credentials: an access token (256-bit random, stored as SHA-256) or MQTT basic
//! credentials (user name, argon2id-hashed password, optionally a required client id), with an
//! optional expiry. A secret is shown once, when it is issued.

use chrono::{DateTime, Utc};
use stead_api_types::{CredentialsType, DeviceCredentials, MqttBasicCredentials, SetCredentials};

use crate::auth::{password, tokens};
use crate::error::{Error, Result};

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
            let hash = password::hash_secret(&pw).await?;
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
