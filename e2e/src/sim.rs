//! The device simulator: one device, by access token, that behaves like a small ThingsBoard-SDK
//! client. It publishes telemetry on a timer, prints the shared attributes and server RPCs it
//! receives, and answers each RPC by echoing its params. For demos and poking at the ingress by
//! hand; it stops after `--duration` seconds or `--count` messages, whichever comes first.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

use crate::loadgen::{Sensor, TELEMETRY_TOPIC};
use crate::mqtt::{self, Broker, Event, Qos};

const ATTRIBUTES_TOPIC: &str = "v1/devices/me/attributes";
const RPC_REQUEST_FILTER: &str = "v1/devices/me/rpc/request/+";
const RPC_REQUEST_PREFIX: &str = "v1/devices/me/rpc/request/";
const RPC_RESPONSE_PREFIX: &str = "v1/devices/me/rpc/response/";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// MQTT address of the Stead ingress, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1884")]
    mqtt: Broker,
    /// The device's access token (the MQTT username).
    #[arg(long, env = "STEAD_DEVICE_TOKEN", hide_env_values = true)]
    token: String,
    /// Client id; random when absent.
    #[arg(long)]
    client_id: Option<String>,
    /// Speak MQTT 5 instead of 3.1.1.
    #[arg(long)]
    v5: bool,
    /// Milliseconds between telemetry messages; 0 sends none (listen only).
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Stop after this many telemetry messages (0 = no limit but the duration).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// QoS of telemetry, 0 or 1.
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// MQTT keep-alive, seconds.
    #[arg(long, default_value_t = 60)]
    keep_alive: u64,
    /// Print each telemetry message sent.
    #[arg(long)]
    verbose: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let qos = Qos::from_level(args.qos)?;
    if !(args.duration > 0.0 && args.duration <= 30.0 * 86_400.0) {
        bail!("--duration must be between 0 and 30 days");
    }
    let settings = mqtt::Settings {
        broker: args.mqtt.clone(),
        v5: args.v5,
        client_id: args
            .client_id
            .clone()
            .unwrap_or_else(|| format!("stead-sim-{}", uuid::Uuid::new_v4().simple())),
        username: args.token.clone(),
        password: String::new(),
        keep_alive: Duration::from_secs(args.keep_alive),
        inflight: 16,
        channel_capacity: 16,
        max_incoming_packet: 256 * 1024,
        max_outgoing_packet: 256 * 1024,
        connect_timeout_secs: 10,
    };
    let (client, mut eventloop) = mqtt::connection(&settings);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    // PUBLISHes written and PUBACKs received (telemetry and RPC responses alike).
    let (mut written, mut acked) = (0u64, 0u64);
    let mut sent: Option<u64> = None;

    eprintln!(
        "simulating one device on {} (MQTT {}), client id {}",
        args.mqtt,
        if args.v5 { "5" } else { "3.1.1" },
        settings.client_id
    );

    // The first poll connects; a refused CONNECT ends the simulation (retrying a bad token is
    // pointless), anything else is reported.
    match tokio::time::timeout_at(deadline, eventloop.poll()).await {
        Ok(Ok(Event::Connected)) => eprintln!("connected"),
        Ok(Ok(other)) => bail!("unexpected first event {other:?}"),
        Ok(Err(e)) => bail!("connect failed: {e}"),
        Err(_) => bail!("connect timed out"),
    }
    subscribe(&client).await;

    let mut telemetry = tokio::spawn(telemetry(
        client.clone(),
        qos,
        args.interval_ms,
        args.count,
        deadline,
        args.verbose,
    ));

    // The event loop, until the deadline. After a dropped connection, poll again (rumqttc
    // reconnects) after a pause and subscribe again (clean session).
    let mut reconnects = 0u32;
    let mut rpc_answered = 0u64;
    loop {
        let event = tokio::select! {
            event = eventloop.poll() => event,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        match event {
            Ok(Event::Connected) => {
                eprintln!("reconnected");
                subscribe(&client).await;
            }
            Ok(Event::Message { topic, payload }) => {
                let text = String::from_utf8_lossy(&payload);
                if topic == ATTRIBUTES_TOPIC {
                    println!("attributes: {text}");
                } else if let Some(id) = topic.strip_prefix(RPC_REQUEST_PREFIX) {
                    println!("rpc request {id}: {text}");
                    let answer = rpc_echo(&payload);
                    let response_topic = format!("{RPC_RESPONSE_PREFIX}{id}");
                    println!("rpc response {id}: {}", String::from_utf8_lossy(&answer));
                    // Never wait on the request channel from the task that drains it.
                    if let Err(e) = client.try_publish(&response_topic, Qos::AtLeastOnce, answer) {
                        eprintln!("could not queue the RPC response: {e:#}");
                    } else {
                        rpc_answered += 1;
                    }
                } else {
                    println!("message on {topic}: {text}");
                }
            }
            Ok(Event::Published { .. }) => written += 1,
            Ok(Event::PubAck { refused, .. }) => match refused {
                None => acked += 1,
                Some(reason) => eprintln!("publish refused: {reason}"),
            },
            Ok(Event::SubAck {
                refused: Some(reason),
            }) => eprintln!("subscription refused: {reason}"),
            Ok(Event::ServerDisconnect { reason }) => eprintln!("server sent DISCONNECT: {reason}"),
            Ok(_) => {}
            Err(e) => {
                if e.to_string().starts_with("CONNECT refused") {
                    eprintln!("connect refused: {e}");
                    break;
                }
                reconnects += 1;
                eprintln!("connection lost: {e}; reconnecting in 2 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
        if telemetry.is_finished() && args.interval_ms > 0 && args.count > 0 {
            // All messages queued: wait briefly until they are written and acknowledged.
            let n = (&mut telemetry).await.unwrap_or(0);
            sent = Some(n);
            let to_write = n + rpc_answered;
            let to_ack = if qos == Qos::AtLeastOnce { n } else { 0 } + rpc_answered;
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while written < to_write || acked < to_ack {
                    match eventloop.poll().await {
                        Ok(Event::Published { .. }) => written += 1,
                        Ok(Event::PubAck { refused: None, .. }) => acked += 1,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            })
            .await;
            break;
        }
    }
    let sent = match sent {
        Some(n) => n,
        None => telemetry.await.unwrap_or(0),
    };
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::DisconnectSent) {
                    break;
                }
            }
        })
        .await;
    }
    eprintln!(
        "done after {:.1} s: {sent} telemetry messages sent, {} PUBACKs, {rpc_answered} RPCs answered, {reconnects} reconnects",
        started.elapsed().as_secs_f64(),
        acked
    );
    Ok(ExitCode::SUCCESS)
}

async fn subscribe(client: &mqtt::Client) {
    for filter in [ATTRIBUTES_TOPIC, RPC_REQUEST_FILTER] {
        if let Err(e) = client.subscribe(filter, Qos::AtLeastOnce).await {
            eprintln!("subscribe {filter}: {e:#}");
        }
    }
}

/// The RPC answer: the request's `params`, or `{}` when it has none or is not JSON.
fn rpc_echo(request: &[u8]) -> Vec<u8> {
    let params = serde_json::from_slice::<serde_json::Value>(request)
        .ok()
        .and_then(|v| v.get("params").cloned())
        .unwrap_or_else(|| serde_json::json!({}));
    serde_json::to_vec(&params).unwrap_or_else(|_| b"{}".to_vec())
}

/// Telemetry on a timer until the count or the deadline; answers how many were queued.
async fn telemetry(
    client: mqtt::Client,
    qos: Qos,
    interval_ms: u64,
    count: u64,
    deadline: Instant,
    verbose: bool,
) -> u64 {
    if interval_ms == 0 {
        return 0;
    }
    let mut sensor = Sensor::new(u64::from(std::process::id()));
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    while count == 0 || seq < count {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
        let payload = sensor.next_payload(seq + 1);
        if verbose {
            println!("telemetry: {}", String::from_utf8_lossy(&payload));
        }
        match tokio::time::timeout_at(deadline, client.publish(TELEMETRY_TOPIC, qos, payload)).await
        {
            Ok(Ok(())) => seq += 1,
            Ok(Err(e)) => {
                eprintln!("telemetry stopped: {e:#}");
                break;
            }
            Err(_) => break,
        }
    }
    seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_echo_answers_params() {
        assert_eq!(
            rpc_echo(br#"{"method":"setGpio","params":{"pin":7,"value":1}}"#),
            br#"{"pin":7,"value":1}"#.to_vec()
        );
        assert_eq!(rpc_echo(br#"{"method":"reboot"}"#), b"{}".to_vec());
        assert_eq!(rpc_echo(b"not json"), b"{}".to_vec());
    }

    #[test]
    fn payload_is_small_json_with_four_numeric_keys() {
        let mut s = Sensor::new(7);
        let p = s.next_payload(42);
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 4);
        assert_eq!(o["seq"], 42);
        assert!(o.values().all(serde_json::Value::is_number));
        assert!(p.len() < 120, "{} bytes", p.len());
    }
}
