//! What a fresh machine lacks before the tests (or a release build) can run: rustup targets,
//! system packages, cargo-nextest and the tests' Python environment. Each is checked first and
//! installed only when missing, so on a prepared machine this costs a few process starts.
//!
//! System packages are named once, in [`TOOLS`]: the command that must be on `PATH` and the
//! Debian package that provides it. As root they are installed with `apt-get`; otherwise the run
//! stops before building anything and prints the one command to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

/// What a tool is needed for: `cargo xtask test` installs the test tools, `cargo xtask dist` the
/// release-build ones, `cargo xtask setup` both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Test,
    Dist,
}

/// A program that has to be there, and the Debian package that provides it.
struct Tool {
    probe: Probe,
    package: &'static str,
    need: Need,
}

enum Probe {
    /// An executable of that name on `PATH`.
    OnPath(&'static str),
    /// A command that succeeds (e.g. a Python import).
    Succeeds(&'static str, &'static [&'static str]),
}

/// Add new system dependencies here, one line each.
const TOOLS: &[Tool] = &[
    // The browser tests drive headless Chromium through chromedriver.
    tool("chromium", "chromium", Need::Test),
    tool("chromedriver", "chromium-driver", Need::Test),
    // Tests publish and subscribe with the mosquitto clients.
    tool("mosquitto_pub", "mosquitto-clients", Need::Test),
    tool("mosquitto_sub", "mosquitto-clients", Need::Test),
    // Each PostgreSQL test creates (and drops) its own database with psql.
    tool("psql", "postgresql-client", Need::Test),
    tool("pg_isready", "postgresql-client", Need::Test),
    tool("redis-cli", "redis-tools", Need::Test),
    // The MQTT-over-TLS tests make their certificates with openssl.
    tool("openssl", "openssl", Need::Test),
    // Tests signal servers with kill and check file digests with sha256sum.
    tool("kill", "procps", Need::Test),
    tool("sha256sum", "coreutils", Need::Test),
    tool("python3", "python3", Need::Test),
    // `python3 -m venv` needs ensurepip, which Debian ships apart from python3.
    Tool {
        probe: Probe::Succeeds("python3", &["-c", "import ensurepip, venv"]),
        package: "python3-venv",
        need: Need::Test,
    },
    // The C parts of the dependencies (SQLite, ring) compiled against musl for a static binary.
    tool("musl-gcc", "musl-tools", Need::Dist),
];

const fn tool(program: &'static str, package: &'static str, need: Need) -> Tool {
    Tool {
        probe: Probe::OnPath(program),
        package,
        need,
    }
}

impl Tool {
    fn present(&self) -> bool {
        match self.probe {
            Probe::OnPath(program) => std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
            }),
            Probe::Succeeds(program, args) => Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        }
    }

    fn name(&self) -> &'static str {
        match self.probe {
            Probe::OnPath(program) => program,
            Probe::Succeeds(..) => self.package,
        }
    }
}

/// Installs the system packages `needs` call for that are missing, or stops naming them.
pub fn system_packages(needs: &[Need]) -> anyhow::Result<()> {
    let mut missing: Vec<&str> = Vec::new();
    for tool in TOOLS.iter().filter(|t| needs.contains(&t.need)) {
        if !missing.contains(&tool.package) && !tool.present() {
            missing.push(tool.package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        bail!(
            "these system packages are missing: {list}\n\nInstall them, then run this again:\n\n    sudo apt-get update && sudo apt-get install -y {list}\n"
        );
    }
    println!("xtask: installing {list}");
    run(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt-get update",
    )?;
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "apt-get install",
    )?;
    let still: Vec<&str> = TOOLS
        .iter()
        .filter(|t| needs.contains(&t.need) && !t.present())
        .map(Tool::name)
        .collect();
    if !still.is_empty() {
        bail!("installed {list}, but still missing: {}", still.join(", "));
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Adds a rustup target when it is missing.
pub fn ensure_rust_target(target: &str) -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out) if out.status.success() => {
            let list = String::from_utf8_lossy(&out.stdout);
            if list.lines().any(|l| l.trim() == target) {
                return Ok(());
            }
            run(
                Command::new("rustup").args(["target", "add", target]),
                "rustup target add",
            )
        }
        // Without rustup (a distribution toolchain) the build says what is missing.
        _ => Ok(()),
    }
}

/// Installs cargo-nextest, which runs the tests, when cargo does not have it.
pub fn ensure_nextest() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let present = Command::new(&cargo)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("xtask: installing cargo-nextest (a few minutes, once)");
    run(
        Command::new(&cargo).args(["install", "cargo-nextest", "--locked"]),
        "cargo install cargo-nextest",
    )
}

/// The tests' Python virtual environment, `<target>/python-venv`. `e2e/tests/it/sdk.rs` looks
/// for the same path.
pub fn venv_dir(target: &Path) -> PathBuf {
    target.join("python-venv")
}

/// Creates the tests' virtual environment when missing and installs
/// `e2e/python/requirements.txt` into it whenever that file changed; answers its interpreter.
pub fn python_venv(root: &Path, target: &Path) -> anyhow::Result<PathBuf> {
    let venv = venv_dir(target);
    let python = venv.join("bin").join("python");
    let requirements = root.join("e2e").join("python").join("requirements.txt");
    let wanted = hex::encode(Sha256::digest(
        std::fs::read(&requirements)
            .with_context(|| format!("cannot read {}", requirements.display()))?,
    ));
    // The hash of the requirements last installed: re-installing costs network and minutes.
    let stamp = venv.join("requirements.sha256");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == wanted) {
        return Ok(python);
    }
    if !python.exists() {
        println!(
            "xtask: creating the tests' Python environment in {}",
            venv.display()
        );
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        )?;
    }
    println!("xtask: installing {} into it", requirements.display());
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r e2e/python/requirements.txt",
    )?;
    std::fs::write(&stamp, &wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(python)
}

pub fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
