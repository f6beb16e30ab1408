//! Builds the browser console (`web/`, package `stead-web`) into `web/dist/`.
//!
//! No trunk, no downloaded binaries: cargo builds the wasm, the `wasm-bindgen-cli-support` crate
//! (same version as the `wasm-bindgen` the console links) writes the JS glue, and the static files
//! of `web/static/` are copied beside them. `index.html` is written here with each asset's content
//! hash in its URL (`?v=`, the first 16 hex digits of its SHA-256: the server compares it with the
//! file's own hash and then lets browsers cache the file forever), so a browser never runs a new
//! page against an old cached wasm. Beside each compressible file go `.br` and `.gz` variants that
//! the server answers when the browser accepts them.
//!
//! The files are built in a staging directory and then copied into `web/dist` only where they
//! differ: the server embeds `web/dist` and recompiles whenever anything in it is touched, so an
//! unchanged console must leave it untouched.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

pub const TARGET: &str = "wasm32-unknown-unknown";
const PACKAGE: &str = "stead-web";
/// The wasm file cargo writes: the package name with `-` turned into `_`.
const WASM_NAME: &str = "stead_web";

/// Builds the console and returns the `web/dist` directory holding it.
pub fn build_console(root: &Path, release: bool) -> anyhow::Result<PathBuf> {
    crate::setup::ensure_rust_target(TARGET)?;

    let target_dir = crate::target_dir(root);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "-p", PACKAGE, "--target", TARGET])
        .env("CARGO_TARGET_DIR", &target_dir);
    if release {
        build.arg("--release");
        // The console is downloaded by every browser: favour size over speed, for this build
        // only (the workspace's release profile is tuned for the server). Settings given in the
        // environment win.
        for (key, value) in [
            ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z"),
            ("CARGO_PROFILE_RELEASE_LTO", "fat"),
            ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
        ] {
            if std::env::var_os(key).is_none() {
                build.env(key, value);
            }
        }
    }
    crate::setup::run(&mut build, "cargo build of the console")?;

    let profile = if release { "release" } else { "debug" };
    let wasm = target_dir
        .join(TARGET)
        .join(profile)
        .join(format!("{WASM_NAME}.wasm"));
    if !wasm.is_file() {
        bail!("the console build produced no {}", wasm.display());
    }

    let staging = target_dir.join("console-staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    let pkg = staging.join("pkg");
    std::fs::create_dir_all(&pkg).with_context(|| format!("cannot create {}", pkg.display()))?;

    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .typescript(false)
        .debug(!release)
        .remove_name_section(release)
        .remove_producers_section(release)
        .generate(&pkg)
        .context("wasm-bindgen could not generate the JS glue")?;

    let static_dir = root.join("web").join("static");
    copy_dir(&static_dir, &staging)?;

    let template = static_dir.join("index.html");
    let html = std::fs::read_to_string(&template)
        .with_context(|| format!("cannot read {}", template.display()))?;
    let html = hash_urls(&html, &staging)?;
    std::fs::write(staging.join("index.html"), html).context("cannot write index.html")?;
    precompress(&staging)?;

    let dist = root.join("web").join("dist");
    sync_dir(&staging, &dist)?;
    Ok(dist)
}

/// Replaces each `{{hash:PATH}}` of the template by the content hash of `dir/PATH`.
fn hash_urls(template: &str, dir: &Path) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{hash:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "{{hash:".len()..];
        let Some(end) = after.find("}}") else {
            bail!("index.html: `{{{{hash:` without its closing `}}}}`");
        };
        let file = dir.join(&after[..end]);
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        out.push_str(&content_hash(&bytes));
        rest = &after[end + "}}".len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The first 16 hex digits of the SHA-256 of `bytes`; the server computes the same.
fn content_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// Text-like files worth compressing (images such as PNG are compressed already).
const COMPRESSIBLE: &[&str] = &["html", "js", "wasm", "css", "svg", "json", "txt"];

/// Writes `FILE.br` and `FILE.gz` beside every compressible file of `dir`, each only when it is
/// smaller than the file itself.
fn precompress(dir: &Path) -> anyhow::Result<()> {
    for file in files(dir)? {
        let compressible = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| COMPRESSIBLE.contains(&e));
        if !compressible {
            continue;
        }
        let raw =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&raw)?;
        let gzip = gzip.finish()?;
        let mut brotli = Vec::new();
        {
            // Quality 11 (the best) and a 4 MiB window: written once, downloaded by every browser.
            let mut writer = brotli::CompressorWriter::new(&mut brotli, 64 * 1024, 11, 22);
            writer.write_all(&raw)?;
        }
        for (extension, bytes) in [("gz", gzip), ("br", brotli)] {
            if bytes.len() < raw.len() {
                let mut name = file.clone().into_os_string();
                name.push(".");
                name.push(extension);
                std::fs::write(&name, bytes)
                    .with_context(|| format!("cannot write {}", Path::new(&name).display()))?;
            }
        }
    }
    Ok(())
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    Ok(out)
}

/// Makes `to` hold exactly the files of `from`, writing only those whose bytes differ.
fn sync_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let wanted = files(from)?;
    for file in &wanted {
        let relative = file.strip_prefix(from)?;
        let dest = to.join(relative);
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        if std::fs::read(&dest).is_ok_and(|old| old == bytes) {
            continue;
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&dest, bytes).with_context(|| format!("cannot write {}", dest.display()))?;
    }
    if to.is_dir() {
        for file in files(to)? {
            let relative = file.strip_prefix(to)?;
            if !from.join(relative).exists() {
                std::fs::remove_file(&file)
                    .with_context(|| format!("cannot remove {}", file.display()))?;
            }
        }
    }
    Ok(())
}

/// Copies the files of `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    for entry in entries {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest).with_context(|| {
                format!(
                    "cannot copy {} to {}",
                    entry.path().display(),
                    dest.display()
                )
            })?;
        }
    }
    Ok(())
}
