//! Latest values across a restart of the embedded server. With Redis they outlive any node; the
//! in-process store of the embedded default does not, and storage alone answers only for the
//! keys of a device's recent points (`telemetry::repo::latest_from_storage` reads its last
//! 1,000): a key a device sends once a day would vanish from its latest values at each restart.
//! So the in-process store's latest values are written to `<data dir>/latest.json` every
//! `STEAD_LATEST_SNAPSHOT_SECS` when they changed, and at a graceful shutdown; the next start
//! reads them back. Storage is still merged in on each device's first read, newest value
//! winning, so a snapshot a little older than a crash loses nothing that storage holds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LiveStore;
use super::state::Newest;

const FILE: &str = "latest.json";

fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// At start-up, before any device connects: the last snapshot into the in-process store.
pub async fn restore(live: &LiveStore, data_dir: &Path) {
    if !live.is_in_process() {
        return;
    }
    let path = path_in(data_dir);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "reading the latest values' snapshot failed; they come from storage");
            return;
        }
    };
    match serde_json::from_slice::<Newest>(&text) {
        Ok(all) => {
            let devices = all.len();
            if let Err(e) = live.update_latest(all).await {
                tracing::warn!(error = %e, "restoring latest values failed");
                return;
            }
            tracing::info!(devices, "latest values restored from their snapshot");
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the latest values' snapshot is unreadable; they come from storage");
        }
    }
}

/// Writes the in-process store's latest values atomically (a temporary file renamed over the
/// old one); answers the change count written, or `None` when there was nothing to write.
pub fn save(live: &LiveStore, data_dir: &Path) -> Option<u64> {
    let (changes, all) = live.latest_snapshot()?;
    if all.is_empty() {
        return None;
    }
    let path = path_in(data_dir);
    match crate::files::write_json_atomically(&path, &all) {
        Ok(()) => Some(changes),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "saving the latest values' snapshot failed");
            None
        }
    }
}

/// Saves a snapshot every `every` when the latest values changed, for as long as the process
/// runs (embedded only).
pub async fn run(live: LiveStore, data_dir: PathBuf, every: Duration) {
    if !live.is_in_process() {
        return;
    }
    let mut saved = live.latest_changes();
    loop {
        tokio::time::sleep(every).await;
        let changes = live.latest_changes();
        if changes == saved {
            continue;
        }
        let (live, dir) = (live.clone(), data_dir.clone());
        if let Ok(Some(written)) = tokio::task::spawn_blocking(move || save(&live, &dir)).await {
            saved = Some(written);
        }
    }
}
