//! In-process live state for the single-node embedded mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct MemoryStore {
    counters: Arc<Mutex<HashMap<String, (u64, Instant)>>>,
    pub(super) state: super::state::MemoryState,
}

impl MemoryStore {
    fn counters(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        // A panic while holding the lock leaves counters that are still usable.
        self.counters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn hit(&self, key: &str, window: Duration) -> (u64, Duration) {
        self.add(key, 1, window)
    }

    pub fn add(&self, key: &str, n: u64, window: Duration) -> (u64, Duration) {
        let now = Instant::now();
        let mut counters = self.counters();
        if counters.len() > 100_000 {
            counters.retain(|_, (_, until)| *until > now);
        }
        let entry = counters.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += n;
        (entry.0, entry.1 - now)
    }

    pub fn count(&self, key: &str) -> (u64, Duration) {
        let now = Instant::now();
        match self.counters().get(key) {
            Some((n, until)) if *until > now => (*n, *until - now),
            _ => (0, Duration::ZERO),
        }
    }

    pub fn reset(&self, key: &str) {
        self.counters().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_a_window_and_restarts_after_it() {
        let store = MemoryStore::default();
        assert_eq!(store.hit("k", Duration::from_millis(50)).0, 1);
        assert_eq!(store.hit("k", Duration::from_millis(50)).0, 2);
        assert_eq!(store.count("k").0, 2);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(store.count("k").0, 0);
        assert_eq!(store.hit("k", Duration::from_millis(50)).0, 1);
        store.reset("k");
        assert_eq!(store.count("k").0, 0);
    }
}
