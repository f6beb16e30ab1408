//! The floor of Stead's MQTT ingress stack: ntex-mqtt on ntex's tokio backend, configured as
//! Stead's ingress is (two worker threads), doing nothing a broker would not. The hot-path
//! benchmark runs against it like against Mosquitto (`e2e/bench/broker_baseline.sh`), which
//! tells how much of Stead's CPU per message the fixed stack spends before Stead's own work.
//!
//!   cargo build --release -p stead --example mqtt_floor
//!   FLOOR_MODE=ack target/release/examples/mqtt_floor 127.0.0.1:28884 &
//!   BROKER=127.0.0.1:28884 BROKER_PROCESS=mqtt_floor e2e/bench/broker_baseline.sh
//!
//! `FLOOR_MODE=ack` (default) acknowledges every PUBLISH as soon as its payload is read, as
//! Mosquitto does. `FLOOR_MODE=commit` adds the shape of Stead's durable acknowledgement without
//! the database: each PUBLISH is queued to a task on a separate tokio runtime that answers the
//! queued ones together every 2 ms (Stead's group commit interval), and the PUBACK waits for that
//! answer. `FLOOR_WORKERS` sets the ntex worker threads (2, Stead's default).

use std::time::Duration;

use ntex::service::{fn_factory_with_config, fn_service};
use ntex_mqtt::v3;
use tokio::sync::{mpsc, oneshot};

#[derive(Clone)]
enum Mode {
    Ack,
    Commit(mpsc::Sender<oneshot::Sender<()>>),
}

/// The group commit without a database: every 2 ms, answers what queued meanwhile.
async fn committer(mut rx: mpsc::Receiver<oneshot::Sender<()>>) {
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(Duration::from_millis(2)).await;
        waiting.push(first);
        while let Ok(next) = rx.try_recv() {
            waiting.push(next);
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// A PUBLISH: its payload read, then (`commit`) the wait for the group commit; acknowledged
/// when this returns.
async fn on_publish(mode: Mode, publish: v3::Publish) -> Result<(), ()> {
    let _payload = publish.read_all().await.map_err(|_| ())?;
    if let Mode::Commit(queue) = mode {
        let (done, committed) = oneshot::channel();
        queue.send(done).await.map_err(|_| ())?;
        committed.await.map_err(|_| ())?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:28884".into());
    let workers = std::env::var("FLOOR_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mode = match std::env::var("FLOOR_MODE").as_deref() {
        Ok("commit") => {
            let (tx, rx) = mpsc::channel(8192);
            main.spawn(committer(rx));
            Mode::Commit(tx)
        }
        Ok("ack") | Err(_) => Mode::Ack,
        Ok(other) => {
            eprintln!("FLOOR_MODE is ack or commit, not {other}");
            std::process::exit(2);
        }
    };
    let listener = std::net::TcpListener::bind(&addr)?;
    eprintln!("mqtt_floor listening on {addr}, {workers} workers");
    ntex::rt::System::build()
        .name("mqtt_floor")
        .build(ntex::rt::DefaultRuntime)
        .block_on(async move {
            ntex::server::build()
                .workers(workers)
                .disable_signals()
                .listen("mqtt", listener, async move |_| {
                    let mode = mode.clone();
                    v3::MqttServer::new(fn_service(|hs: v3::Handshake| async move {
                        Ok::<_, ()>(hs.ack((), false))
                    }))
                    .publish(fn_factory_with_config(move |_: v3::Session<()>| {
                        let mode = mode.clone();
                        async move {
                            Ok::<_, ()>(fn_service(move |p| on_publish(mode.clone(), p)))
                        }
                    }))
                })?
                .run()
                .await
        })
}
