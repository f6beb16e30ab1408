//! Rule progress across a restart of the embedded server. With Redis the progress (duration
//! timers, repeat counts) lives in Redis and outlives any node. The in-process store of the
//! embedded default does not: at a graceful shutdown the engine finishes what it was given and
//! its progress is written to `<data dir>/alarm-progress.json`; the next start reads the file
//! and removes it. After a crash there is no file and durations under way start again (active
//! alarms are in the database either way): stale progress from an older shutdown could raise an
//! alarm that the messages since then do not justify.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::ids::DeviceId;
use crate::live::LiveStore;

const FILE: &str = "alarm-progress.json";

fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// At start-up: the progress a graceful shutdown left, into the in-process store. Nothing to do
/// on Redis.
pub fn restore(live: &LiveStore, data_dir: &Path) {
    if !live.is_in_process() {
        return;
    }
    let path = path_in(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "reading the alarm rules' progress failed; durations under way start again");
            return;
        }
    };
    // Read once: a crash after this start must not bring back what is now old.
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "removing the alarm rules' progress file failed");
    }
    match serde_json::from_str::<HashMap<DeviceId, HashMap<String, String>>>(&text) {
        Ok(all) => {
            let devices = all.len();
            live.restore_alarm_states(all);
            tracing::info!(
                devices,
                "alarm rules' progress restored from the last shutdown"
            );
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the alarm rules' progress file is unreadable; durations under way start again")
        }
    }
}

/// At a graceful shutdown, after the engine has evaluated what it was given: the in-process
/// store's progress, written atomically (a temporary file renamed over the old one).
pub fn save(live: &LiveStore, data_dir: &Path) {
    let Some(all) = live.alarm_state_snapshot() else {
        return;
    };
    if all.is_empty() {
        return;
    }
    let path = path_in(data_dir);
    match crate::files::write_json_atomically(&path, &all) {
        Ok(()) => {
            tracing::info!(devices = all.len(), path = %path.display(), "shutdown: alarm rules' progress saved")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "shutdown: saving the alarm rules' progress failed; durations under way start again")
        }
    }
}
