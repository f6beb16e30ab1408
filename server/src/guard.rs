//! What one network address may hold of a listener: connections open at once and new
//! connections per window (MQTT and HTTP each have their own table), and the log of what was
//! refused or broken off, which says so once per interval, not once per connection: a flood must
//! not become a flood of log lines.
//!
//! The check runs when a connection is accepted, before any byte of it is read; a connection over
//! a bound is closed at once. Addresses in `STEAD_CONNECTION_LIMIT_EXEMPT` (loopback by default:
//! load generators and sidecars) and `STEAD_TRUSTED_PROXIES` (a proxy speaks for many clients)
//! are not counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::TrustedProxies;
use crate::ingress::Rate;

/// How often the log says what was refused (or broken off), at most, per kind.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over the bound on connections open at once from one address.
    TooMany,
    /// Over the bound on new connections per window from one address.
    TooOften,
}

impl Refused {
    /// The reason, as the log and the metrics' `reason` label say it.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::TooMany => "too many connections from one address",
            Refused::TooOften => "connecting too often from one address",
        }
    }
}

/// One address's connections: open now, and new ones per window of the rate.
#[derive(Default)]
struct Seen {
    open: u32,
    /// (window start, connections in it) per window of the rate.
    windows: Vec<(Instant, u64)>,
}

/// The bounds of one listener (MQTT or HTTP) on what one address holds.
pub struct AddressLimits {
    what: &'static str,
    /// Connections open at once per address; 0: no bound.
    max_open: usize,
    /// New connections per address; none: no bound.
    rate: Option<Rate>,
    exempt: Vec<TrustedProxies>,
    table: Mutex<Table>,
    refusals: Throttled,
    metric: Option<prometheus::IntCounterVec>,
}

#[derive(Default)]
struct Table {
    seen: HashMap<IpAddr, Seen>,
    /// The size at which ended entries are swept out next.
    sweep_at: usize,
}

impl AddressLimits {
    /// `what` names the listener in the log (`MQTT`, `HTTP`); `metric` counts the refusals by
    /// reason.
    pub fn new(
        what: &'static str,
        max_open: usize,
        rate: Option<Rate>,
        exempt: Vec<TrustedProxies>,
        metric: Option<prometheus::IntCounterVec>,
    ) -> Arc<AddressLimits> {
        Arc::new(AddressLimits {
            what,
            max_open,
            rate,
            exempt,
            table: Mutex::new(Table {
                seen: HashMap::new(),
                sweep_at: 1024,
            }),
            refusals: Throttled::default(),
            metric,
        })
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.exempt.iter().any(|list| list.contains(ip))
    }

    /// Admits a new connection from `peer`: a permit it holds for as long as it is open, or why
    /// not (counted and logged here).
    pub fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Permit, Refused> {
        let Some(ip) = peer.map(canonical).filter(|ip| !self.exempt(*ip)) else {
            return Ok(Permit {
                limits: self.clone(),
                ip: None,
            });
        };
        let verdict = self.count_in(ip, Instant::now());
        match verdict {
            Ok(()) => Ok(Permit {
                limits: self.clone(),
                ip: Some(ip),
            }),
            Err(refused) => {
                if let Some(metric) = &self.metric {
                    metric.with_label_values(&[refused.reason()]).inc();
                }
                if let Some(more) = self.refusals.due(refused.reason()) {
                    tracing::warn!(
                        peer = %ip,
                        reason = refused.reason(),
                        refused_since_last_line = more,
                        "{} connection refused",
                        self.what
                    );
                }
                Err(refused)
            }
        }
    }

    fn count_in(&self, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        let mut table = locked(&self.table);
        if table.seen.len() >= table.sweep_at {
            let rate = self.rate.as_ref();
            table
                .seen
                .retain(|_, seen| seen.open > 0 || !windows_over(rate, &seen.windows, now));
            table.sweep_at = (table.seen.len() * 2).max(1024);
        }
        let seen = table.seen.entry(ip).or_default();
        if self.max_open > 0 && seen.open as usize >= self.max_open {
            return Err(Refused::TooMany);
        }
        if let Some(rate) = &self.rate {
            if seen.windows.len() != rate.windows().len() {
                seen.windows = vec![(now, 0); rate.windows().len()];
            }
            for ((limit, len_ms), (start, used)) in rate.windows().iter().zip(&mut seen.windows) {
                if now.duration_since(*start) >= window(*len_ms) {
                    *start = now;
                    *used = 0;
                }
                if *used >= *limit {
                    return Err(Refused::TooOften);
                }
            }
            for (_, used) in &mut seen.windows {
                *used += 1;
            }
        }
        seen.open += 1;
        Ok(())
    }

    /// Counts a connection that broke off for a reason of its own making (no request in time,
    /// a malformed first packet) and logs it, once per interval per reason.
    pub fn broken_off(
        &self,
        peer: Option<IpAddr>,
        reason: &'static str,
        detail: &dyn std::fmt::Display,
    ) {
        if let Some(metric) = &self.metric {
            metric.with_label_values(&[reason]).inc();
        }
        if let Some(more) = self.refusals.due(reason) {
            tracing::info!(
                peer = %peer.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
                reason,
                error = %detail,
                closed_since_last_line = more,
                "{} connection closed",
                self.what
            );
        }
    }

    /// Connections open now from `ip` (for tests and the log).
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        locked(&self.table)
            .seen
            .get(&canonical(ip))
            .map_or(0, |s| s.open)
    }

    fn release(&self, ip: IpAddr) {
        let mut table = locked(&self.table);
        if let Some(seen) = table.seen.get_mut(&ip) {
            seen.open = seen.open.saturating_sub(1);
            if seen.open == 0 && self.rate.is_none() {
                table.seen.remove(&ip);
            }
        }
    }
}

fn window(len_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(len_ms).unwrap_or(0))
}

/// Whether every window of an address's counts has ended: the entry may go.
fn windows_over(rate: Option<&Rate>, windows: &[(Instant, u64)], now: Instant) -> bool {
    let Some(rate) = rate else { return true };
    rate.windows()
        .iter()
        .zip(windows)
        .all(|((_, len_ms), (start, _))| now.duration_since(*start) >= window(*len_ms))
}

/// An IPv4 address mapped into IPv6 (a dual-stack listener's view) counts as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Held by an open connection; its end frees its place.
pub struct Permit {
    limits: Arc<AddressLimits>,
    ip: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            self.limits.release(ip);
        }
    }
}

/// Says "this happened" at most once per `LOG_EVERY` per kind, with how often it happened since
/// the last line.
#[derive(Default)]
pub struct Throttled {
    kinds: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl Throttled {
    /// Notes one event of `kind`: `Some(n)` when it should be logged now (`n` events of that
    /// kind were not logged since the last line), `None` when it was only counted.
    pub fn due(&self, kind: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut kinds = locked(&self.kinds);
        match kinds.get_mut(kind) {
            Some((last, skipped)) if now.duration_since(*last) < LOG_EVERY => {
                *skipped += 1;
                None
            }
            Some((last, skipped)) => {
                let n = *skipped;
                *last = now;
                *skipped = 0;
                Some(n)
            }
            None => {
                kinds.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bounds_open_connections_per_address_and_frees_them() {
        let limits = AddressLimits::new("test", 2, None, vec![], None);
        let a = limits.admit(Some(ip("10.0.0.1"))).unwrap();
        let _b = limits.admit(Some(ip("10.0.0.1"))).unwrap();
        assert_eq!(
            limits.admit(Some(ip("10.0.0.1"))).err(),
            Some(Refused::TooMany)
        );
        // Another address has its own count; an IPv4-mapped IPv6 address is the IPv4 one.
        let _c = limits.admit(Some(ip("10.0.0.2"))).unwrap();
        assert_eq!(
            limits.admit(Some(ip("::ffff:10.0.0.1"))).err(),
            Some(Refused::TooMany)
        );
        drop(a);
        assert_eq!(limits.open_from(ip("10.0.0.1")), 1);
        let _d = limits.admit(Some(ip("10.0.0.1"))).unwrap();
    }

    #[test]
    fn bounds_new_connections_per_window() {
        let limits =
            AddressLimits::new("test", 0, Some(Rate::parse("3:60").unwrap()), vec![], None);
        for _ in 0..3 {
            drop(limits.admit(Some(ip("10.0.0.1"))).unwrap());
        }
        assert_eq!(
            limits.admit(Some(ip("10.0.0.1"))).err(),
            Some(Refused::TooOften)
        );
        assert!(limits.admit(Some(ip("10.0.0.2"))).is_ok());
    }

    #[test]
    fn exempt_addresses_and_unknown_peers_are_not_counted() {
        let exempt = TrustedProxies::parse("127.0.0.0/8,::1").unwrap();
        let limits = AddressLimits::new("test", 1, None, vec![exempt], None);
        let held: Vec<_> = (0..10)
            .map(|_| limits.admit(Some(ip("127.0.0.1"))).unwrap())
            .chain((0..10).map(|_| limits.admit(None).unwrap()))
            .collect();
        assert_eq!(held.len(), 20);
        assert_eq!(limits.open_from(ip("127.0.0.1")), 0);
    }

    #[test]
    fn logs_once_per_interval() {
        let log = Throttled::default();
        assert_eq!(log.due("a"), Some(0));
        assert_eq!(log.due("a"), None);
        assert_eq!(log.due("b"), Some(0));
        assert_eq!(log.due("a"), None);
    }
}
