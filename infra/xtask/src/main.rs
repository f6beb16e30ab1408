//! `cargo xtask`: the project's build program, behind the README's commands.
//!
//! - `cargo xtask run`: build the console and the server, then run `stead serve` on the embedded
//!   defaults (extra arguments go to `stead serve`)
//! - `cargo xtask test`: the whole test suite (builds what the tests run first)
//! - `cargo xtask build-console`: build the console into `web/dist`

mod console;

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
        Some("build-console") => {
            console::build_console(&root, !args.iter().any(|a| a == "--debug")).map(|dir| {
                println!("console built in {}", dir.display());
            })
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  run [ARGS]        build everything and run `stead serve` on the embedded defaults\n  test [ARGS]       run the whole test suite (ARGS go to cargo nextest)\n  build-console     build the console into web/dist"
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

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
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
    let console = timed("building the console", || {
        console::build_console(root, true)
    })?;
    timed("building the server", || {
        cargo(root, &["build", "-p", "stead"])
    })?;
    let bin = target_dir(root).join("debug/stead");
    println!(
        "xtask: starting Stead on http://{} (Ctrl-C stops it)",
        std::env::var("STEAD_HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into())
    );
    let mut command = Command::new(bin);
    command.arg("serve").args(args).current_dir(root);
    if std::env::var_os("STEAD_CONSOLE_DIR").is_none() {
        command.env("STEAD_CONSOLE_DIR", console);
    }
    let status = command.status().context("starting stead")?;
    if !status.success() {
        bail!("stead exited with {status}");
    }
    Ok(())
}

fn test(root: &Path, args: &[String]) -> anyhow::Result<()> {
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
    timed("running the tests", || cargo(root, &nextest))
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
