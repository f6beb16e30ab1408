//! Re-embeds the console when it is built or rebuilt.
//!
//! `http/console.rs` compiles `web/dist` into the binary (rust-embed). The compiler tracks the
//! files it included, but not files that appear or disappear, so cargo is told to rerun this
//! script (and so to recompile the crate) when anything under `web/dist` changes. Without a
//! `web/dist` (clippy in CI runs before the console is built) the crate compiles with no
//! console; watching `web/` then notices the console being built, where watching a missing path
//! would rerun this script, and recompile the server, on every build.

use std::path::Path;

fn main() {
    let dist = Path::new("../web/dist");
    if dist.is_dir() {
        println!("cargo:rerun-if-changed=../web/dist");
    } else {
        println!("cargo:rerun-if-changed=../web");
    }
}
