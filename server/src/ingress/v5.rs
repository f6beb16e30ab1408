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

use super::filters::Verdict;
use super::session::{
    Admitted, ConnectRequest, Connection, ProvisioningSession, Refusal, Rejection, State, admit,
    peer_of,
};
use super::{Close, IngressCtx};

pub type V5Session = Connection<v5::MqttSink>;
/// A device's connection, or a provisioning-only one.
pub type V5State = State<v5::MqttSink>;

fn disconnect_code(reason: DisconnectReason) -> codec::DisconnectReasonCode {
    match reason {
        DisconnectReason::TakenOver => codec::DisconnectReasonCode::SessionTakenOver,
        DisconnectReason::CredentialsRevoked
        | DisconnectReason::CredentialsExpired
        | DisconnectReason::Disabled => codec::DisconnectReasonCode::NotAuthorized,
        DisconnectReason::ServerShutdown => codec::DisconnectReasonCode::ServerShuttingDown,
        DisconnectReason::KeepAliveTimeout => codec::DisconnectReasonCode::KeepAliveTimeout,
        _ => codec::DisconnectReasonCode::UnspecifiedError,
    }
}

async fn handshake(
    ctx: Arc<IngressCtx>,
    hs: v5::Handshake,
) -> Result<v5::HandshakeAck<V5State>, Close> {
    let pkt = hs.packet();
    let keep_alive = pkt.keep_alive;
    let request = ConnectRequest {
        peer: peer_of(hs.io()),
        login: ConnectRequest::login(pkt.username.as_ref(), pkt.password.as_ref(), &pkt.client_id),
        will: pkt
            .last_will
            .as_ref()
            .map(|w| (w.topic.to_string(), w.message.clone())),
        protocol: "MQTT 5",
    };
    let (session, kick) = match admit(&ctx, request).await {
        Ok(Admitted::Device(session, kick)) => (session, kick),
        Ok(Admitted::Provisioning(p)) => return Ok(provisioning_ack(&ctx, hs, p, keep_alive)),
        Err(Refusal::BadCredentials) => {
            return Ok(hs.failed(codec::ConnectAckReason::BadUserNameOrPassword));
        }
        Err(Refusal::NotAuthorized) => return Ok(hs.failed(codec::ConnectAckReason::NotAuthorized)),
        Err(Refusal::Unavailable) => {
            return Ok(hs.failed(codec::ConnectAckReason::ServerUnavailable));
        }
    };
    let sink = hs.sink();
    let ended = Rc::new(Cell::new(None));
    super::session::pump(
        ctx.clone(),
        sink.clone(),
        ended.clone(),
        session.subs.clone(),
        session.gateway.clone(),
        kick,
        session.identity.credentials_expire_at,
    );
    let ka = super::v3::keep_alive_timeout(&ctx, keep_alive).0;
    let max_inflight = ctx.state.config.mqtt_max_inflight;
    let max_packet = ctx.state.config.mqtt_max_payload_bytes as u32 * 4 + 1024;
    Ok(hs
        .ack(State::Device(V5Session {
            inner: session,
            sink,
            ended,
            filters: super::filters::Filters::new(ctx.state.config.mqtt_max_subscriptions),
        }))
        .keep_alive((ka * 2 / 3).max(1))
        .with(|ack| {
            ack.receive_max =
                std::num::NonZeroU16::new(max_inflight).unwrap_or(std::num::NonZeroU16::MIN);
            ack.max_packet_size = Some(max_packet);
        }))
}

fn provisioning_ack(
    ctx: &IngressCtx,
    hs: v5::Handshake,
    p: ProvisioningSession,
    keep_alive: u16,
) -> v5::HandshakeAck<V5State> {
    let ka = super::v3::keep_alive_timeout(ctx, keep_alive).0;
    hs.ack(State::Provisioning(p))
        .keep_alive((ka * 2 / 3).max(1))
}

/// A provisioning connection's packets: one topic to subscribe to, one to publish to.
fn provisioning_protocol(
    p: &ProvisioningSession,
    msg: v5::ProtocolMessage,
) -> v5::ProtocolMessageAck {
    match msg {
        v5::ProtocolMessage::Subscribe(mut sub) => {
            for mut s in sub.iter_mut() {
                if p.may_subscribe(s.topic().as_ref()) {
                    s.confirm(codec::QoS::AtLeastOnce.min(s.options().qos));
                } else {
                    s.fail(codec::SubscribeAckReason::NotAuthorized);
                }
            }
            sub.ack()
        }
        other => other.ack(),
    }
}

async fn provisioning_publish(
    p: &ProvisioningSession,
    sink: &v5::MqttSink,
    publish: v5::Publish,
) -> Result<v5::PublishAck, Close> {
    let topic = publish.publish_topic().to_owned();
    let size = publish.payload_size();
    let result = p
        .publish(&topic, size, async { publish.read_all().await.ok() })
        .await;
    match result {
        Ok(reply) => {
            let _ = sink.publish(reply.topic).send_at_most_once(reply.payload);
            Ok(publish.ack())
        }
        Err(rejection) => Ok(rejection_ack(publish, &rejection)),
    }
}

fn rejection_ack(publish: v5::Publish, rejection: &Rejection) -> v5::PublishAck {
    let code = match rejection.root() {
        // `root` never answers `SubDevices`.
        Rejection::Payload(_) | Rejection::SubDevices(_) => {
            codec::PublishAckReason::PayloadFormatInvalid
        }
        Rejection::Topic(_) => codec::PublishAckReason::TopicNameInvalid,
        Rejection::RateLimited(_) | Rejection::QuotaExceeded(_) => {
            codec::PublishAckReason::QuotaExceeded
        }
        Rejection::NotSupported(_) => codec::PublishAckReason::ImplementationSpecificError,
        Rejection::NotAuthorized(_) => codec::PublishAckReason::NotAuthorized,
        Rejection::Unavailable(_) => codec::PublishAckReason::UnspecifiedError,
    };
    publish.ack().reason_code(code).reason(ByteString::from(
        rejection.detail().chars().take(200).collect::<String>(),
    ))
}

pub async fn handshake_service(
    ctx: Arc<IngressCtx>,
    hs: v5::Handshake,
) -> Result<v5::HandshakeAck<V5State>, Close> {
    handshake(ctx, hs).await
}

pub fn protocol() -> impl ServiceFactory<
    v5::ProtocolMessage,
    v5::Session<V5State>,
    Response = v5::ProtocolMessageAck,
    Error = Close,
    InitError = Close,
> {
    fn_factory_with_config(|session: v5::Session<V5State>| async move {
        Ok::<_, Close>(fn_service(move |msg: v5::ProtocolMessage| {
            let session = session.clone();
            async move {
                let session = match &*session {
                    State::Device(device) => device,
                    State::Provisioning(p) => return Ok(provisioning_protocol(p, msg)),
                };
                Ok::<_, Close>(match msg {
                    v5::ProtocolMessage::Subscribe(mut sub) => {
                        let mut filters = 0;
                        for mut s in sub.iter_mut() {
                            filters += 1;
                            let topic = s.topic().to_string();
                            let granted = codec::QoS::AtLeastOnce.min(s.options().qos);
                            if session.filters.verdict(&topic, &session.inner) == Verdict::Over {
                                s.fail(codec::SubscribeAckReason::QuotaExceeded);
                            } else if session.inner.may_subscribe(&topic, granted as u8) {
                                session.filters.held(&topic);
                                s.confirm(granted);
                            } else {
                                session.filters.refused();
                                s.fail(codec::SubscribeAckReason::NotAuthorized);
                            }
                        }
                        if filters == 0 {
                            // [MQTT-3.8.3-3]: a SUBSCRIBE names at least one filter.
                            session.ended.set(Some(DisconnectReason::ProtocolError));
                            super::log_violation(
                                &session.inner,
                                "a SUBSCRIBE without topic filters",
                            );
                            return Err(Close);
                        }
                        sub.ack()
                    }
                    v5::ProtocolMessage::Unsubscribe(unsub) => {
                        for topic in unsub.iter() {
                            session.filters.released(topic, &session.inner);
                        }
                        unsub.ack()
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
    v5::Session<V5State>,
    Response = Option<v5::codec::Encoded>,
    Error = Close,
    InitError = Close,
> {
    fn_factory_with_config(|session: v5::Session<V5State>| async move {
        Ok::<_, Close>(fn_service(move |control: Control<Close>| {
            let session = session.clone();
            async move {
                let State::Device(session) = &*session else {
                    return Ok(None);
                };
                if let Control::Stop(reason) = &control
                    && session.ended.get().is_none()
                {
                    session.ended.set(super::stop_reason(reason));
                    super::log_protocol_error(&session.inner, reason);
                }
                Ok::<_, Close>(None)
            }
        }))
    })
}

pub fn publish() -> impl ServiceFactory<
    v5::Publish,
    v5::Session<V5State>,
    Response = v5::PublishAck,
    Error = Close,
    InitError = Close,
> {
    fn_factory_with_config(|session: v5::Session<V5State>| async move {
        Ok::<_, Close>(fn_service(move |publish: v5::Publish| {
            let session = session.clone();
            async move {
                match &*session {
                    State::Device(device) => match publish_v5(device, &publish).await? {
                        Ok(()) => Ok(publish.ack()),
                        Err(rejection) => Ok(rejection_ack(publish, &rejection)),
                    },
                    // Rare, and a large future: boxed, to keep every telemetry PUBLISH's small.
                    State::Provisioning(p) => {
                        Box::pin(provisioning_publish(p, session.sink(), publish)).await
                    }
                }
            }
        }))
    })
}

/// By reference: the service's future holds the packet once (this future exists per PUBLISH).
/// Answers how to acknowledge it, or `Close` when its payload could not be read.
async fn publish_v5(
    session: &V5Session,
    publish: &v5::Publish,
) -> Result<Result<(), Rejection>, Close> {
    let topic = publish.publish_topic();
    let wait = publish.qos() != codec::QoS::AtMostOnce;
    let max = session.inner.ctx.state.config.mqtt_max_payload_bytes;
    let result = match crate::ingest::check_size(publish.payload_size(), max) {
        Err(rejection) => session.inner.reject(topic, rejection),
        Ok(()) => {
            let payload = publish.read_all().await.map_err(|_| Close)?;
            session.inner.publish(topic, wait, payload).await
        }
    };
    Ok(result.map(|reply| {
        if let Some(reply) = reply {
            super::session::send_reply(&session.sink, reply);
        }
    }))
}

impl super::session::Outbound for v5::MqttSink {
    fn end(&self, reason: DisconnectReason) {
        self.close_with_reason(codec::Disconnect {
            reason_code: disconnect_code(reason),
            reason_string: Some(ByteString::from(super::describe(reason))),
            ..Default::default()
        });
    }

    fn send_qos0(&self, topic: String, payload: ntex::util::Bytes) {
        let _ = self.publish(topic).send_at_most_once(payload);
    }

    fn send_qos1(
        &self,
        topic: String,
        payload: ntex::util::Bytes,
    ) -> std::pin::Pin<Box<dyn Future<Output = bool>>> {
        let sent = self.publish(topic).send_at_least_once(payload);
        Box::pin(async move { sent.await.is_ok_and(|ack| (ack.reason_code as u8) < 0x80) })
    }
}
