//! The MQTT device ingress. Until the MQTT protocol handler lands, the listener is bound (so the
//! port is reserved and configuration is checked) and every connection is closed at once.

use tokio::net::TcpListener;

pub async fn run(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                tracing::debug!(%peer, "MQTT is not served yet: connection closed");
                drop(socket);
            }
            Err(e) => {
                tracing::warn!(error = %e, "MQTT accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
