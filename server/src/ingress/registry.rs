//! Which connection holds each device's session on this node, so that a new CONNECT can take
//! over, a revoked credential can end a session at once, and the platform can send the device
//! messages (shared attributes, commands).
//!
//! A device behind a gateway has no connection of its own: it is held through its gateway's
//! session (`register_sub`). Messages for it go to the gateway's session, which addresses them
//! to it by name; ending it ends only it, never the gateway.

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
    /// For a device behind this (gateway) session, named as the gateway knows it.
    DeliverSub {
        device: DeviceId,
        name: String,
        delivery: Box<Delivery>,
    },
    /// The device behind this (gateway) session is no longer held by it.
    EndSub {
        device: DeviceId,
        reason: DisconnectReason,
    },
}

/// What the registry gave a session for a device: its connection (a gateway's, for a device
/// behind it), and when and in which order on this node it got the device. The order is what a
/// presence record keeps (`live::state::Connect`): of two sessions on one node, the one
/// given the device later holds it, whichever presence write lands last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub conn_id: u64,
    /// When (ms).
    pub at: i64,
    /// This node's count of grants so far, this one included.
    pub seq: u64,
}

struct Entry {
    grant: Grant,
    tenant_id: TenantId,
    /// The credentials the session proved (`DeviceIdentity::stamp`).
    stamp: String,
    tx: mpsc::UnboundedSender<SessionMsg>,
}

/// A device held through its gateway's session `conn_id`.
struct SubEntry {
    gateway: DeviceId,
    /// The gateway's connection.
    grant: Grant,
    name: String,
}

/// A device this node holds, for the catch-up after an outage (`ingress::resync`).
#[derive(Debug, Clone)]
pub struct Held {
    pub device: DeviceId,
    /// Its own connection, or its gateway's.
    pub grant: Grant,
    /// The credentials its own connection proved; `None` behind a gateway.
    pub stamp: Option<String>,
}

#[derive(Default)]
struct Maps {
    sessions: HashMap<DeviceId, Entry>,
    subs: HashMap<DeviceId, SubEntry>,
    /// Grants so far (`Grant::seq`).
    grants: u64,
}

impl Maps {
    fn grant(&mut self, conn_id: u64) -> Grant {
        self.grants += 1;
        Grant {
            conn_id,
            at: crate::telemetry::now_ms(),
            seq: self.grants,
        }
    }

    /// The channel of the gateway session that holds `sub`, if that session is still current.
    fn gateway_of(&self, sub: &SubEntry) -> Option<&mpsc::UnboundedSender<SessionMsg>> {
        self.sessions
            .get(&sub.gateway)
            .filter(|g| g.grant.conn_id == sub.grant.conn_id)
            .map(|g| &g.tx)
    }

    /// Tells whoever holds `device` on this node to let go of it; answers whether one did.
    fn end(&self, device: DeviceId, reason: DisconnectReason) -> bool {
        if let Some(e) = self.sessions.get(&device) {
            return e.tx.send(SessionMsg::End(reason)).is_ok();
        }
        match self.subs.get(&device) {
            Some(sub) => self
                .gateway_of(sub)
                .is_some_and(|tx| tx.send(SessionMsg::EndSub { device, reason }).is_ok()),
            None => false,
        }
    }
}

#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    maps: Mutex<Maps>,
    /// Set when the node shuts down: a CONNECT still being authenticated is refused, not
    /// registered after every session has been told to end.
    closed: std::sync::atomic::AtomicBool,
}

impl Registry {
    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection for the device; an older one (its own, or through a gateway)
    /// is told it was taken over. `None` once the node is shutting down (`close`).
    pub fn register(
        &self,
        device: DeviceId,
        tenant_id: TenantId,
        stamp: String,
    ) -> Option<(Grant, mpsc::UnboundedReceiver<SessionMsg>)> {
        let conn_id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut maps = self.maps();
        // Checked under the lock that `close` takes: no registration slips in after it.
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        maps.end(device, DisconnectReason::TakenOver);
        maps.subs.remove(&device);
        let grant = maps.grant(conn_id);
        maps.sessions.insert(
            device,
            Entry {
                grant,
                tenant_id,
                stamp,
                tx,
            },
        );
        Some((grant, rx))
    }

    /// Forgets the connection; answers whether it was still the device's current one.
    pub fn unregister(&self, device: DeviceId, conn_id: u64) -> bool {
        let mut maps = self.maps();
        if maps
            .sessions
            .get(&device)
            .is_some_and(|e| e.grant.conn_id == conn_id)
        {
            maps.sessions.remove(&device);
            true
        } else {
            false
        }
    }

    /// Holds `device` (named `name` by its gateway) through the gateway's session `conn_id`;
    /// whoever held it before on this node lets go of it. `None` when that session is no longer
    /// the gateway's current one (it is ending).
    pub fn register_sub(
        &self,
        device: DeviceId,
        gateway: DeviceId,
        conn_id: u64,
        name: &str,
    ) -> Option<Grant> {
        let mut maps = self.maps();
        if maps
            .sessions
            .get(&gateway)
            .is_none_or(|g| g.grant.conn_id != conn_id)
        {
            return None;
        }
        let held_here = maps
            .subs
            .get(&device)
            .is_some_and(|s| s.gateway == gateway && s.grant.conn_id == conn_id);
        if !held_here {
            maps.end(device, DisconnectReason::TakenOver);
            maps.sessions.remove(&device);
        }
        let grant = maps.grant(conn_id);
        maps.subs.insert(
            device,
            SubEntry {
                gateway,
                grant,
                name: name.to_owned(),
            },
        );
        Some(grant)
    }

    /// Lets go of a device held through the gateway session `conn_id`; answers whether it was
    /// still held by it.
    pub fn unregister_sub(&self, device: DeviceId, conn_id: u64) -> bool {
        let mut maps = self.maps();
        if maps
            .subs
            .get(&device)
            .is_some_and(|s| s.grant.conn_id == conn_id)
        {
            maps.subs.remove(&device);
            true
        } else {
            false
        }
    }

    /// Ends the device's session on this node, if it has one (a device behind a gateway: only
    /// it, the gateway's session stays).
    pub fn kick(&self, device: DeviceId, reason: DisconnectReason) -> bool {
        self.maps().end(device, reason)
    }

    /// Ends the device's session on this node only while it is still connection `conn_id` (its
    /// own, or its gateway's): a late verdict on an old session never ends a newer one.
    pub fn kick_conn(&self, device: DeviceId, conn_id: u64, reason: DisconnectReason) -> bool {
        let maps = self.maps();
        let current = maps
            .sessions
            .get(&device)
            .map(|e| e.grant.conn_id)
            .or_else(|| {
                maps.subs
                    .get(&device)
                    .filter(|s| maps.gateway_of(s).is_some())
                    .map(|s| s.grant.conn_id)
            });
        current == Some(conn_id) && maps.end(device, reason)
    }

    /// Every device this node holds now.
    pub fn held(&self) -> Vec<Held> {
        let maps = self.maps();
        let own = maps.sessions.iter().map(|(device, e)| Held {
            device: *device,
            grant: e.grant,
            stamp: Some(e.stamp.clone()),
        });
        let subs = maps.subs.iter().map(|(device, s)| Held {
            device: *device,
            grant: s.grant,
            stamp: None,
        });
        own.chain(subs).collect()
    }

    /// Hands a message to the device's session on this node (its own, or its gateway's); false
    /// when it has none here.
    pub fn deliver(&self, device: DeviceId, delivery: Delivery) -> bool {
        let maps = self.maps();
        if let Some(e) = maps.sessions.get(&device) {
            return e.tx.send(SessionMsg::Deliver(Box::new(delivery))).is_ok();
        }
        let Some(sub) = maps.subs.get(&device) else {
            return false;
        };
        maps.gateway_of(sub).is_some_and(|tx| {
            tx.send(SessionMsg::DeliverSub {
                device,
                name: sub.name.clone(),
                delivery: Box::new(delivery),
            })
            .is_ok()
        })
    }

    /// Whether the device's session is on this node (its own, or its gateway's).
    pub fn holds(&self, device: DeviceId) -> bool {
        let maps = self.maps();
        maps.sessions.contains_key(&device) || maps.subs.contains_key(&device)
    }

    /// Ends every session of a tenant on this node (a gateway's takes its devices with it).
    pub fn kick_tenant(&self, tenant: TenantId, reason: DisconnectReason) -> usize {
        let maps = self.maps();
        maps.sessions
            .values()
            .filter(|e| e.tenant_id == tenant)
            .filter(|e| e.tx.send(SessionMsg::End(reason)).is_ok())
            .count()
    }

    /// Refuses new registrations from now on and tells every session to end; answers how many
    /// were told.
    pub fn close(&self, reason: DisconnectReason) -> usize {
        let maps = self.maps();
        self.closed.store(true, Ordering::Release);
        maps.sessions
            .values()
            .filter(|e| e.tx.send(SessionMsg::End(reason)).is_ok())
            .count()
    }

    /// Connections (devices behind gateways are not connections of their own).
    pub fn connected(&self) -> usize {
        self.maps().sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> DeviceId {
        DeviceId(uuid::Uuid::new_v4())
    }

    #[test]
    fn a_device_behind_a_gateway_is_reached_and_ended_through_it() {
        let registry = Registry::default();
        let (gateway, sub, tenant) = (id(), id(), TenantId(uuid::Uuid::new_v4()));
        let (grant, mut rx) = registry.register(gateway, tenant, String::new()).unwrap();
        let conn = grant.conn_id;
        let held = registry
            .register_sub(sub, gateway, conn, "thermo-1")
            .unwrap();
        assert_eq!((held.conn_id, held.seq), (conn, grant.seq + 1));
        assert!(
            registry
                .register_sub(sub, gateway, conn + 1, "thermo-1")
                .is_none()
        );
        assert!(registry.holds(sub));
        assert_eq!(registry.connected(), 1);

        assert!(registry.deliver(sub, Delivery::Attributes(serde_json::json!({"a": 1}))));
        match rx.try_recv().unwrap() {
            SessionMsg::DeliverSub { device, name, .. } => {
                assert_eq!((device, name.as_str()), (sub, "thermo-1"));
            }
            other => panic!("{other:?}"),
        }
        // Ending the sub-device tells the gateway's session, which stays.
        assert!(registry.kick(sub, DisconnectReason::Disabled));
        assert!(matches!(
            rx.try_recv().unwrap(),
            SessionMsg::EndSub { device, reason: DisconnectReason::Disabled } if device == sub
        ));
        assert!(registry.unregister_sub(sub, conn));
        assert!(!registry.holds(sub));
        assert!(!registry.deliver(sub, Delivery::Attributes(serde_json::json!({}))));
    }

    #[test]
    fn a_direct_connection_takes_a_device_over_from_its_gateway() {
        let registry = Registry::default();
        let (gateway, sub, tenant) = (id(), id(), TenantId(uuid::Uuid::new_v4()));
        let (grant, mut rx) = registry.register(gateway, tenant, String::new()).unwrap();
        let conn = grant.conn_id;
        assert!(registry.register_sub(sub, gateway, conn, "s").is_some());
        let (_, _own) = registry.register(sub, tenant, String::new()).unwrap();
        assert!(matches!(
            rx.try_recv().unwrap(),
            SessionMsg::EndSub {
                reason: DisconnectReason::TakenOver,
                ..
            }
        ));
        // The stale sub-device entry is gone: its gateway's late unregister changes nothing.
        assert!(!registry.unregister_sub(sub, conn));
        assert_eq!(registry.connected(), 2);
    }
}
