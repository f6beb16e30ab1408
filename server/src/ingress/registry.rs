//! Which connection holds each device's session on this node, so that a new CONNECT can take
//! over, a revoked credential can end a session at once, and the platform can send the device
//! messages (shared attributes, commands).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use stead_api_types::DisconnectReason;
use tokio::sync::mpsc;

use super::Delivery;
use crate::ids::{DeviceId, TenantId};

/// What a session is told by the rest of the platform.
#[derive(Debug)]
pub enum SessionMsg {
    End(DisconnectReason),
    /// Boxed: a channel allocates room for 32 messages up front, and every session has one.
    Deliver(Box<Delivery>),
}

struct Entry {
    conn_id: u64,
    tenant_id: TenantId,
    tx: mpsc::UnboundedSender<SessionMsg>,
}

#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    sessions: Mutex<HashMap<DeviceId, Entry>>,
    /// Set when the node shuts down: a CONNECT still being authenticated is refused, not
    /// registered after every session has been told to end.
    closed: std::sync::atomic::AtomicBool,
}

impl Registry {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Entry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection for the device; an older one is told it was taken over.
    /// `None` once the node is shutting down (`close`).
    pub fn register(
        &self,
        device: DeviceId,
        tenant_id: TenantId,
    ) -> Option<(u64, mpsc::UnboundedReceiver<SessionMsg>)> {
        let conn_id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut sessions = self.sessions();
        // Checked under the lock that `close` takes: no registration slips in after it.
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let old = sessions.insert(
            device,
            Entry {
                conn_id,
                tenant_id,
                tx,
            },
        );
        drop(sessions);
        if let Some(old) = old {
            let _ = old.tx.send(SessionMsg::End(DisconnectReason::TakenOver));
        }
        Some((conn_id, rx))
    }

    /// Forgets the connection; answers whether it was still the device's current one.
    pub fn unregister(&self, device: DeviceId, conn_id: u64) -> bool {
        let mut sessions = self.sessions();
        if sessions.get(&device).is_some_and(|e| e.conn_id == conn_id) {
            sessions.remove(&device);
            true
        } else {
            false
        }
    }

    /// Ends the device's session on this node, if it has one.
    pub fn kick(&self, device: DeviceId, reason: DisconnectReason) -> bool {
        match self.sessions().get(&device) {
            Some(e) => e.tx.send(SessionMsg::End(reason)).is_ok(),
            None => false,
        }
    }

    /// Hands a message to the device's session on this node; false when it has none here.
    pub fn deliver(&self, device: DeviceId, delivery: Delivery) -> bool {
        match self.sessions().get(&device) {
            Some(e) => e.tx.send(SessionMsg::Deliver(Box::new(delivery))).is_ok(),
            None => false,
        }
    }

    /// Whether the device's session is on this node.
    pub fn holds(&self, device: DeviceId) -> bool {
        self.sessions().contains_key(&device)
    }

    /// Ends every session of a tenant on this node.
    pub fn kick_tenant(&self, tenant: TenantId, reason: DisconnectReason) -> usize {
        let sessions = self.sessions();
        sessions
            .values()
            .filter(|e| e.tenant_id == tenant)
            .filter(|e| e.tx.send(SessionMsg::End(reason)).is_ok())
            .count()
    }

    /// Refuses new registrations from now on and tells every session to end; answers how many
    /// were told.
    pub fn close(&self, reason: DisconnectReason) -> usize {
        let sessions = self.sessions();
        self.closed.store(true, Ordering::Release);
        sessions
            .values()
            .filter(|e| e.tx.send(SessionMsg::End(reason)).is_ok())
            .count()
    }

    pub fn connected(&self) -> usize {
        self.sessions().len()
    }
}
