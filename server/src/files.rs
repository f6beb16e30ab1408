//! Local state kept in files of the data directory (the embedded default's alarm progress and
//! latest values across a restart).

use std::path::Path;

/// Writes `value` as JSON to `path` atomically: to a temporary file beside it, renamed over the
/// old one, so a crash mid-write leaves the previous file whole. Creates the directory.
pub fn write_json_atomically(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(value)?)?;
    std::fs::rename(&tmp, path)
}
