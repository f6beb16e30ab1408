//! `cargo xtask`: the project's build program, behind the README's commands.
//!
//! - `cargo xtask run`: build the console and the server, then run `stead serve` on the embedded
//!   defaults (extra arguments go to `stead serve`)
//! - `cargo xtask test`: the whole test suite (sets the machine up and builds what the tests run
//!   first)
//! - `cargo xtask setup`: only the set-up (targets, system packages, the tests' Python environment)
//! - `cargo xtask dist`: a release binary with the console inside, statically linked (musl)
//! - `cargo xtask build-console`: build the console into `web/dist`

mod console;
mod setup;

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&root, &args[1..]),
        Some("test") => test(&root, &args[1..]),
        Some("setup") => set_up(&root, &[setup::Need::Test, setup::Need::Dist]).map(|python| {
            if let Some(python) = python {
                println!("xtask: set up; the tests' Python is {}", python.display());
            }
        }),
        Some("dist") => dist(&root),
        Some("build-console") => {
            console::build_console(&root, !args.iter().any(|a| a == "--debug")).map(|dir| {
                println!("console built in {}", dir.display());
            })
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  run [ARGS]        build everything and run `stead serve` on the embedded defaults\n  test [ARGS]       run the whole test suite (ARGS go to cargo nextest)\n  setup             install what the tests and `dist` need (as root; else print the command)\n  dist              build a self-contained release binary into <target>/dist/stead\n  build-console     build the console into web/dist"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    // infra/xtask → the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Cargo's target directory, absolute (a relative `CARGO_TARGET_DIR` is relative to the root).
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("running {cargo} {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn timed<T>(what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let started = Instant::now();
    println!("xtask: {what} …");
    let out = f()?;
    println!(
        "xtask: {what} done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    timed("building the console", || {
        console::build_console(root, true)
    })?;
    // The server embeds the console just built (server/build.rs notices the change).
    timed("building the server", || {
        cargo(root, &["build", "-p", "stead"])
    })?;
    let bin = target_dir(root).join("debug/stead");
    println!(
        "xtask: starting Stead on http://{} (Ctrl-C stops it)",
        std::env::var("STEAD_HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into())
    );
    let status = Command::new(bin)
        .arg("serve")
        .args(args)
        .current_dir(root)
        .status()
        .context("starting stead")?;
    if !status.success() {
        bail!("stead exited with {status}");
    }
    Ok(())
}

/// Everything a fresh machine lacks for `needs`, before anything is built; answers the tests'
/// Python interpreter when the tests are among the needs.
fn set_up(root: &Path, needs: &[setup::Need]) -> anyhow::Result<Option<PathBuf>> {
    timed("checking the machine", || {
        setup::system_packages(needs)?;
        setup::ensure_rust_target(console::TARGET)?;
        if needs.contains(&setup::Need::Dist) {
            setup::ensure_rust_target(DIST_TARGET)?;
        }
        if !needs.contains(&setup::Need::Test) {
            return Ok(None);
        }
        setup::ensure_nextest()?;
        setup::python_venv(root, &target_dir(root)).map(Some)
    })
}

fn test(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let python = set_up(root, &[setup::Need::Test])?;
    check_service("PostgreSQL", "STEAD_TEST_PG_URL", "127.0.0.1:5432")?;
    check_service("Redis", "STEAD_TEST_REDIS_URL", "127.0.0.1:6379")?;
    timed("building the console", || {
        console::build_console(root, true).map(|_| ())
    })?;
    timed("building the server and the tests", || {
        cargo(root, &["build", "-p", "stead"])?;
        cargo(root, &["nextest", "run", "--workspace", "--no-run"])
    })?;
    let mut nextest = vec!["nextest", "run", "--workspace"];
    if std::env::var_os("CI").is_some() {
        nextest.extend(["--profile", "ci"]);
    }
    nextest.extend(args.iter().map(String::as_str));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut run_tests = Command::new(&cargo);
    run_tests.args(&nextest).current_dir(root);
    // A developer's own interpreter wins; else the environment made above.
    if let Some(python) = python
        && std::env::var_os("STEAD_TEST_PYTHON").is_none()
    {
        run_tests.env("STEAD_TEST_PYTHON", python);
    }
    timed("running the tests", || {
        setup::run(&mut run_tests, &format!("cargo {}", nextest.join(" ")))
    })
}

/// The target `cargo xtask dist` builds for: static, runs on any x86-64 Linux.
const DIST_TARGET: &str = "x86_64-unknown-linux-musl";

/// A release `stead` with the console inside, statically linked, copied to `<target>/dist/stead`.
fn dist(root: &Path) -> anyhow::Result<()> {
    set_up(root, &[setup::Need::Dist])?;
    timed("building the console (release)", || {
        console::build_console(root, true).map(|_| ())
    })?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    timed("building the release server (musl, static)", || {
        setup::run(
            Command::new(&cargo)
                .args(["build", "--release", "-p", "stead", "--bin", "stead"])
                .args(["--target", DIST_TARGET])
                .current_dir(root)
                // The C dependencies (bundled SQLite, ring) are compiled with musl's wrapper.
                .env("CC_x86_64_unknown_linux_musl", "musl-gcc"),
            "cargo build --release --target x86_64-unknown-linux-musl",
        )
    })?;
    let target = target_dir(root);
    let built = target.join(DIST_TARGET).join("release").join("stead");
    let out_dir = target.join("dist");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let out = out_dir.join("stead");
    std::fs::copy(&built, &out)
        .with_context(|| format!("cannot copy {} to {}", built.display(), out.display()))?;
    let size = std::fs::metadata(&out)?.len();
    println!(
        "xtask: {} ({:.1} MB, static, console inside): copy it anywhere and run `stead serve`",
        out.display(),
        size as f64 / 1_000_000.0
    );
    Ok(())
}

/// Fails loudly, naming the service, when a test dependency does not answer.
fn check_service(name: &str, env: &str, default: &str) -> anyhow::Result<()> {
    let addr = match std::env::var(env) {
        Ok(url) => url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.rsplit('@').next())
            .and_then(|rest| rest.split('/').next())
            .unwrap_or(default)
            .to_owned(),
        Err(_) => default.to_owned(),
    };
    let reachable = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok());
    if !reachable {
        bail!(
            "{name} is not reachable at {addr}: the tests need it (set {env} to point elsewhere)"
        );
    }
    Ok(())
}
