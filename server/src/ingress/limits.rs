//! Rate limits: rate strings (`count:seconds[,count:seconds…]`, as ThingsBoard writes them and
//! `getSessionLimits` reports them) and fixed-window limiters for messages and data points.

/// A parsed rate string such as `200:1,6000:60`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    windows: Vec<(u64, i64)>,
}

impl Rate {
    /// (count, window length in ms) per window.
    pub fn windows(&self) -> &[(u64, i64)] {
        &self.windows
    }

    pub fn parse(s: &str) -> Result<Rate, String> {
        let mut windows = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (count, secs) = part
                .split_once(':')
                .ok_or_else(|| format!("{part:?} is not count:seconds"))?;
            let count: u64 = count
                .trim()
                .parse()
                .map_err(|_| format!("{count:?} is not a count"))?;
            let secs: i64 = secs
                .trim()
                .parse()
                .map_err(|_| format!("{secs:?} is not a number of seconds"))?;
            if count == 0 || secs <= 0 {
                return Err(format!("{part:?}: count and seconds must be positive"));
            }
            windows.push((count, secs * 1000));
        }
        if windows.is_empty() {
            return Err("a rate needs at least one count:seconds".into());
        }
        Ok(Rate { windows })
    }
}

impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Rate::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .windows
            .iter()
            .map(|(c, ms)| format!("{c}:{}", ms / 1000))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone)]
struct Windows {
    rate: Rate,
    /// (window start, used) per window of the rate.
    state: Vec<(i64, u64)>,
}

impl Windows {
    fn new(rate: Rate) -> Windows {
        let state = vec![(0, 0); rate.windows.len()];
        Windows { rate, state }
    }

    fn would_exceed(&mut self, now: i64, n: u64) -> Option<(u64, i64)> {
        for (i, (limit, len)) in self.rate.windows.iter().enumerate() {
            let (start, used) = &mut self.state[i];
            if now - *start >= *len {
                *start = now;
                *used = 0;
            }
            if *used + n > *limit {
                return Some((*limit, *len / 1000));
            }
        }
        None
    }

    fn add(&mut self, n: u64) {
        for (_, used) in &mut self.state {
            *used += n;
        }
    }

    /// Takes on `rate`; the counts go when it differs (new windows, new counts).
    fn set_rate(&mut self, rate: &Rate) {
        if self.rate != *rate {
            *self = Windows::new(rate.clone());
        }
    }

    /// Whether every window has ended by `now`: the counts no longer matter.
    fn idle(&self, now: i64) -> bool {
        self.rate
            .windows
            .iter()
            .zip(&self.state)
            .all(|((_, len), (start, _))| now - start >= *len)
    }
}

/// Messages and data points, each against its own rate.
#[derive(Debug, Clone)]
pub struct Limiter {
    messages: Windows,
    points: Windows,
}

impl Limiter {
    pub fn new(messages: Rate, points: Rate) -> Limiter {
        Limiter {
            messages: Windows::new(messages),
            points: Windows::new(points),
        }
    }

    /// Admits one message carrying `points` data points, or says which limit it would break.
    pub fn admit(&mut self, now: i64, points: u64) -> Result<(), String> {
        if let Some((limit, secs)) = self.messages.would_exceed(now, 1) {
            return Err(format!("more than {limit} messages in {secs} s"));
        }
        if let Some((limit, secs)) = self.points.would_exceed(now, points) {
            return Err(format!("more than {limit} data points in {secs} s"));
        }
        self.messages.add(1);
        self.points.add(points);
        Ok(())
    }

    /// Takes on new rates (the tenant's or profile's limits changed); the counts of a rate that
    /// stayed the same are kept.
    pub fn set_rates(&mut self, messages: &Rate, points: &Rate) {
        self.messages.set_rate(messages);
        self.points.set_rate(points);
    }

    /// Whether all its windows have ended: it may be forgotten.
    pub fn idle(&self, now: i64) -> bool {
        self.messages.idle(now) && self.points.idle(now)
    }
}

/// Each device's limiter on this node, shared by its MQTT sessions (one after another: a
/// reconnect, or a take-over, goes on counting where the last one stopped) and the HTTP device
/// API. A limiter nobody holds whose windows have all ended is forgotten when the map grows, never
/// one that still counts.
#[derive(Default)]
pub struct DeviceLimiters {
    map: std::sync::Mutex<
        std::collections::HashMap<crate::ids::DeviceId, std::sync::Arc<std::sync::Mutex<Limiter>>>,
    >,
}

/// Past this many limiters the idle ones are forgotten.
const LIMITERS_KEPT: usize = 100_000;

impl DeviceLimiters {
    /// The device's limiter with these rates: the one it has, or a new one.
    pub fn get(
        &self,
        device: crate::ids::DeviceId,
        messages: &Rate,
        points: &Rate,
    ) -> std::sync::Arc<std::sync::Mutex<Limiter>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= LIMITERS_KEPT && !map.contains_key(&device) {
            let now = crate::telemetry::now_ms();
            map.retain(|_, l| {
                std::sync::Arc::strong_count(l) > 1
                    || !l.lock().unwrap_or_else(|p| p.into_inner()).idle(now)
            });
        }
        let limiter = map
            .entry(device)
            .or_insert_with(|| {
                std::sync::Arc::new(std::sync::Mutex::new(Limiter::new(
                    messages.clone(),
                    points.clone(),
                )))
            })
            .clone();
        limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_rates(messages, points);
        limiter
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The tenant-wide rates, counted across nodes. Windows are aligned on the clock (the window
/// of `now` is `now / length`), so every node counts into the same one: each node admits
/// against every node's total at its last sync plus what it admitted since, and adds its counts
/// to the shared counters every `TENANT_SYNC` (one pipelined round trip for all tenants), never
/// on the PUBACK path. Nodes together may pass a limit by what they admit within one sync. On
/// the embedded default the shared counters are in process and the count is exact.
#[derive(Default)]
pub struct TenantRates {
    tenants: std::sync::Mutex<std::collections::HashMap<crate::ids::TenantId, TenantCounts>>,
}

/// How often a node shares its tenant counts.
pub const TENANT_SYNC: std::time::Duration = std::time::Duration::from_millis(100);

struct TenantCounts {
    messages: Rate,
    points: Rate,
    /// Per window of the messages' rate, then the points' rate.
    windows: Vec<SharedWindow>,
}

#[derive(Debug, Clone, Copy, Default)]
struct SharedWindow {
    /// `now / length` of the window being counted.
    index: i64,
    /// Every node's count at the last sync.
    shared: u64,
    /// Admitted here since.
    pending: u64,
}

impl TenantCounts {
    fn new(messages: &Rate, points: &Rate) -> TenantCounts {
        let n = messages.windows.len() + points.windows.len();
        TenantCounts {
            messages: messages.clone(),
            points: points.clone(),
            windows: vec![SharedWindow::default(); n],
        }
    }

    /// (what, count, length) per window, in the order of `windows`.
    fn limits(&self) -> impl Iterator<Item = (&'static str, u64, i64)> + '_ {
        let m = self
            .messages
            .windows
            .iter()
            .map(|(c, l)| ("messages", *c, *l));
        let p = self
            .points
            .windows
            .iter()
            .map(|(c, l)| ("data points", *c, *l));
        m.chain(p)
    }
}

fn shared_key(tenant: crate::ids::TenantId, what: &str, len: i64, index: i64) -> String {
    let what = if what == "messages" { "m" } else { "p" };
    format!("tenant-rate:{}:{what}{len}:{index}", tenant.0)
}

impl TenantRates {
    fn tenants(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<crate::ids::TenantId, TenantCounts>>
    {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits one message of `points` data points for the tenant, or says which limit it would
    /// pass.
    pub fn admit(
        &self,
        tenant: crate::ids::TenantId,
        messages: &Rate,
        points: &Rate,
        now: i64,
        n_points: u64,
    ) -> Result<(), String> {
        let mut tenants = self.tenants();
        let counts = tenants
            .entry(tenant)
            .or_insert_with(|| TenantCounts::new(messages, points));
        if counts.messages != *messages || counts.points != *points {
            *counts = TenantCounts::new(messages, points);
        }
        // Per message: no allocation, one pass to check and one to count.
        let TenantCounts {
            messages,
            points,
            windows,
        } = counts;
        let limits = messages
            .windows
            .iter()
            .map(|(c, l)| (1, "messages", *c, *l))
            .chain(
                points
                    .windows
                    .iter()
                    .map(|(c, l)| (n_points, "data points", *c, *l)),
            );
        for ((n, what, limit, len), w) in limits.clone().zip(windows.iter_mut()) {
            let index = now.div_euclid(len);
            if w.index != index {
                *w = SharedWindow {
                    index,
                    ..SharedWindow::default()
                };
            }
            if w.shared + w.pending + n > limit {
                return Err(format!("more than {limit} {what} in {} s", len / 1000));
            }
        }
        for ((n, ..), w) in limits.zip(windows.iter_mut()) {
            w.pending += n;
        }
        Ok(())
    }

    /// Forgets a tenant's counts here (its limits changed); the shared ones stay.
    pub fn forget(&self, tenant: crate::ids::TenantId) {
        self.tenants().remove(&tenant);
    }

    /// Adds this node's counts of the current windows to the shared ones and reads back every
    /// node's totals. A failed round trip keeps the counts for the next one.
    pub async fn sync(&self, live: &crate::live::LiveStore) {
        let now = crate::telemetry::now_ms();
        let mut adds = Vec::new();
        {
            let mut tenants = self.tenants();
            // A tenant whose windows have all ended is forgotten.
            tenants.retain(|_, c| {
                c.limits()
                    .zip(&c.windows)
                    .any(|((_, _, len), w)| w.index == now.div_euclid(len) || w.pending > 0)
            });
            for (tenant, c) in tenants.iter() {
                for ((what, _, len), w) in c.limits().zip(&c.windows) {
                    if w.index == now.div_euclid(len) || w.pending > 0 {
                        adds.push((
                            *tenant,
                            shared_key(*tenant, what, len, w.index),
                            w.pending,
                            std::time::Duration::from_millis(2 * len as u64),
                        ));
                    }
                }
            }
        }
        if adds.is_empty() {
            return;
        }
        let counters: Vec<_> = adds
            .iter()
            .map(|(_, k, n, ttl)| (k.clone(), *n, *ttl))
            .collect();
        let totals = match live.add_and_read(&counters).await {
            Ok(totals) => totals,
            Err(e) => {
                tracing::warn!(error = %e, "sharing tenant rate counts failed; retrying");
                return;
            }
        };
        let mut tenants = self.tenants();
        for ((tenant, key, sent, _), total) in adds.iter().zip(totals) {
            let Some(c) = tenants.get_mut(tenant) else {
                continue;
            };
            let limits: Vec<_> = c.limits().collect();
            for ((what, _, len), w) in limits.into_iter().zip(&mut c.windows) {
                if shared_key(*tenant, what, len, w.index) == *key {
                    w.pending -= (*sent).min(w.pending);
                    w.shared = total;
                }
            }
        }
    }
}

/// Shares this node's tenant counts every `TENANT_SYNC`, for as long as the process runs.
pub async fn run_tenant_sync(state: crate::app::AppState) {
    let mut tick = tokio::time::interval(TENANT_SYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.sessions.tenant_rates.sync(&state.live).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tenant_rates_are_shared_between_nodes() {
        let live = crate::live::LiveStore::Memory(Default::default());
        let (a, b) = (TenantRates::default(), TenantRates::default());
        let tenant = crate::ids::TenantId(uuid::Uuid::new_v4());
        let (m, p) = (
            Rate::parse("5:60").unwrap(),
            Rate::parse("1000:60").unwrap(),
        );
        let now = crate::telemetry::now_ms();
        for _ in 0..3 {
            a.admit(tenant, &m, &p, now, 1).unwrap();
        }
        a.sync(&live).await;
        // Node b counts the tenant from its first message on; its next sync brings node a's
        // three: one more, not four.
        b.admit(tenant, &m, &p, now, 1).unwrap();
        b.sync(&live).await;
        b.admit(tenant, &m, &p, now, 1).unwrap();
        assert_eq!(
            b.admit(tenant, &m, &p, now, 1).unwrap_err(),
            "more than 5 messages in 60 s"
        );
        b.sync(&live).await;
        a.sync(&live).await;
        assert!(a.admit(tenant, &m, &p, now, 1).is_err());
        // The next window starts again.
        assert!(a.admit(tenant, &m, &p, now + 60_000, 1).is_ok());
    }

    #[test]
    fn rate_strings_round_trip() {
        let r = Rate::parse("200:1, 6000:60").unwrap();
        assert_eq!(r.to_string(), "200:1,6000:60");
        for bad in ["", "200", "a:1", "1:b", "0:1", "5:0", "5:-1"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_device_s_limiter_outlives_its_sessions_and_idle_ones_go() {
        let limiters = DeviceLimiters::default();
        let (m, p) = (Rate::parse("2:60").unwrap(), Rate::parse("100:60").unwrap());
        let device = crate::ids::DeviceId(uuid::Uuid::new_v4());
        let now = crate::telemetry::now_ms();
        {
            let first = limiters.get(device, &m, &p);
            let mut l = first.lock().unwrap();
            assert!(l.admit(now, 1).is_ok());
            assert!(l.admit(now, 1).is_ok());
        }
        // The next session (a reconnect) goes on counting.
        let second = limiters.get(device, &m, &p);
        assert!(second.lock().unwrap().admit(now, 1).is_err());
        // Other rates: new counts.
        let wider = Rate::parse("3:60").unwrap();
        let third = limiters.get(device, &wider, &p);
        assert!(third.lock().unwrap().admit(now, 1).is_ok());
        assert!(!third.lock().unwrap().idle(now));
        assert!(third.lock().unwrap().idle(now + 60_000));
    }

    #[test]
    fn limiter_counts_messages_and_points_per_window() {
        let mut l = Limiter::new(Rate::parse("3:1").unwrap(), Rate::parse("10:1").unwrap());
        assert!(l.admit(0, 4).is_ok());
        assert!(l.admit(10, 4).is_ok());
        assert_eq!(
            l.admit(20, 4).unwrap_err(),
            "more than 10 data points in 1 s"
        );
        assert!(l.admit(30, 2).is_ok());
        assert_eq!(l.admit(40, 0).unwrap_err(), "more than 3 messages in 1 s");
        // A new window starts after a second.
        assert!(l.admit(1000, 4).is_ok());
    }
}
