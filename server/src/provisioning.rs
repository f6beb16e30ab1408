//! Device provisioning, as ThingsBoard's device API does it: a device that knows its profile's
//! provisioning key and secret asks for its own credentials, over MQTT (user name `provision`,
//! request on `/provision/request`, answer on `/provision/response`) or over HTTP
//! (`POST /api/v1/provision`), with the same JSON either way; `handle` is the one place that
//! answers it.
//!
//! The profile's strategy decides: `allow_create` creates the named device in the key's profile
//! (a name already taken is a failure); `pre_provisioned` only hands out credentials for a device
//! created beforehand in that profile. Stead stores only hashes of secrets, so a pre-provisioned
//! device receives fresh credentials (the device's old ones stop working), once: the device is
//! then marked with the server attribute `provisionState = "provisioned"` (as ThingsBoard does),
//! and a second request for it fails until someone deletes that attribute. The key names the
//! tenant, which is why this module may build a `TenantCtx` from it. Attempts are throttled per
//! source address like logins are.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use stead_api_types::{
    AttributeScope, CreateDevice, DeviceCredentials, ProvisionStrategy, SetCredentials,
    TenantStatus,
};

use crate::app::AppState;
use crate::auth::{TenantCtx, tokens};
use crate::devices::repo;
use crate::error::Error;
use crate::ids::{DeviceId, TenantId};
use crate::timeline::EventKind;

/// The MQTT user name that opens a provisioning connection.
pub const USERNAME: &str = "provision";
pub const REQUEST_TOPIC: &str = "/provision/request";
pub const RESPONSE_TOPIC: &str = "/provision/response";

/// The server attribute that marks a device as provisioned.
const STATE_KEY: &str = "provisionState";

/// A provisioning request. Unknown fields (the SDKs send `gateway`, `hash`, …) are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    device_name: Option<String>,
    provision_device_key: String,
    provision_device_secret: String,
    credentials_type: Option<String>,
    token: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Why a request was not granted; each maps to ThingsBoard's answer.
#[derive(Debug)]
pub enum Failed {
    /// Unknown key, wrong secret, provisioning off: `NOT_FOUND`.
    NotFound(String),
    /// Everything else: `FAILURE`.
    Failure(String),
    Throttled {
        retry_after_secs: u64,
    },
}

impl From<Error> for Failed {
    fn from(e: Error) -> Failed {
        match e {
            Error::Invalid { detail, .. } | Error::Conflict { detail, .. } => {
                Failed::Failure(detail)
            }
            other => {
                tracing::error!(error = %other, "provisioning failed");
                Failed::Failure("the platform could not provision the device now".into())
            }
        }
    }
}

/// Answers a provisioning request (the raw JSON) with ThingsBoard's response JSON.
pub async fn handle(state: &AppState, ip: Option<IpAddr>, payload: &[u8]) -> serde_json::Value {
    answer(provision(state, ip, payload).await)
}

/// The response JSON of an outcome.
pub fn answer(outcome: Result<DeviceCredentials, Failed>) -> serde_json::Value {
    use serde_json::json;
    match outcome {
        Ok(DeviceCredentials {
            mqtt_basic: Some(basic),
            ..
        }) => json!({
            "status": "SUCCESS",
            "credentialsType": "MQTT_BASIC",
            "credentialsValue": {
                "clientId": basic.client_id,
                "userName": basic.username,
                "password": basic.password,
            },
        }),
        Ok(credentials) => json!({
            "status": "SUCCESS",
            "credentialsType": "ACCESS_TOKEN",
            "credentialsValue": credentials.access_token,
        }),
        Err(Failed::NotFound(msg)) => json!({"status": "NOT_FOUND", "errorMsg": msg}),
        Err(Failed::Failure(msg)) => json!({"status": "FAILURE", "errorMsg": msg}),
        Err(Failed::Throttled { retry_after_secs }) => json!({
            "status": "FAILURE",
            "errorMsg": format!("too many provisioning attempts from this address; retry in {retry_after_secs} s"),
        }),
    }
}

/// Checks and carries out a provisioning request; answers the new credentials.
#[tracing::instrument(skip_all)]
pub async fn provision(
    state: &AppState,
    ip: Option<IpAddr>,
    payload: &[u8],
) -> Result<DeviceCredentials, Failed> {
    throttle(state, ip).await?;
    let request: Request = serde_json::from_slice(payload)
        .map_err(|e| Failed::Failure(format!("invalid provisioning request: {e}")))?;
    let not_found = || Failed::NotFound("unknown provisioning key or wrong secret".into());
    let profile = crate::profiles::repo::by_provision_key(
        crate::auth::System::ingress(),
        &state.db,
        &request.provision_device_key,
    )
    .await?
    .filter(|p| {
        crate::profiles::repo::strategy_of(p) != ProvisionStrategy::Disabled
            && p.provision_secret_hash.as_deref().is_some_and(|stored| {
                same(
                    stored.as_bytes(),
                    tokens::hash_token(&request.provision_device_secret).as_bytes(),
                )
            })
    })
    .ok_or_else(not_found)?;
    let tenant = crate::tenants::repo::find(&state.db, TenantId(profile.tenant_id))
        .await?
        .filter(|t| crate::tenants::repo::status(t) == TenantStatus::Active)
        .ok_or_else(not_found)?;
    let ctx = TenantCtx::new(TenantId(tenant.id));
    let name = request
        .device_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Failed::Failure("deviceName is required".into()))?
        .to_owned();
    let set = credentials_of(&request)?;
    let existing = repo::by_name(&state.db, &ctx, &name).await?;
    let (device_id, credentials) = match crate::profiles::repo::strategy_of(&profile) {
        ProvisionStrategy::AllowCreate => {
            if existing.is_some() {
                return Err(Failed::Failure(format!(
                    "a device named {name:?} already exists"
                )));
            }
            let body = CreateDevice {
                name: name.clone(),
                label: None,
                device_type: None,
                metadata: None,
                profile_id: Some(profile.id),
                groups: None,
                credentials: Some(set),
                gateway: false,
                gateway_id: None,
            };
            let (device, credentials) = repo::create(
                &state.db,
                &ctx,
                &crate::tenants::quotas::Defaults::of(&state.config),
                body,
            )
            .await?;
            (DeviceId(device.id), credentials)
        }
        _ => {
            let device = existing
                .filter(|d| d.profile_id == Some(profile.id))
                .ok_or_else(|| {
                    Failed::Failure(format!(
                        "no device named {name:?} is pre-provisioned in this profile"
                    ))
                })?;
            let id = DeviceId(device.id);
            let marks = crate::attributes::list(
                &state.db,
                &ctx,
                id,
                Some(AttributeScope::Server),
                Some(&[STATE_KEY.to_owned()]),
            )
            .await?;
            if !marks.is_empty() {
                return Err(Failed::Failure(format!(
                    "device {name:?} is already provisioned"
                )));
            }
            let credentials = repo::set_credentials(&state.db, &ctx, id, set).await?;
            // Whatever it had before stops working now.
            state.sessions.revoke_device(id);
            (id, credentials)
        }
    };
    let mark = serde_json::Map::from_iter([(STATE_KEY.to_owned(), "provisioned".into())]);
    crate::attributes::set(
        &state.db,
        &ctx,
        &[device_id.0],
        AttributeScope::Server,
        &mark,
        crate::telemetry::now_ms(),
    )
    .await?;
    let from = ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    state.timeline.record_for(
        ctx.tenant_id(),
        device_id,
        EventKind::Provisioned,
        format!(
            "Provisioned from {from} with the key of profile {:?}",
            profile.name
        ),
        serde_json::json!({"peer": from, "profile_id": profile.id, "credentials_type": credentials.credentials_type}),
    );
    tracing::info!(device = %device_id, profile = %profile.id, "device provisioned");
    Ok(credentials)
}

/// The credentials the device asked for (an access token is generated when it names none).
fn credentials_of(request: &Request) -> Result<SetCredentials, Failed> {
    match request.credentials_type.as_deref() {
        None | Some("ACCESS_TOKEN") => Ok(SetCredentials::AccessToken {
            token: request.token.clone(),
            expires_at: None,
        }),
        Some("MQTT_BASIC") => Ok(SetCredentials::MqttBasic {
            client_id: request.client_id.clone(),
            username: request
                .username
                .clone()
                .ok_or_else(|| Failed::Failure("MQTT_BASIC needs a username".into()))?,
            password: request.password.clone(),
            expires_at: None,
        }),
        Some(other) => Err(Failed::Failure(format!(
            "credentials type {other:?} is not supported: use ACCESS_TOKEN or MQTT_BASIC"
        ))),
    }
}

/// Counts the attempt against the source address's allowance (shared by all nodes with Redis).
async fn throttle(state: &AppState, ip: Option<IpAddr>) -> Result<(), Failed> {
    let cfg = &state.config;
    let key = match ip {
        Some(ip) => format!("provision:ip:{ip}"),
        None => "provision:ip:unknown".to_owned(),
    };
    let (hits, left) = state
        .live
        .hit(&key, Duration::from_secs(cfg.provision_ip_window_secs))
        .await
        .map_err(|e| Failed::from(Error::Internal(e)))?;
    if hits > cfg.provision_max_attempts_per_ip {
        tracing::warn!("provisioning throttled for this address");
        return Err(Failed::Throttled {
            retry_after_secs: left.as_secs().max(1),
        });
    }
    Ok(())
}

/// Compares two equally long byte strings in constant time (the secret's hash against the
/// stored one): how long it takes says nothing about where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y))) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }

    #[test]
    fn answers_are_thingsboards() {
        let basic = answer(Ok(DeviceCredentials {
            credentials_type: stead_api_types::CredentialsType::MqttBasic,
            access_token: None,
            mqtt_basic: Some(stead_api_types::MqttBasicCredentials {
                client_id: Some("c".into()),
                username: "u".into(),
                password: "p".into(),
            }),
            expires_at: None,
        }));
        assert_eq!(
            basic,
            serde_json::json!({"status": "SUCCESS", "credentialsType": "MQTT_BASIC",
                "credentialsValue": {"clientId": "c", "userName": "u", "password": "p"}})
        );
        assert_eq!(
            answer(Err(Failed::NotFound("x".into()))),
            serde_json::json!({"status": "NOT_FOUND", "errorMsg": "x"})
        );
    }
}
