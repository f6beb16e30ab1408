//! A gateway's session: ThingsBoard's Gateway API (`v1/gateway/...`), on which a device marked as
//! gateway speaks for the devices behind it (ThingsBoard IoT Gateway, `tb-mqtt-client`'s
//! `TBGatewayMqttClient`).
//!
//! A gateway names its devices in the payload. A name resolves in the gateway's own tenant only,
//! and only to a device behind this gateway; a name the tenant does not know is created on first
//! sight (`devices::repo::sub_device`). Each device behind the gateway keeps what a directly
//! connected device has: presence (online while the gateway's session holds it, with that session
//! as its own, so that the gateway's end, or its node's loss, ends it too), a timeline, its own
//! rate limiter (as if it were connected itself), attributes and commands.
//!
//! A message for several devices is split: each device's part is checked, limited, stored or
//! refused on its own, and a refusal is recorded on that device's timeline
//! (`Rejection::SubDevices`), so that one bad or flooding device never costs the others theirs.
//! What was stored is stored before the acknowledgement, as for a device's own messages.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use stead_api_types::DisconnectReason;

use super::IngressCtx;
use super::limits::Limiter;
use super::session::{Reply, Subscriptions};
use super::topic::{self, GatewayTopic};
use crate::devices::repo::{DeviceIdentity, NotBehind};
use crate::ids::DeviceId;
use crate::ingest::{self, Rejection};
use crate::live::state::{Activity, PresenceChange};
use crate::telemetry::{self, decode};
use crate::timeline::{self, EventKind};

/// Most devices one message may name.
pub const MAX_DEVICES_PER_MESSAGE: usize = 1000;
/// Most devices one gateway session holds at once: each costs memory until it disconnects.
pub const MAX_DEVICES_PER_SESSION: usize = 10_000;
/// How long a name the gateway may not use is refused from memory: a gateway that keeps naming
/// it must not cost a database lookup per message.
const REFUSED_FOR_MS: i64 = 5_000;

// ---------------------------------------------------------------------------------------------
// Payloads, as ThingsBoard's gateway clients send them

/// `v1/gateway/connect`: the device is online (created on first sight, in the profile named
/// like `type`).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    pub device: String,
    #[serde(default, rename = "type")]
    pub device_type: Option<String>,
}

/// `v1/gateway/disconnect`: the device is offline.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    pub device: String,
}

/// `v1/gateway/attributes/request`: one key (`key`, older clients) or several (`keys`), of the
/// client scope (`client: true`) or the shared one. Answered on
/// `v1/gateway/attributes/response`.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeRequest {
    pub id: i64,
    pub device: String,
    #[serde(default)]
    pub client: bool,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub keys: Option<Vec<String>>,
}

impl AttributeRequest {
    /// The keys asked for.
    pub fn wanted(&self) -> Result<Vec<String>, Rejection> {
        let mut keys: Vec<String> = self
            .key
            .iter()
            .chain(self.keys.iter().flatten())
            .cloned()
            .collect();
        keys.retain(|k| !k.is_empty());
        if keys.is_empty() {
            return Err(Rejection::Payload(format!(
                "device {:?}: an attribute request names `key` or `keys`",
                self.device
            )));
        }
        Ok(keys)
    }
}

/// `v1/gateway/rpc` from the gateway: a device's answer to command `id`.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcReply {
    pub device: String,
    pub id: u32,
    pub data: Value,
}

/// One device's part of `v1/gateway/claim`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Claim {
    #[serde(rename = "secretKey")]
    _secret_key: Option<String>,
    #[serde(rename = "durationMs")]
    _duration_ms: Option<u64>,
}

/// Each device's part of a message keyed by device name, or why that part is refused.
pub type Parts<T> = Vec<(String, Result<T, Rejection>)>;

/// A device name as a gateway gives it: the name it is addressed by, as is.
fn device_name(name: &str) -> Result<(), Rejection> {
    let checked = stead_api_types::check_name("device", name, 128)
        .map_err(|e| Rejection::Payload(format!("device {name:?}: {e}")))?;
    if checked != name {
        return Err(Rejection::Payload(format!(
            "device {name:?}: a device name has no leading or trailing spaces"
        )));
    }
    // Looked up and created by name: PostgreSQL would fail the whole message (and a 3.1.1
    // gateway's connection) instead of refusing this device's part.
    if name.contains('\0') {
        return Err(Rejection::Payload(format!(
            "device {name:?}: a device name holds no NUL character (U+0000)"
        )));
    }
    Ok(())
}

fn json(payload: &[u8], what: &str) -> Result<Value, Rejection> {
    serde_json::from_slice(payload)
        .map_err(|e| Rejection::Payload(format!("the {what} is not valid JSON: {e}")))
}

/// A message about one device (`connect`, `disconnect`, an attribute request, an RPC answer):
/// the device it names, and the message, or why it is refused for that device. The outer error
/// refuses the whole message (it names no device).
pub fn single<T: DeserializeOwned>(
    payload: &[u8],
    what: &str,
) -> Result<(String, Result<T, Rejection>), Rejection> {
    let value = json(payload, what)?;
    let Some(name) = value
        .get("device")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(Rejection::Payload(format!(
            "the {what} must be a JSON object naming its device in `device`"
        )));
    };
    let parsed = device_name(&name)
        .and_then(|()| match crate::text::nul_in(&value) {
            // A device type, an attribute key or a command's answer: all stored or looked up.
            Some(field) => Err(Rejection::Payload(format!(
                "device {name:?}: `{field}` holds a NUL character (U+0000), which text may not"
            ))),
            None => Ok(()),
        })
        .and_then(|()| {
            serde_json::from_value(value)
                .map_err(|e| Rejection::Payload(format!("device {name:?}: invalid {what}: {e}")))
        });
    Ok((name, parsed))
}

/// A message keyed by device name (`telemetry`, `attributes`, `claim`): each device's part.
fn per_device(payload: &[u8], what: &str) -> Result<Vec<(String, Value)>, Rejection> {
    let Value::Object(parts) = json(payload, what)? else {
        return Err(Rejection::Payload(format!(
            "the {what} must be a JSON object keyed by device name"
        )));
    };
    if parts.is_empty() {
        return Err(Rejection::Payload(format!("the {what} names no device")));
    }
    if parts.len() > MAX_DEVICES_PER_MESSAGE {
        return Err(Rejection::Payload(format!(
            "the {what} names {} devices; the limit is {MAX_DEVICES_PER_MESSAGE}",
            parts.len()
        )));
    }
    Ok(parts.into_iter().collect())
}

/// ThingsBoard IoT Gateway may add latency `metadata` to a point with `ts` and `values`: it is
/// about the gateway, not the device, and is not stored.
fn without_metadata(value: Value) -> Value {
    let strip = |item: Value| match item {
        Value::Object(mut map)
            if map.len() == 3
                && map.contains_key("ts")
                && map.contains_key("values")
                && map.get("metadata").is_some_and(Value::is_object) =>
        {
            map.remove("metadata");
            Value::Object(map)
        }
        other => other,
    };
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
        other => strip(other),
    }
}

/// `v1/gateway/telemetry`: each device's points (a list of points, or one point, each with
/// `ts` and `values` or values at server time), or why its part is refused.
pub fn telemetry(payload: &[u8], now_ms: i64) -> Result<Parts<Vec<decode::Point>>, Rejection> {
    Ok(per_device(payload, "gateway telemetry")?
        .into_iter()
        .map(|(name, value)| {
            let points = device_name(&name).and_then(|()| {
                decode::telemetry_value(without_metadata(value), now_ms)
                    .map_err(|e| Rejection::Payload(format!("device {name:?}: {e}")))
            });
            (name, points)
        })
        .collect())
}

/// `v1/gateway/attributes`: each device's client attributes, or why its part is refused.
pub fn attributes(payload: &[u8]) -> Result<Parts<Map<String, Value>>, Rejection> {
    Ok(per_device(payload, "gateway attributes")?
        .into_iter()
        .map(|(name, value)| {
            let values = device_name(&name).and_then(|()| {
                decode::attributes_value(value)
                    .map_err(|e| Rejection::Payload(format!("device {name:?}: {e}")))
            });
            (name, values)
        })
        .collect())
}

/// `v1/gateway/claim`: checked for its shape (each device's part `{"secretKey":…,"durationMs":…}`).
pub fn claims(payload: &[u8]) -> Result<Vec<String>, Rejection> {
    per_device(payload, "gateway claim")?
        .into_iter()
        .map(|(name, value)| {
            device_name(&name)?;
            serde_json::from_value::<Claim>(value)
                .map_err(|e| Rejection::Payload(format!("device {name:?}: invalid claim: {e}")))?;
            Ok(name)
        })
        .collect()
}

/// The answer on `v1/gateway/attributes/response`, as ThingsBoard writes it: one value found as
/// `value`, several as `values`, none as neither.
pub fn attribute_response(id: i64, device: &str, mut found: Map<String, Value>) -> Value {
    let mut answer = Map::new();
    answer.insert("id".into(), id.into());
    answer.insert("device".into(), device.into());
    if found.len() == 1 {
        if let Some(value) = found.values_mut().next().map(Value::take) {
            answer.insert("value".into(), value);
        }
    } else if !found.is_empty() {
        answer.insert("values".into(), Value::Object(found));
    }
    Value::Object(answer)
}

/// A change of a device's shared attributes, for its gateway on `v1/gateway/attributes`.
pub fn attributes_update(device: &str, values: &Value) -> Value {
    serde_json::json!({"device": device, "data": values})
}

// ---------------------------------------------------------------------------------------------
// The session

/// A refusal of the named device, as `resolve` answers it.
fn refused<T>(
    device: Option<DeviceId>,
    rejection: Rejection,
) -> crate::error::Result<Result<T, Refused>> {
    Ok(Err(Refused { device, rejection }))
}

/// A device the gateway's session holds, with its own rate limiter.
struct Held {
    identity: DeviceIdentity,
    limiter: std::sync::Arc<std::sync::Mutex<Limiter>>,
}

/// A name refused lately: until when, whose timeline says so, and why.
type RefusedName = (i64, Option<DeviceId>, Rejection);

/// Why a part was refused, and which device's timeline says so (`None`: the gateway's).
struct Refused {
    device: Option<DeviceId>,
    rejection: Rejection,
}

/// What a gateway's session holds beyond a device's: the devices behind it that it speaks for
/// now, by the name the gateway uses. Lives on the session's ntex thread.
pub struct Gateway {
    ctx: Arc<IngressCtx>,
    /// The gateway itself, and its connection.
    identity: DeviceIdentity,
    conn_id: u64,
    held: RefCell<HashMap<String, Held>>,
    /// Names refused lately (until when, and why).
    refused: RefCell<HashMap<String, RefusedName>>,
}

impl Gateway {
    pub fn new(ctx: Arc<IngressCtx>, identity: DeviceIdentity, conn_id: u64) -> Gateway {
        Gateway {
            ctx,
            identity,
            conn_id,
            held: RefCell::default(),
            refused: RefCell::default(),
        }
    }

    /// Handles one PUBLISH on a gateway topic. `wait` is true for QoS 1: the call returns only
    /// once what was accepted is durably stored.
    pub async fn publish(
        &self,
        topic: GatewayTopic,
        wait: bool,
        payload: &[u8],
        subs: &Subscriptions,
    ) -> Result<Option<Reply>, Rejection> {
        match topic {
            GatewayTopic::Telemetry => self.telemetry(wait, payload, subs).await,
            GatewayTopic::Attributes => self.attributes(payload, subs).await,
            GatewayTopic::Connect => {
                let (name, connect) = single::<Connect>(payload, "connect message")?;
                let connect = connect.map_err(|why| self.refuse_named(topic, &name, why))?;
                self.hold(topic, &name, connect.device_type.as_deref(), subs)
                    .await?;
                Ok(None)
            }
            GatewayTopic::Disconnect => {
                let (name, disconnect) = single::<Disconnect>(payload, "disconnect message")?;
                disconnect.map_err(|why| self.refuse_named(topic, &name, why))?;
                self.release(&name, DisconnectReason::ClientDisconnect);
                Ok(None)
            }
            GatewayTopic::AttributeRequest => self.attribute_request(payload, subs).await,
            GatewayTopic::Rpc => self.rpc_reply(payload, subs).await,
            GatewayTopic::Claim => {
                claims(payload)?;
                Err(Rejection::NotSupported(
                    "device claiming comes with customer accounts and is not supported yet".into(),
                ))
            }
        }
    }

    async fn telemetry(
        &self,
        wait: bool,
        payload: &[u8],
        subs: &Subscriptions,
    ) -> Result<Option<Reply>, Rejection> {
        let topic = GatewayTopic::Telemetry;
        let now = telemetry::now_ms();
        let mut rows = Vec::new();
        let mut stored = Vec::new();
        let mut refusal = None;
        for (name, points) in telemetry(payload, now)? {
            let part = async {
                let points = points.map_err(|why| self.refuse_named(topic, &name, why))?;
                let identity = self.hold(topic, &name, None, subs).await?;
                let (part_rows, n) =
                    ingest::rows_of(&self.ctx.state.config, &identity, points, now)
                        .map_err(|why| self.refuse_named(topic, &name, why))?;
                self.admit(topic, &name, &identity, now, n)?;
                Ok::<_, Rejection>((identity.device_id, part_rows))
            };
            match part.await {
                Ok((device, mut part_rows)) => {
                    rows.append(&mut part_rows);
                    stored.push(device);
                }
                Err(why @ Rejection::SubDevices(_)) => {
                    refusal.get_or_insert(why);
                }
                // Storage or the database failed: nothing of this message is acknowledged.
                Err(other) => return Err(other),
            }
        }
        if !rows.is_empty() {
            // The gateway's shard keeps its devices' messages in the order it sent them.
            let store = &self.ctx.state.telemetry;
            let result = if wait {
                store.write(self.identity.device_id, rows).await
            } else {
                store
                    .write_unacknowledged(self.identity.device_id, rows)
                    .await
            };
            result.map_err(|e| Rejection::Unavailable(e.to_string()))?;
        }
        for device in stored {
            self.note(device, now, 1, 0);
        }
        refusal.map_or(Ok(None), Err)
    }

    async fn attributes(
        &self,
        payload: &[u8],
        subs: &Subscriptions,
    ) -> Result<Option<Reply>, Rejection> {
        let topic = GatewayTopic::Attributes;
        let now = telemetry::now_ms();
        let mut refusal = None;
        for (name, values) in attributes(payload)? {
            let part = async {
                let values = values.map_err(|why| self.refuse_named(topic, &name, why))?;
                let identity = self.hold(topic, &name, None, subs).await?;
                self.admit(topic, &name, &identity, now, values.len() as u64)?;
                let ctx = self.ctx.clone();
                let device = identity.clone();
                self.ctx
                    .on_main(async move {
                        crate::attributes::set_client(
                            &ctx.state.db,
                            &ctx.state.subscriptions,
                            &device,
                            values,
                            now,
                        )
                        .await
                    })
                    .await
                    .map_err(|e| Rejection::Unavailable(e.to_string()))?;
                self.note(identity.device_id, now, 1, 0);
                Ok::<_, Rejection>(())
            };
            match part.await {
                Ok(()) => {}
                Err(why @ Rejection::SubDevices(_)) => {
                    refusal.get_or_insert(why);
                }
                Err(other) => return Err(other),
            }
        }
        refusal.map_or(Ok(None), Err)
    }

    async fn attribute_request(
        &self,
        payload: &[u8],
        subs: &Subscriptions,
    ) -> Result<Option<Reply>, Rejection> {
        let topic = GatewayTopic::AttributeRequest;
        let (name, request) = single::<AttributeRequest>(payload, "attribute request")?;
        let request = request.map_err(|why| self.refuse_named(topic, &name, why))?;
        let keys = request
            .wanted()
            .map_err(|why| self.refuse_named(topic, &name, why))?;
        let identity = self.hold(topic, &name, None, subs).await?;
        let ctx = self.ctx.clone();
        let device = identity.clone();
        let client = request.client;
        let answer = self
            .ctx
            .on_main(async move {
                let (client_keys, shared_keys) = if client {
                    (Some(keys), None)
                } else {
                    (None, Some(keys))
                };
                crate::attributes::answer_request(&ctx.state.db, &device, client_keys, shared_keys)
                    .await
            })
            .await
            .map_err(|e| Rejection::Unavailable(e.to_string()))?;
        let scope = if client { "client" } else { "shared" };
        let found = match answer.get(scope) {
            Some(Value::Object(found)) => found.clone(),
            _ => Map::new(),
        };
        self.note(identity.device_id, telemetry::now_ms(), 1, 0);
        Ok(Some(Reply {
            topic: topic::GATEWAY_ATTRIBUTES_RESPONSE.to_owned(),
            payload: attribute_response(request.id, &name, found)
                .to_string()
                .into(),
            qos1: false,
        }))
    }

    async fn rpc_reply(
        &self,
        payload: &[u8],
        subs: &Subscriptions,
    ) -> Result<Option<Reply>, Rejection> {
        let topic = GatewayTopic::Rpc;
        let (name, reply) = single::<RpcReply>(payload, "RPC answer")?;
        let reply = reply.map_err(|why| self.refuse_named(topic, &name, why))?;
        let identity = self.hold(topic, &name, None, subs).await?;
        let ctx = self.ctx.clone();
        let device = identity.device_id;
        let id = reply.id;
        let known = self
            .ctx
            .on_main(async move { crate::rpc::answered(&ctx.state, device, id, reply.data).await })
            .await
            .map_err(|e| Rejection::Unavailable(e.to_string()))?;
        if !known {
            return Err(self.refuse(
                topic,
                &name,
                Some(device),
                Rejection::Payload(format!(
                    "device {name:?}: no command {id} waits for an answer (unknown, one-way, already answered or timed out)"
                )),
            ));
        }
        self.note(device, telemetry::now_ms(), 1, 0);
        Ok(None)
    }

    /// The device the gateway names, held by this session from now on: looked up (or created)
    /// the first time, then from memory. A refusal is recorded and wrapped (`SubDevices`).
    async fn hold(
        &self,
        topic: GatewayTopic,
        name: &str,
        device_type: Option<&str>,
        subs: &Subscriptions,
    ) -> Result<DeviceIdentity, Rejection> {
        if let Some(held) = self.held.borrow().get(name) {
            return Ok(held.identity.clone());
        }
        let now = telemetry::now_ms();
        let cached = self
            .refused
            .borrow()
            .get(name)
            .filter(|(until, _, _)| *until > now)
            .map(|(_, device, why)| (*device, why.clone()));
        if let Some((device, why)) = cached {
            return Err(self.refuse(topic, name, device, why));
        }
        if self.held.borrow().len() >= MAX_DEVICES_PER_SESSION {
            return Err(self.refuse(
                topic,
                name,
                None,
                Rejection::QuotaExceeded(format!(
                    "device {name:?}: a gateway's session holds at most {MAX_DEVICES_PER_SESSION} devices at once; disconnect some first"
                )),
            ));
        }
        let (identity, created) = match self.resolve(name, device_type).await? {
            Ok(found) => found,
            Err(Refused { device, rejection }) => {
                let mut refused = self.refused.borrow_mut();
                if refused.len() > 1000 {
                    refused.retain(|_, (until, _, _)| *until > now);
                }
                refused.insert(
                    name.to_owned(),
                    (now + REFUSED_FOR_MS, device, rejection.clone()),
                );
                drop(refused);
                return Err(self.refuse(topic, name, device, rejection));
            }
        };
        {
            // Two messages may have looked it up at once: the first one holds it.
            let mut held = self.held.borrow_mut();
            if let Some(earlier) = held.get(name) {
                return Ok(earlier.identity.clone());
            }
            held.insert(
                name.to_owned(),
                Held {
                    limiter: self.ctx.device_limiter(&identity),
                    identity: identity.clone(),
                },
            );
        }
        if !self.connected(name, &identity, created, subs) {
            // The gateway's session is ending: what it sends now is still handled, but it holds
            // nothing any more.
            self.held.borrow_mut().remove(name);
        }
        Ok(identity)
    }

    /// Looks the name up in the gateway's tenant (creating it on first sight), on the main
    /// runtime. The outer error is the database's (nothing is acknowledged).
    async fn resolve(
        &self,
        name: &str,
        device_type: Option<&str>,
    ) -> Result<Result<(DeviceIdentity, bool), Refused>, Rejection> {
        let state = self.ctx.state.clone();
        let gateway = self.identity.clone();
        let (name, device_type) = (name.to_owned(), device_type.map(str::to_owned));
        self.ctx
            .on_main(async move {
                // The gateway's credentials named its tenant: its devices are that tenant's.
                let tenant = crate::auth::TenantCtx::new(gateway.tenant_id);
                let found = crate::devices::repo::sub_device(
                    &state.db,
                    &tenant,
                    &crate::tenants::quotas::Defaults::of(&state.config),
                    gateway.device_id,
                    &name,
                    device_type.as_deref(),
                )
                .await;
                match found {
                    Ok(Ok(sub)) => match &sub.identity.disabled_reason {
                        Some(reason) => refused(
                            Some(sub.identity.device_id),
                            Rejection::NotAuthorized(format!(
                                "device {name:?} is disabled: {reason}"
                            )),
                        ),
                        None => Ok(Ok((sub.identity, sub.created))),
                    },
                    Ok(Err(NotBehind::Itself)) => refused(
                        None,
                        Rejection::NotAuthorized(format!(
                            "device {name:?} is the gateway itself: it speaks for itself on v1/devices/me/..."
                        )),
                    ),
                    Ok(Err(NotBehind::Elsewhere(device))) => refused(
                        Some(device),
                        Rejection::NotAuthorized(format!(
                            "device {name:?} is not behind this gateway (it connects directly or through another gateway)"
                        )),
                    ),
                    Err(crate::error::Error::Invalid { detail, .. }) => refused(
                        None,
                        Rejection::Payload(format!("device {name:?}: {detail}")),
                    ),
                    Err(crate::error::Error::Conflict {
                        code: "quota_exceeded",
                        detail,
                    }) => refused(
                        None,
                        Rejection::QuotaExceeded(format!("device {name:?}: {detail}")),
                    ),
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(|e| Rejection::Unavailable(e.to_string()))
    }

    /// Counts a part against its device's rate limits and the tenant's.
    fn admit(
        &self,
        topic: GatewayTopic,
        name: &str,
        identity: &DeviceIdentity,
        now: i64,
        points: u64,
    ) -> Result<(), Rejection> {
        let own = match self.held.borrow_mut().get_mut(name) {
            Some(held) => held
                .limiter
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .admit(now, points),
            // Let go of meanwhile (disconnected): counted with the tenant's only.
            None => Ok(()),
        };
        own.map_err(|e| Rejection::RateLimited(format!("device {name:?}: {e}")))
            .and_then(|()| {
                self.ctx
                    .state
                    .sessions
                    .tenant_admit(&self.ctx.state.config, identity, now, points)
            })
            .map_err(|why| self.refuse(topic, name, Some(identity.device_id), why))
    }

    fn held_id(&self, name: &str) -> Option<DeviceId> {
        self.held.borrow().get(name).map(|h| h.identity.device_id)
    }

    /// `refuse` for a device known only by name (refused before it was looked up).
    fn refuse_named(&self, topic: GatewayTopic, name: &str, why: Rejection) -> Rejection {
        self.refuse(topic, name, self.held_id(name), why)
    }

    /// Records a refused part on its device's timeline (the gateway's when the device is not
    /// known) and answers it as a part's refusal.
    fn refuse(
        &self,
        topic: GatewayTopic,
        name: &str,
        device: Option<DeviceId>,
        why: Rejection,
    ) -> Rejection {
        let ctx = &self.ctx;
        ctx.metrics_rejected(why.reason());
        let data = serde_json::json!({
            "topic": topic.as_str(),
            "reason": why.reason(),
            "device": name.chars().take(200).collect::<String>(),
            "gateway_id": self.identity.device_id,
        });
        let (target, detail) = match device {
            Some(device) => {
                // Counted against a device this gateway speaks for, not one it named wrongly.
                if self.held_id(name) == Some(device) {
                    self.note(device, telemetry::now_ms(), 0, 1);
                }
                (
                    device,
                    format!(
                        "Message on {:?} through gateway {:?} rejected: {}",
                        topic.as_str(),
                        self.identity.name,
                        why.detail()
                    ),
                )
            }
            None => (
                self.identity.device_id,
                format!(
                    "Message on {:?} rejected for a device behind this gateway: {}",
                    topic.as_str(),
                    why.detail()
                ),
            ),
        };
        ctx.state.timeline.record_for(
            self.identity.tenant_id,
            target,
            EventKind::MessageRejected,
            detail,
            data,
        );
        Rejection::SubDevices(Box::new(why))
    }

    fn note(&self, device: DeviceId, now: i64, messages: u64, errors: u64) {
        self.ctx.state.sessions.note_activity(
            device,
            Activity {
                ts: now,
                messages,
                errors,
            },
        );
    }

    /// A device is now held by this session: reachable through it, online, on its timeline.
    /// False when the gateway's session is ending (it is no longer the gateway's current one).
    fn connected(
        &self,
        name: &str,
        sub: &DeviceIdentity,
        created: bool,
        subs: &Subscriptions,
    ) -> bool {
        let ctx = &self.ctx;
        let Some(grant) =
            ctx.registry
                .register_sub(sub.device_id, self.identity.device_id, self.conn_id, name)
        else {
            return false;
        };
        let created_note = if created {
            " (created on first sight)"
        } else {
            ""
        };
        timeline::record(
            &ctx.state.timeline,
            sub,
            EventKind::Connected,
            format!(
                "Connected through gateway {:?}{created_note}",
                self.identity.name
            ),
            serde_json::json!({"gateway_id": self.identity.device_id, "gateway": self.identity.name, "created": created}),
        );
        ctx.record_connect(sub.device_id, grant);
        if subs.gateway_rpc().is_some() {
            let state = ctx.state.clone();
            let device = sub.device_id;
            ctx.rt.spawn(async move {
                if let Err(e) = crate::rpc::deliver_pending(&state, device).await {
                    tracing::warn!(error = %e, "delivering queued commands failed");
                }
            });
        }
        true
    }

    /// Lets go of the device named `name` (offline, with `reason`); false when not held.
    pub fn release(&self, name: &str, reason: DisconnectReason) -> bool {
        let Some(held) = self.held.borrow_mut().remove(name) else {
            return false;
        };
        self.ended(&held.identity, reason);
        true
    }

    /// Lets go of `device` (the platform ended it: disabled, deleted, taken over); answers the
    /// name the gateway knows it by.
    pub fn release_device(&self, device: DeviceId, reason: DisconnectReason) -> Option<String> {
        let name = self
            .held
            .borrow()
            .iter()
            .find(|(_, held)| held.identity.device_id == device)
            .map(|(name, _)| name.clone())?;
        self.release(&name, reason).then_some(name)
    }

    /// Lets go of every device (the gateway's session ended).
    pub fn release_all(&self, reason: DisconnectReason) {
        let held: Vec<Held> = self.held.borrow_mut().drain().map(|(_, h)| h).collect();
        for held in held {
            self.ended(&held.identity, reason);
        }
    }

    /// The devices held now (to hand them their queued commands when the gateway subscribes).
    pub fn devices(&self) -> Vec<DeviceId> {
        self.held
            .borrow()
            .values()
            .map(|h| h.identity.device_id)
            .collect()
    }

    /// A held device's end: its timeline, its counters, offline (unless a newer session holds
    /// it), as a device's own session ends.
    fn ended(&self, sub: &DeviceIdentity, reason: DisconnectReason) {
        let ctx = self.ctx.clone();
        ctx.registry.unregister_sub(sub.device_id, self.conn_id);
        timeline::record(
            &ctx.state.timeline,
            sub,
            EventKind::Disconnected,
            format!(
                "Disconnected: {} (through gateway {:?})",
                super::describe(reason),
                self.identity.name
            ),
            serde_json::json!({"reason": reason, "gateway_id": self.identity.device_id}),
        );
        let device = sub.device_id;
        let session = ctx.session_ref(self.conn_id);
        let now = telemetry::now_ms();
        let ending = ctx.state.sessions.ending();
        let rt = ctx.rt.clone();
        rt.spawn(async move {
            let _ending = ending;
            let live = &ctx.state.live;
            let mut activity = ctx.state.sessions.take_activity(device);
            activity.merge(Activity {
                ts: now,
                messages: 0,
                errors: 0,
            });
            let _ = live.record_activity(&[(device, activity)]).await;
            if let Ok(p) = live
                .update_presence(
                    device,
                    PresenceChange::Disconnected {
                        ts: now,
                        reason,
                        session,
                    },
                )
                .await
            {
                ctx.state
                    .bus
                    .publish(device, stead_api_types::LiveEvent::Presence(p));
                ctx.state.sessions.mirror_online(device);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reason(r: &Rejection) -> &'static str {
        r.reason()
    }

    #[test]
    fn telemetry_is_split_per_device() {
        let payload = json!({
            "thermo-1": [{"ts": 1700000000000i64, "values": {"t": 21.5}}, {"ts": 1700000001000i64, "values": {"t": 22}}],
            "thermo-2": {"t": 3, "on": true},
            "thermo-3": [{"ts": 5, "values": {"t": 1}, "metadata": {"publishedTs": 9}}],
            "bad": [{"ts": 1, "values": {"t": null}}],
            "": [{"t": 1}],
            "also-bad": "hot",
        });
        let parts: HashMap<String, _> = telemetry(payload.to_string().as_bytes(), 77)
            .unwrap()
            .into_iter()
            .collect();
        let one = parts["thermo-1"].as_ref().unwrap();
        assert_eq!(one.len(), 2);
        assert_eq!(one[1].ts, 1700000001000);
        let two = parts["thermo-2"].as_ref().unwrap();
        assert_eq!((two[0].ts, two[0].values.len()), (77, 2));
        // The gateway's latency metadata is not the device's data.
        let three = parts["thermo-3"].as_ref().unwrap();
        assert_eq!(three[0].values, *json!({"t": 1}).as_object().unwrap());
        for bad in ["bad", "", "also-bad"] {
            let why = parts[bad].as_ref().unwrap_err();
            assert_eq!(reason(why), "invalid_payload", "{bad}");
        }
        assert!(
            parts["bad"]
                .as_ref()
                .unwrap_err()
                .detail()
                .contains("\"bad\"")
        );
    }

    #[test]
    fn whole_messages_that_name_no_device_are_refused() {
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            b"42",
            br#"["thermo-1", {"t": 1}]"#,
        ] {
            assert!(telemetry(bad, 0).is_err(), "{bad:?}");
            assert!(attributes(bad).is_err(), "{bad:?}");
            assert!(claims(bad).is_err(), "{bad:?}");
        }
        let many: Map<String, Value> = (0..=MAX_DEVICES_PER_MESSAGE)
            .map(|i| (format!("d{i}"), json!({"t": 1})))
            .collect();
        assert!(telemetry(Value::Object(many).to_string().as_bytes(), 0).is_err());
    }

    #[test]
    fn attributes_per_device() {
        let payload = br#"{"a": {"fw": "1.2", "n": 3}, "b": [1, 2], "c": {"k": null}}"#;
        let parts: HashMap<String, _> = attributes(payload).unwrap().into_iter().collect();
        assert_eq!(parts["a"].as_ref().unwrap()["fw"], json!("1.2"));
        assert!(parts["b"].is_err());
        assert!(parts["c"].is_err());
    }

    #[test]
    fn messages_about_one_device_refuse_unknown_fields_for_that_device() {
        let (name, connect) = single::<Connect>(
            br#"{"device": "thermo-1", "type": "thermostat"}"#,
            "connect",
        )
        .unwrap();
        assert_eq!(name, "thermo-1");
        assert_eq!(
            connect.unwrap(),
            Connect {
                device: "thermo-1".into(),
                device_type: Some("thermostat".into())
            }
        );
        let (name, connect) =
            single::<Connect>(br#"{"device": "thermo-1", "colour": "red"}"#, "connect").unwrap();
        assert_eq!(name, "thermo-1");
        let why = connect.unwrap_err();
        assert!(why.detail().contains("unknown field `colour`"), "{why:?}");
        // No device to blame: the whole message is refused.
        assert!(single::<Connect>(br#"{"type": "x"}"#, "connect").is_err());
        assert!(single::<Connect>(br#"{"device": 7}"#, "connect").is_err());
        assert!(single::<Disconnect>(b"nope", "disconnect").is_err());
        let (_, padded) = single::<Disconnect>(br#"{"device": " x"}"#, "disconnect").unwrap();
        assert!(padded.is_err());
    }

    #[test]
    fn attribute_requests_take_one_key_or_several() {
        let (_, request) = single::<AttributeRequest>(
            br#"{"id": 3, "device": "d", "client": true, "keys": ["a", "b"]}"#,
            "attribute request",
        )
        .unwrap();
        let request = request.unwrap();
        assert!(request.client);
        assert_eq!(request.wanted().unwrap(), ["a", "b"]);
        let (_, request) = single::<AttributeRequest>(
            br#"{"id": 4, "device": "d", "client": false, "key": "fw"}"#,
            "attribute request",
        )
        .unwrap();
        assert_eq!(request.unwrap().wanted().unwrap(), ["fw"]);
        let (_, request) =
            single::<AttributeRequest>(br#"{"id": 5, "device": "d"}"#, "attribute request")
                .unwrap();
        assert!(request.unwrap().wanted().is_err());
        let (_, request) =
            single::<AttributeRequest>(br#"{"device": "d", "keys": ["a"]}"#, "attribute request")
                .unwrap();
        assert!(request.is_err(), "the id is required");
    }

    #[test]
    fn rpc_answers_name_device_id_and_data() {
        let (_, reply) = single::<RpcReply>(
            br#"{"device": "d", "id": 12, "data": {"ok": true}}"#,
            "RPC answer",
        )
        .unwrap();
        assert_eq!(
            reply.unwrap(),
            RpcReply {
                device: "d".into(),
                id: 12,
                data: json!({"ok": true})
            }
        );
        for bad in [
            &br#"{"device": "d", "id": 12}"#[..],
            br#"{"device": "d", "id": -1, "data": 1}"#,
            br#"{"device": "d", "id": 1, "data": 1, "method": "x"}"#,
        ] {
            let (_, reply) = single::<RpcReply>(bad, "RPC answer").unwrap();
            assert!(reply.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn claims_are_checked_for_their_shape() {
        assert_eq!(
            claims(br#"{"d": {"secretKey": "s", "durationMs": 60000}}"#).unwrap(),
            ["d"]
        );
        assert!(claims(br#"{"d": {"secret": "s"}}"#).is_err());
    }

    #[test]
    fn answers_are_thingsboards() {
        let one = Map::from_iter([("fw".to_owned(), json!("1.2"))]);
        assert_eq!(
            attribute_response(7, "d", one),
            json!({"id": 7, "device": "d", "value": "1.2"})
        );
        let two = Map::from_iter([("a".to_owned(), json!(1)), ("b".to_owned(), json!(true))]);
        assert_eq!(
            attribute_response(8, "d", two),
            json!({"id": 8, "device": "d", "values": {"a": 1, "b": true}})
        );
        assert_eq!(
            attribute_response(9, "d", Map::new()),
            json!({"id": 9, "device": "d"})
        );
        assert_eq!(
            attributes_update("d", &json!({"target": 21})),
            json!({"device": "d", "data": {"target": 21}})
        );
    }

    /// Found by the `gateway_decode` fuzz target (server/fuzz; this is its input): a device name
    /// with a NUL character was accepted, then looked up and created in PostgreSQL, which refuses
    /// U+0000: the whole message failed as a storage error (a 3.1.1 gateway's connection closed,
    /// and the gateway sent it again after reconnecting). Now only that device's part is refused.
    #[test]
    fn regression_a_nul_in_a_device_name_refuses_that_device_only() {
        let payload = br#"{"thermo-1":[{"ts":1700000000000,"luva1s":{"t":21.5}},{"ts":1700000001000,"6alues":{"t":22}}],"4hermo-2\u0000":{"t":3,"on":true},"th]rmo-3":[{"ts":5,"vadues":{"t":1},"metadata":{"publisheeTs":4}}],"bad":[{"4s":1,"values":{"t":null}}],"":[{"t":1}],"also-bad":"hot"}"#;
        let parts: HashMap<String, _> = telemetry(payload, 0).unwrap().into_iter().collect();
        let why = parts["4hermo-2\0"].as_ref().unwrap_err();
        assert_eq!(reason(why), "invalid_payload");
        assert!(why.detail().contains("NUL"), "{why:?}");
        assert_eq!(parts["thermo-1"].as_ref().unwrap().len(), 2);
        assert!(parts["th]rmo-3"].is_ok());
        assert!(attributes(br#"{"a\u0000":{"k":1}}"#).unwrap()[0].1.is_err());
        assert!(claims(br#"{"a\u0000":{}}"#).is_err());
        // Messages about one device: the name, and any text in them (a device type, an
        // attribute key, a command's answer: all looked up or stored).
        for bad in [
            &br#"{"device": "a\u0000"}"#[..],
            br#"{"device": "d", "type": "meter\u0000"}"#,
        ] {
            let (_, connect) = single::<Connect>(bad, "connect message").unwrap();
            assert!(connect.unwrap_err().detail().contains("NUL"));
        }
        let (_, reply) = single::<RpcReply>(
            br#"{"device": "d", "id": 1, "data": {"out": "x\u0000"}}"#,
            "RPC answer",
        )
        .unwrap();
        assert!(reply.unwrap_err().detail().contains("`data.out`"));
        let (_, request) = single::<AttributeRequest>(
            br#"{"id": 1, "device": "d", "keys": ["\u0000"]}"#,
            "attribute request",
        )
        .unwrap();
        assert!(request.is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn any_payload_parses_without_panic(payload in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = telemetry(&payload, 0);
                let _ = attributes(&payload);
                let _ = claims(&payload);
                let _ = single::<Connect>(&payload, "connect");
                let _ = single::<AttributeRequest>(&payload, "attribute request");
                let _ = single::<RpcReply>(&payload, "RPC answer");
            }

            #[test]
            fn any_json_parses_without_panic(name in "\\PC{0,20}", value in "\\PC{0,60}") {
                let payload = format!("{{{:?}: {value}}}", name);
                let _ = telemetry(payload.as_bytes(), 0);
                let _ = attributes(payload.as_bytes());
            }
        }
    }
}
