//! The tenant quota of telemetry data points per UTC day, shared by every node: each node counts
//! what it admits and adds it to the tenant's shared counter in the live store once a second,
//! reading back the total of all nodes. Admission checks this node's view (the total at its
//! last flush plus what it admitted since), so a Redis round trip never sits on the PUBACK path;
//! the price is that nodes together may go over by about a second of traffic (and a node that
//! had not seen the tenant yet today, by what it admits before its first flush).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::ids::TenantId;
use crate::ingest::Rejection;
use crate::live::LiveStore;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, Default)]
struct Day {
    day: i64,
    /// Every node's total at this node's last flush.
    shared: u64,
    /// Admitted here since.
    pending: u64,
}

#[derive(Default)]
pub struct DailyPoints {
    days: Mutex<HashMap<TenantId, Day>>,
}

fn key(tenant: TenantId, day: i64) -> String {
    format!("points:day:{}:{day}", tenant.0)
}

impl DailyPoints {
    fn days(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Day>> {
        self.days.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits `points` more for the tenant today, or refuses them when they would pass `quota`.
    pub fn admit(
        &self,
        tenant: TenantId,
        now_ms: i64,
        points: u64,
        quota: u64,
    ) -> Result<(), Rejection> {
        let today = now_ms.div_euclid(DAY_MS);
        let mut days = self.days();
        let day = days.entry(tenant).or_default();
        if day.day != today {
            *day = Day {
                day: today,
                ..Day::default()
            };
        }
        let used = day.shared + day.pending;
        if used + points > quota {
            return Err(Rejection::QuotaExceeded(format!(
                "the tenant's quota of {quota} data points per day is reached ({used} today); \
                 it starts again at 00:00 UTC, or the platform operator can raise it"
            )));
        }
        day.pending += points;
        Ok(())
    }

    /// Adds what this node admitted to the shared counters and reads back every node's total
    /// (for the tenants this node admitted nothing for since, it reads the total alone). A
    /// failed write keeps the count for the next flush; past days are forgotten.
    pub async fn flush(&self, live: &LiveStore) {
        let today = chrono::Utc::now().timestamp_millis().div_euclid(DAY_MS);
        let known: Vec<(TenantId, Day)> = {
            let mut days = self.days();
            days.retain(|_, d| d.day >= today || d.pending > 0);
            days.iter().map(|(t, d)| (*t, *d)).collect()
        };
        for (tenant, day) in known {
            let key = key(tenant, day.day);
            let total = if day.pending > 0 {
                live.add(&key, day.pending, Duration::from_millis(2 * DAY_MS as u64))
                    .await
            } else {
                live.count(&key).await
            };
            match total {
                Ok((total, _)) => {
                    let mut days = self.days();
                    if let Some(d) = days.get_mut(&tenant)
                        && d.day == day.day
                    {
                        d.pending -= day.pending.min(d.pending);
                        d.shared = total;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "daily data-point counts not shared yet"),
            }
        }
    }

    /// What a tenant used today, as every node flushed it.
    pub async fn used_today(live: &LiveStore, tenant: TenantId) -> anyhow::Result<u64> {
        let today = chrono::Utc::now().timestamp_millis().div_euclid(DAY_MS);
        Ok(live.count(&key(tenant, today)).await?.0)
    }
}

/// Flushes this node's counts once a second, for as long as the process runs.
pub async fn run(state: crate::app::AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.sessions.daily.flush(&state.live).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_holds_within_a_day_and_starts_again_the_next() {
        let d = DailyPoints::default();
        let t = TenantId(uuid::Uuid::new_v4());
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        assert!(d.admit(t, noon, 6, 10).is_ok());
        assert!(d.admit(t, noon, 4, 10).is_ok());
        assert!(matches!(
            d.admit(t, noon, 1, 10),
            Err(Rejection::QuotaExceeded(_))
        ));
        assert!(d.admit(t, noon + DAY_MS, 10, 10).is_ok(), "a new day");
        let other = TenantId(uuid::Uuid::new_v4());
        assert!(d.admit(other, noon, 10, 10).is_ok(), "tenants apart");
    }

    #[tokio::test]
    async fn flushing_shares_the_count() {
        let live = LiveStore::Memory(Default::default());
        let (a, b) = (DailyPoints::default(), DailyPoints::default());
        let t = TenantId(uuid::Uuid::new_v4());
        let now = chrono::Utc::now().timestamp_millis();
        a.admit(t, now, 7, 10).unwrap();
        a.flush(&live).await;
        b.admit(t, now, 2, 10).unwrap();
        b.flush(&live).await;
        assert_eq!(DailyPoints::used_today(&live, t).await.unwrap(), 9);
        // Node a sees node b's points at its next flush.
        a.flush(&live).await;
        assert!(a.admit(t, now, 2, 10).is_err());
        assert!(a.admit(t, now, 1, 10).is_ok());
    }
}
