//! `stead-e2e`: drives Stead from the outside the way a fleet of devices would. `loadgen` connects
//! many devices over MQTT and measures what the ingress accepts and stores; `simulate` is one
//! interactive device for demos and manual testing; `simulate-ota` a fleet taking firmware
//! updates with scripted outcomes. All speak the ThingsBoard-compatible device API
//! (`/work/shared/DEVICE_API.md`) and only ever connect to the addresses they are given.

mod loadgen;
mod sim;
mod sim_ota;
mod sink;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "stead-e2e",
    version,
    about = "Device simulator and load generator for Stead"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect many devices, publish telemetry for a while, report throughput and latency, and
    /// optionally check that everything acknowledged was stored.
    Loadgen(Box<loadgen::Args>),
    /// One device: publishes telemetry, prints what the platform sends, answers RPCs by echo.
    Simulate(sim::Args),
    /// Many devices taking firmware updates: each downloads, verifies and reports like a
    /// ThingsBoard SDK, and succeeds, fails, hangs or reboot-loops as told (percentages).
    SimulateOta(Box<sim_ota::Args>),
    /// A fast webhook receiver for the benchmarks: verifies every signature, counts what came.
    WebhookSink(sink::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Loadgen(args) => loadgen::run(*args).await,
        Command::Simulate(args) => sim::run(args).await,
        Command::SimulateOta(args) => sim_ota::run(*args).await,
        Command::WebhookSink(args) => sink::run(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A thin layer over rumqttc's two clients (MQTT 3.1.1 and 5) so that the simulator is written
/// once for both, plus the broker address both subcommands take. It turns rumqttc's events into
/// the few the simulator cares about. (The load generator writes MQTT itself: `loadgen::conn`.)
pub mod mqtt {
    use std::fmt;
    use std::str::FromStr;
    use std::time::Duration;

    use anyhow::{Context, bail};
    use rumqttc::v5 as r5;

    /// `HOST:PORT` of a broker.
    #[derive(Debug, Clone)]
    pub struct Broker {
        pub host: String,
        pub port: u16,
    }

    impl FromStr for Broker {
        type Err = anyhow::Error;

        fn from_str(s: &str) -> anyhow::Result<Broker> {
            let (host, port) = s
                .rsplit_once(':')
                .with_context(|| format!("`{s}` is not HOST:PORT"))?;
            let port: u16 = port.parse().with_context(|| format!("bad port in `{s}`"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                bail!("`{s}` has no host");
            }
            Ok(Broker {
                host: host.to_owned(),
                port,
            })
        }
    }

    impl fmt::Display for Broker {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}:{}", self.host, self.port)
        }
    }

    /// Everything needed to open one device connection.
    #[derive(Debug, Clone)]
    pub struct Settings {
        pub broker: Broker,
        pub v5: bool,
        pub client_id: String,
        pub username: String,
        pub password: String,
        pub keep_alive: Duration,
        /// Unacknowledged QoS 1 publishes allowed at once.
        pub inflight: u16,
        /// Requests queued between the client handle and the event loop.
        pub channel_capacity: usize,
        /// Largest packet accepted from the broker.
        pub max_incoming_packet: usize,
        /// Largest packet this client will send.
        pub max_outgoing_packet: usize,
        /// TCP connect plus CONNECT/CONNACK, in whole seconds (rumqttc's unit).
        pub connect_timeout_secs: u64,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Qos {
        AtMostOnce,
        AtLeastOnce,
    }

    impl Qos {
        pub fn from_level(level: u8) -> anyhow::Result<Qos> {
            match level {
                0 => Ok(Qos::AtMostOnce),
                1 => Ok(Qos::AtLeastOnce),
                _ => bail!("QoS {level} is not supported (0 or 1)"),
            }
        }

        fn v4(self) -> rumqttc::QoS {
            match self {
                Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
                Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
            }
        }

        fn v5(self) -> r5::mqttbytes::QoS {
            match self {
                Qos::AtMostOnce => r5::mqttbytes::QoS::AtMostOnce,
                Qos::AtLeastOnce => r5::mqttbytes::QoS::AtLeastOnce,
            }
        }
    }

    /// What happened on a connection, reduced to what this tool acts on.
    #[derive(Debug)]
    pub enum Event {
        /// CONNACK with success; a refused CONNECT comes back as an error from `poll`.
        Connected,
        /// A PUBLISH was written to the socket (`pkid` 0 for QoS 0).
        Published {
            pkid: u16,
        },
        /// A PUBACK; `refused` carries the MQTT 5 reason when it is not a success.
        PubAck {
            pkid: u16,
            refused: Option<String>,
        },
        /// A message from the broker.
        Message {
            topic: String,
            payload: Vec<u8>,
        },
        /// A SUBACK; `refused` lists the filters' failure codes, if any.
        SubAck {
            refused: Option<String>,
        },
        /// The broker sent DISCONNECT (MQTT 5) with this reason.
        ServerDisconnect {
            reason: String,
        },
        /// Our DISCONNECT went out.
        DisconnectSent,
        Other,
    }

    /// The handle that sends requests to a connection's event loop.
    #[derive(Clone)]
    pub enum Client {
        V4(rumqttc::AsyncClient),
        V5(r5::AsyncClient),
    }

    /// The connection itself; it makes progress only while `poll` is being called.
    pub enum EventLoop {
        V4(Box<rumqttc::EventLoop>),
        V5(Box<r5::EventLoop>),
    }

    /// Builds a client and its (not yet connected) event loop; the first `poll` connects.
    pub fn connection(s: &Settings) -> (Client, EventLoop) {
        let inflight = s.inflight.max(1);
        if s.v5 {
            let mut o =
                r5::MqttOptions::new(s.client_id.clone(), s.broker.host.clone(), s.broker.port);
            // rumqttc asserts keep-alive >= 5 s for MQTT 5.
            o.set_keep_alive(s.keep_alive.max(Duration::from_secs(5)));
            o.set_credentials(s.username.clone(), s.password.clone());
            o.set_clean_start(true);
            o.set_connection_timeout(s.connect_timeout_secs.max(1));
            // Without an upper limit rumqttc sizes its in-flight table for 65,535 publishes per
            // connection; at 10,000 devices that alone is gigabytes.
            o.set_outgoing_inflight_upper_limit(inflight);
            o.set_max_packet_size(Some(
                u32::try_from(s.max_incoming_packet).unwrap_or(u32::MAX),
            ));
            let mut net = rumqttc::NetworkOptions::new();
            net.set_tcp_nodelay(true);
            net.set_connection_timeout(s.connect_timeout_secs.max(1));
            o.set_network_options(net);
            let (client, eventloop) = r5::AsyncClient::new(o, s.channel_capacity.max(1));
            (Client::V5(client), EventLoop::V5(Box::new(eventloop)))
        } else {
            let mut o = rumqttc::MqttOptions::new(
                s.client_id.clone(),
                s.broker.host.clone(),
                s.broker.port,
            );
            o.set_keep_alive(s.keep_alive.max(Duration::from_secs(1)));
            o.set_credentials(s.username.clone(), s.password.clone());
            o.set_clean_session(true);
            o.set_inflight(inflight);
            o.set_max_packet_size(s.max_incoming_packet, s.max_outgoing_packet);
            let (client, mut eventloop) = rumqttc::AsyncClient::new(o, s.channel_capacity.max(1));
            let mut net = rumqttc::NetworkOptions::new();
            net.set_tcp_nodelay(true);
            net.set_connection_timeout(s.connect_timeout_secs.max(1));
            eventloop.set_network_options(net);
            (Client::V4(client), EventLoop::V4(Box::new(eventloop)))
        }
    }

    impl Client {
        /// Queues a PUBLISH; waits while the request channel is full (the in-flight window).
        pub async fn publish(&self, topic: &str, qos: Qos, payload: Vec<u8>) -> anyhow::Result<()> {
            match self {
                Client::V4(c) => c.publish(topic, qos.v4(), false, payload).await?,
                Client::V5(c) => c.publish(topic, qos.v5(), false, payload).await?,
            }
            Ok(())
        }

        /// Queues a PUBLISH without waiting; fails when the request channel is full.
        pub fn try_publish(&self, topic: &str, qos: Qos, payload: Vec<u8>) -> anyhow::Result<()> {
            match self {
                Client::V4(c) => c.try_publish(topic, qos.v4(), false, payload)?,
                Client::V5(c) => c.try_publish(topic, qos.v5(), false, payload)?,
            }
            Ok(())
        }

        pub async fn subscribe(&self, filter: &str, qos: Qos) -> anyhow::Result<()> {
            match self {
                Client::V4(c) => c.subscribe(filter, qos.v4()).await?,
                Client::V5(c) => c.subscribe(filter, qos.v5()).await?,
            }
            Ok(())
        }

        /// Queues a DISCONNECT without waiting.
        pub fn try_disconnect(&self) -> anyhow::Result<()> {
            match self {
                Client::V4(c) => c.try_disconnect()?,
                Client::V5(c) => c.try_disconnect()?,
            }
            Ok(())
        }
    }

    impl EventLoop {
        /// The next event. An error means the connection is gone (or was never made: a refused
        /// CONNECT, a timeout); its text is the reason. Calling `poll` again reconnects.
        pub async fn poll(&mut self) -> anyhow::Result<Event> {
            match self {
                EventLoop::V4(el) => {
                    use rumqttc::{Event as E, Outgoing as O, Packet as P};
                    let event = el
                        .poll()
                        .await
                        .map_err(|e| anyhow::anyhow!(v4_reason(&e)))?;
                    Ok(match event {
                        E::Incoming(P::ConnAck(_)) => Event::Connected,
                        E::Incoming(P::PubAck(a)) => Event::PubAck {
                            pkid: a.pkid,
                            refused: None,
                        },
                        E::Incoming(P::Publish(p)) => Event::Message {
                            topic: p.topic,
                            payload: p.payload.to_vec(),
                        },
                        E::Incoming(P::SubAck(s)) => {
                            let failed = s
                                .return_codes
                                .iter()
                                .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                                .count();
                            Event::SubAck {
                                refused: (failed > 0)
                                    .then(|| format!("{failed} filter(s) refused")),
                            }
                        }
                        E::Outgoing(O::Publish(pkid)) => Event::Published { pkid },
                        E::Outgoing(O::Disconnect) => Event::DisconnectSent,
                        _ => Event::Other,
                    })
                }
                EventLoop::V5(el) => {
                    use r5::Event as E;
                    use r5::mqttbytes::v5::{Packet as P, PubAckReason, SubscribeReasonCode};
                    use rumqttc::Outgoing as O;
                    let event = el
                        .poll()
                        .await
                        .map_err(|e| anyhow::anyhow!(v5_reason(&e)))?;
                    Ok(match event {
                        E::Incoming(P::ConnAck(_)) => Event::Connected,
                        E::Incoming(P::PubAck(a)) => Event::PubAck {
                            pkid: a.pkid,
                            refused: match a.reason {
                                // Mosquitto answers 0x10 when nobody subscribes: still accepted.
                                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                                other => Some(format!("PUBACK {other:?}")),
                            },
                        },
                        E::Incoming(P::Publish(p)) => Event::Message {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload.to_vec(),
                        },
                        E::Incoming(P::SubAck(s)) => {
                            let failed: Vec<String> = s
                                .return_codes
                                .iter()
                                .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                                .map(|c| format!("{c:?}"))
                                .collect();
                            Event::SubAck {
                                refused: (!failed.is_empty()).then(|| failed.join(", ")),
                            }
                        }
                        E::Incoming(P::Disconnect(d)) => Event::ServerDisconnect {
                            reason: format!("{:?}", d.reason_code),
                        },
                        E::Outgoing(O::Publish(pkid)) => Event::Published { pkid },
                        E::Outgoing(O::Disconnect) => Event::DisconnectSent,
                        _ => Event::Other,
                    })
                }
            }
        }
    }

    /// A short, stable reason, so failures can be grouped and counted.
    fn v4_reason(e: &rumqttc::ConnectionError) -> String {
        use rumqttc::ConnectionError as C;
        match e {
            C::ConnectionRefused(code) => format!("CONNECT refused: {code:?}"),
            C::NetworkTimeout => "timeout (TCP connect or CONNACK)".to_owned(),
            C::Io(io) => format!("I/O: {io}"),
            C::MqttState(rumqttc::StateError::ConnectionAborted) => {
                "connection closed by the broker".to_owned()
            }
            other => other.to_string(),
        }
    }

    fn v5_reason(e: &r5::ConnectionError) -> String {
        use r5::ConnectionError as C;
        match e {
            C::ConnectionRefused(code) => format!("CONNECT refused: {code:?}"),
            C::Timeout(_) => "timeout (TCP connect or CONNACK)".to_owned(),
            C::Io(io) => format!("I/O: {io}"),
            C::MqttState(r5::StateError::ConnectionAborted) => {
                "connection closed by the broker".to_owned()
            }
            other => other.to_string(),
        }
    }
}
