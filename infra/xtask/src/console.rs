//! Builds the browser console (`web/`, package `stead-web`) into `web/dist/`.
//!
//! No trunk, no downloaded binaries: cargo builds the wasm, the `wasm-bindgen-cli-support` crate
//! (same version as the `wasm-bindgen` the console links) writes the JS glue, and the static files
//! of `web/static/` are copied beside them. `index.html` is written here with a content hash in
//! the asset URLs, so a browser never runs a new page against an old cached wasm.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const TARGET: &str = "wasm32-unknown-unknown";
const PACKAGE: &str = "stead-web";
/// The wasm file cargo writes: the package name with `-` turned into `_`.
const WASM_NAME: &str = "stead_web";

/// Builds the console and returns the `web/dist` directory holding it.
pub fn build_console(root: &Path, release: bool) -> anyhow::Result<PathBuf> {
    ensure_wasm_target()?;

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"));
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
    run(&mut build, "cargo build of the console")?;

    let profile = if release { "release" } else { "debug" };
    let wasm = target_dir
        .join(TARGET)
        .join(profile)
        .join(format!("{WASM_NAME}.wasm"));
    if !wasm.is_file() {
        bail!("the console build produced no {}", wasm.display());
    }

    let dist = root.join("web").join("dist");
    if dist.exists() {
        std::fs::remove_dir_all(&dist)
            .with_context(|| format!("cannot clear {}", dist.display()))?;
    }
    let pkg = dist.join("pkg");
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
    copy_dir(&static_dir, &dist)?;

    let js = pkg.join(format!("{WASM_NAME}.js"));
    let wasm_out = pkg.join(format!("{WASM_NAME}_bg.wasm"));
    let version = content_hash(&[&js, &wasm_out, &dist.join("style.css")])?;
    let template = static_dir.join("index.html");
    let html = std::fs::read_to_string(&template)
        .with_context(|| format!("cannot read {}", template.display()))?
        .replace("{{version}}", &version);
    std::fs::write(dist.join("index.html"), html).context("cannot write index.html")?;

    Ok(dist)
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out) if out.status.success() => {
            let list = String::from_utf8_lossy(&out.stdout);
            if list.lines().any(|l| l.trim() == TARGET) {
                return Ok(());
            }
            run(
                Command::new("rustup").args(["target", "add", TARGET]),
                "rustup target add",
            )
        }
        // Without rustup (a distribution toolchain) the build below says what is missing.
        _ => Ok(()),
    }
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
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

/// A short hash of the built files, for cache-busting query strings.
fn content_hash(files: &[&Path]) -> anyhow::Result<String> {
    let mut hasher = DefaultHasher::new();
    for file in files {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        bytes.hash(&mut hasher);
    }
    Ok(format!("{:016x}", hasher.finish()))
}
