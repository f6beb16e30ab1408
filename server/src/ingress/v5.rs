//! MQTT 5: refusals carry reason codes (CONNACK 0x86/0x87, PUBACK 0x99/0x90/0x97/0x83/0x80,
//! SUBACK 0x87) and a reason string, and the connection stays up.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use ntex::service::{ServiceFactory, fn_factory_with_config, fn_service};
use ntex::util::ByteString;
use ntex_mqtt::Control;
use ntex_mqtt::v5::{self, codec};
use stead_api_types::DisconnectReason;

use super::session::{DeviceSession, Rejection};
use super::{Close, IngressCtx};

pub struct V5Session {
    pub inner: DeviceSession,
    pub sink: v5::MqttSink,
    pub ended: Rc<Cell<Option<DisconnectReason>>>,
}

impl Drop for V5Session {
    fn drop(&mut self) {
        if let Some(reason) = self.ended.get() {
            self.inner.end_reason.set(Some(reason));
        }
    }
}

fn disconnect_code(reason: DisconnectReason) -> codec::DisconnectReasonCode {
    match reason {
        DisconnectReason::TakenOver => codec::DisconnectReasonCode::SessionTakenOver,
        DisconnectReason::CredentialsRevoked => codec::DisconnectReasonCode::NotAuthorized,
        DisconnectReason::ServerShutdown => codec::DisconnectReasonCode::ServerShuttingDown,
        DisconnectReason::KeepAliveTimeout => codec::DisconnectReasonCode::KeepAliveTimeout,
        _ => codec::DisconnectReasonCode::UnspecifiedError,
    }
}

async fn handshake(
    ctx: Arc<IngressCtx>,
    hs: v5::Handshake,
) -> Result<v5::HandshakeAck<V5Session>, Close> {
    let peer = hs
        .io()
        .query::<ntex::io::types::PeerAddr>()
        .get()
        .map(|p| p.0.to_string())
        .unwrap_or_else(|| "unknown".into());
    let pkt = hs.packet();
    let token = pkt
        .username
        .as_ref()
        .map(|u| u.to_string())
        .unwrap_or_default();
    let client_id = pkt.client_id.to_string();
    let keep_alive = pkt.keep_alive;
    let will = pkt
        .last_will
        .as_ref()
        .map(|w| (w.topic.to_string(), w.message.clone()));
    if token.is_empty() {
        ctx.connect_refused(&peer, "no access token in the username", None);
        return Ok(hs.failed(codec::ConnectAckReason::BadUserNameOrPassword));
    }
    if token == "provision" {
        ctx.connect_refused(&peer, "device provisioning is not available yet", None);
        return Ok(hs.failed(codec::ConnectAckReason::NotAuthorized));
    }
    let identity = match ctx.authenticate(&token).await {
        Ok(Some(identity)) => identity,
        Ok(None) => {
            ctx.connect_refused(&peer, "unknown or revoked access token", None);
            return Ok(hs.failed(codec::ConnectAckReason::BadUserNameOrPassword));
        }
        Err(e) => {
            tracing::error!(error = %e, "device authentication failed");
            return Ok(hs.failed(codec::ConnectAckReason::ServerUnavailable));
        }
    };
    let (conn_id, mut kick) = ctx
        .registry
        .register(identity.device_id, identity.tenant_id);
    let session = DeviceSession::new(
        ctx.clone(),
        identity.clone(),
        conn_id,
        peer.clone(),
        client_id.clone(),
        "MQTT 5",
        ctx.device_limiter(&identity),
    );
    *session.will.borrow_mut() = will;
    let sink = hs.sink();
    let ended = Rc::new(Cell::new(None));
    {
        let (sink, ended) = (sink.clone(), ended.clone());
        ntex::rt::spawn(async move {
            if let Some(reason) = kick.recv().await {
                ended.set(Some(reason));
                sink.close_with_reason(codec::Disconnect {
                    reason_code: disconnect_code(reason),
                    reason_string: Some(ByteString::from(super::describe(reason))),
                    ..Default::default()
                });
            }
        });
    }
    ctx.connected(&identity, &peer, &client_id, "MQTT 5", conn_id);
    let ka = super::v3::keep_alive_timeout(&ctx, keep_alive).0;
    let max_inflight = ctx.state.config.mqtt_max_inflight;
    let max_packet = ctx.state.config.mqtt_max_payload_bytes as u32 * 4 + 1024;
    Ok(hs
        .ack(V5Session {
            inner: session,
            sink,
            ended,
        })
        .keep_alive((ka * 2 / 3).max(1))
        .with(|ack| {
            ack.receive_max =
                std::num::NonZeroU16::new(max_inflight).unwrap_or(std::num::NonZeroU16::MIN);
            ack.max_packet_size = Some(max_packet);
        }))
}

fn rejection_ack(publish: v5::Publish, rejection: &Rejection) -> v5::PublishAck {
    let code = match rejection {
        Rejection::Payload(_) => codec::PublishAckReason::PayloadFormatInvalid,
        Rejection::Topic(_) => codec::PublishAckReason::TopicNameInvalid,
        Rejection::RateLimited(_) => codec::PublishAckReason::QuotaExceeded,
        Rejection::NotSupported(_) => codec::PublishAckReason::ImplementationSpecificError,
        Rejection::Unavailable(_) => codec::PublishAckReason::UnspecifiedError,
    };
    publish.ack().reason_code(code).reason(ByteString::from(
        rejection.detail().chars().take(200).collect::<String>(),
    ))
}

pub async fn handshake_service(
    ctx: Arc<IngressCtx>,
    hs: v5::Handshake,
) -> Result<v5::HandshakeAck<V5Session>, Close> {
    handshake(ctx, hs).await
}

pub fn protocol() -> impl ServiceFactory<
    v5::ProtocolMessage,
    v5::Session<V5Session>,
    Response = v5::ProtocolMessageAck,
    Error = Close,
    InitError = Close,
> {
    fn_factory_with_config(|session: v5::Session<V5Session>| async move {
        Ok::<_, Close>(fn_service(move |msg: v5::ProtocolMessage| {
            let session = session.clone();
            async move {
                Ok::<_, Close>(match msg {
                    v5::ProtocolMessage::Subscribe(mut sub) => {
                        for mut s in sub.iter_mut() {
                            let topic = s.topic().to_string();
                            if session.inner.may_subscribe(&topic) {
                                s.confirm(codec::QoS::AtLeastOnce.min(s.options().qos));
                            } else {
                                s.fail(codec::SubscribeAckReason::NotAuthorized);
                            }
                        }
                        sub.ack()
                    }
                    v5::ProtocolMessage::Disconnect(d) => {
                        session.ended.set(Some(DisconnectReason::ClientDisconnect));
                        d.ack()
                    }
                    other => other.ack(),
                })
            }
        }))
    })
}

pub fn control() -> impl ServiceFactory<
    Control<Close>,
    v5::Session<V5Session>,
    Response = Option<v5::codec::Encoded>,
    Error = Close,
    InitError = Close,
> {
    fn_factory_with_config(|session: v5::Session<V5Session>| async move {
        Ok::<_, Close>(fn_service(move |control: Control<Close>| {
            let session = session.clone();
            async move {
                if let Control::Stop(reason) = &control
                    && session.ended.get().is_none()
                {
                    session.ended.set(super::stop_reason(reason));
                }
                Ok::<_, Close>(None)
            }
        }))
    })
}

pub fn publish() -> impl ServiceFactory<
    v5::Publish,
    v5::Session<V5Session>,
    Response = v5::PublishAck,
    Error = Close,
    InitError = Close,
> {
    fn_factory_with_config(|session: v5::Session<V5Session>| async move {
        Ok::<_, Close>(fn_service(move |publish: v5::Publish| {
            let session = session.clone();
            async move { publish_v5(session, publish).await }
        }))
    })
}

async fn publish_v5(
    session: v5::Session<V5Session>,
    publish: v5::Publish,
) -> Result<v5::PublishAck, Close> {
    let topic = publish.publish_topic().to_owned();
    let wait = publish.qos() != codec::QoS::AtMostOnce;
    let max = session.inner.ctx.state.config.mqtt_max_payload_bytes;
    let result = match crate::ingest::check_size(publish.payload_size(), max) {
        Err(rejection) => session.inner.reject(&topic, rejection),
        Ok(()) => {
            let payload = publish.read_all().await.map_err(|_| Close)?;
            session.inner.publish(&topic, wait, payload).await
        }
    };
    match result {
        Ok(Some(reply)) => {
            let _ = session
                .sink
                .publish(reply.topic)
                .send_at_most_once(reply.payload);
            Ok(publish.ack())
        }
        Ok(None) => Ok(publish.ack()),
        Err(rejection) => Ok(rejection_ack(publish, &rejection)),
    }
}
