//! MQTT 3.1.1: refusals end the connection (CONNACK return codes 4/5) or drop the message; after
//! repeated abuse the connection is closed.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use ntex::service::{ServiceFactory, fn_factory_with_config, fn_service};
use ntex::time::Seconds;
use ntex_mqtt::Control;
use ntex_mqtt::v3::{self, codec};
use stead_api_types::DisconnectReason;

use super::filters::Verdict;
use super::session::{
    Admitted, ConnectRequest, Connection, ProvisioningSession, Refusal, Rejection, State, admit,
    peer_of,
};
use super::{Close, IngressCtx};

pub type V3Session = Connection<v3::MqttSink>;
/// A device's connection, or a provisioning-only one.
pub type V3State = State<v3::MqttSink>;

pub fn keep_alive_timeout(ctx: &IngressCtx, requested: u16) -> Seconds {
    let cfg = &ctx.state.config;
    let ka = if requested == 0 {
        cfg.mqtt_keep_alive_max_secs
    } else {
        requested.clamp(cfg.mqtt_keep_alive_min_secs, cfg.mqtt_keep_alive_max_secs)
    };
    // The spec's grace: one and a half keep-alive periods.
    Seconds(ka + ka / 2)
}

async fn handshake(
    ctx: Arc<IngressCtx>,
    hs: v3::Handshake,
) -> Result<v3::HandshakeAck<V3State>, Close> {
    let pkt = hs.packet();
    let keep_alive = pkt.keep_alive;
    let request = ConnectRequest {
        peer: peer_of(hs.io()),
        login: ConnectRequest::login(pkt.username.as_ref(), pkt.password.as_ref(), &pkt.client_id),
        will: pkt
            .last_will
            .as_ref()
            .map(|w| (w.topic.to_string(), w.message.clone())),
        protocol: "MQTT 3.1.1",
    };
    let (session, kick) = match admit(&ctx, request).await {
        Ok(Admitted::Device(session, kick)) => (session, kick),
        Ok(Admitted::Provisioning(p)) => return Ok(provisioning_ack(&ctx, hs, p, keep_alive)),
        Err(Refusal::BadCredentials) => return Ok(hs.bad_username_or_pwd()),
        Err(Refusal::NotAuthorized) => return Ok(hs.not_authorized()),
        Err(Refusal::Unavailable) => return Ok(hs.service_unavailable()),
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
    let timeout = keep_alive_timeout(&ctx, keep_alive);
    Ok(hs
        .ack(
            State::Device(V3Session {
                inner: session,
                sink,
                ended,
                filters: super::filters::Filters::new(ctx.state.config.mqtt_max_subscriptions),
            }),
            false,
        )
        .idle_timeout(timeout))
}

fn provisioning_ack(
    ctx: &IngressCtx,
    hs: v3::Handshake,
    p: ProvisioningSession,
    keep_alive: u16,
) -> v3::HandshakeAck<V3State> {
    hs.ack(State::Provisioning(p), false)
        .idle_timeout(keep_alive_timeout(ctx, keep_alive))
}

/// A provisioning connection's packets: one topic to subscribe to, one to publish to; anything
/// else ends the connection (MQTT 3.1.1 cannot refuse a publish).
fn provisioning_protocol(
    p: &ProvisioningSession,
    msg: v3::ProtocolMessage,
) -> v3::ProtocolMessageAck {
    match msg {
        v3::ProtocolMessage::Subscribe(mut sub) => {
            for mut s in sub.iter_mut() {
                if p.may_subscribe(s.topic().as_ref()) {
                    s.confirm(codec::QoS::AtLeastOnce.min(s.qos()));
                } else {
                    s.fail();
                }
            }
            sub.ack()
        }
        other => other.ack(),
    }
}

async fn provisioning_publish(
    p: &ProvisioningSession,
    sink: &v3::MqttSink,
    publish: v3::Publish,
) -> Result<(), Close> {
    let topic = publish.publish_topic().to_owned();
    let size = publish.payload_size();
    let reply = p
        .publish(&topic, size, async { publish.read_all().await.ok() })
        .await
        .map_err(|_| Close)?;
    let _ = sink.publish(reply.topic).send_at_most_once(reply.payload);
    Ok(())
}

pub async fn handshake_service(
    ctx: Arc<IngressCtx>,
    hs: v3::Handshake,
) -> Result<v3::HandshakeAck<V3State>, Close> {
    handshake(ctx, hs).await
}

pub fn protocol() -> impl ServiceFactory<
    v3::ProtocolMessage,
    v3::Session<V3State>,
    Response = v3::ProtocolMessageAck,
    Error = Close,
    InitError = Close,
> {
    fn_factory_with_config(|session: v3::Session<V3State>| async move {
        Ok::<_, Close>(fn_service(move |msg: v3::ProtocolMessage| {
            let session = session.clone();
            async move {
                let session = match &*session {
                    State::Device(device) => device,
                    State::Provisioning(p) => return Ok(provisioning_protocol(p, msg)),
                };
                Ok::<_, Close>(match msg {
                    v3::ProtocolMessage::Subscribe(mut sub) => {
                        let mut filters = 0;
                        for mut s in sub.iter_mut() {
                            filters += 1;
                            let topic = s.topic().to_string();
                            let granted = codec::QoS::AtLeastOnce.min(s.qos());
                            if session.filters.verdict(&topic, &session.inner) == Verdict::Over {
                                s.fail();
                            } else if session.inner.may_subscribe(&topic, granted as u8) {
                                session.filters.held(&topic);
                                s.confirm(granted);
                            } else {
                                session.filters.refused();
                                s.fail();
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
                    v3::ProtocolMessage::Unsubscribe(unsub) => {
                        for topic in unsub.iter() {
                            session.filters.released(topic, &session.inner);
                        }
                        unsub.ack()
                    }
                    v3::ProtocolMessage::Disconnect(d) => {
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
    v3::Session<V3State>,
    Response = Option<v3::codec::Encoded>,
    Error = Close,
    InitError = Close,
> {
    fn_factory_with_config(|session: v3::Session<V3State>| async move {
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
    v3::Publish,
    v3::Session<V3State>,
    Response = (),
    Error = Close,
    InitError = Close,
> {
    fn_factory_with_config(|session: v3::Session<V3State>| async move {
        Ok::<_, Close>(fn_service(move |publish: v3::Publish| {
            let session = session.clone();
            async move {
                match &*session {
                    State::Device(device) => publish_v3(device, &publish).await,
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
async fn publish_v3(session: &V3Session, publish: &v3::Publish) -> Result<(), Close> {
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
    match result {
        Ok(Some(reply)) => {
            super::session::send_reply(&session.sink, reply);
            Ok(())
        }
        Ok(None) => Ok(()),
        // Nothing was stored and nothing is acknowledged: closing makes the client resend.
        Err(Rejection::Unavailable(_)) => Err(Close),
        // Refused for some devices behind a gateway (on their timelines), the rest stored: the
        // gateway and its other devices keep their connection.
        Err(Rejection::SubDevices(_)) => Ok(()),
        // Valid data over the limit must not be acknowledged (it was not stored): MQTT 3.1.1
        // cannot refuse one message, so the connection ends and the client resends it later.
        Err(Rejection::RateLimited(_) | Rejection::QuotaExceeded(_)) if wait => {
            session.ended.set(Some(DisconnectReason::RateLimited));
            Err(Close)
        }
        // A message that can never be stored (bad payload, unknown topic): MQTT 3.1.1 has no
        // negative acknowledgement, so it is dropped (and acknowledged, or the client would resend
        // it forever) until repeated abuse closes the connection.
        Err(_) if session.inner.abusive() => {
            session.ended.set(Some(DisconnectReason::ProtocolError));
            Err(Close)
        }
        Err(_) => Ok(()),
    }
}

impl super::session::Outbound for v3::MqttSink {
    fn end(&self, _reason: DisconnectReason) {
        // MQTT 3.1.1 has no server DISCONNECT: the connection just closes.
        self.close();
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
        Box::pin(async move { sent.await.is_ok() })
    }
}
