//! A real SMTP server for the tests that send e-mail: `e2e/python/smtp_sink.py` (aiosmtpd),
//! started per test on its own port, writing each message it accepts to a directory that
//! [`Mailbox::wait_for`] reads.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::harness::workspace_root;

/// One message as the SMTP server received it.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub envelope_to: Vec<String>,
    pub from: String,
    pub subject: String,
    /// The decoded text body.
    pub text: String,
}

impl Mail {
    /// The token of the first link in the body to `path` (`/invite`, `/reset-password`): the
    /// part after `#`.
    pub fn token(&self, path: &str) -> String {
        let needle = format!("{path}#");
        let start = self
            .text
            .find(&needle)
            .unwrap_or_else(|| panic!("no {needle} link in the mail:\n{}", self.text))
            + needle.len();
        self.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }

    /// The whole first link to `path`, as written in the mail.
    pub fn link(&self, path: &str) -> String {
        let token = self.token(path);
        let end = self.text.find(&token).expect("token") + token.len();
        let start = self.text[..end].rfind("http").expect("link");
        self.text[start..end].to_owned()
    }
}

pub struct Mailbox {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Mailbox {
    pub async fn start() -> Mailbox {
        let python = crate::sdk::python();
        let dir = tempfile::tempdir().expect("mail directory");
        let script = workspace_root().join("e2e/python/smtp_sink.py");
        let mut child = tokio::process::Command::new(&python)
            .arg(&script)
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP server did not start within 20 s (is aiosmtpd installed? `cargo xtask setup`)")
            .expect("reading the SMTP server's output")
            .expect("the SMTP server exited before it was ready (is aiosmtpd installed? `cargo xtask setup`)");
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected line from the SMTP server: {line}"));
        Mailbox { child, dir, port }
    }

    /// What a server needs to send here.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "STEAD_SMTP_URL".into(),
                format!("smtp://127.0.0.1:{}", self.port),
            ),
            (
                "STEAD_MAIL_FROM".into(),
                "Stead <stead@example.test>".into(),
            ),
        ]
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("mail directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
    }

    /// Every message received so far, oldest first.
    pub fn all(&self) -> Vec<Mail> {
        self.files()
            .into_iter()
            .map(|p| {
                serde_json::from_slice(&std::fs::read(&p).expect("mail file")).expect("mail json")
            })
            .collect()
    }

    /// All messages to `to`, oldest first.
    pub fn to(&self, to: &str) -> Vec<Mail> {
        self.all()
            .into_iter()
            .filter(|m| m.envelope_to.iter().any(|t| t.eq_ignore_ascii_case(to)))
            .collect()
    }

    /// Waits (up to 15 s) for the `n`th message (1-based) to `to`.
    pub async fn wait_for_nth(&self, to: &str, n: usize) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mails = self.to(to);
            if mails.len() >= n {
                return mails[n - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "no mail number {n} to {to} within 15 s; received: {:?}",
                self.all()
                    .iter()
                    .map(|m| (&m.envelope_to, &m.subject))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the first message to `to`.
    pub async fn wait_for(&self, to: &str) -> Mail {
        self.wait_for_nth(to, 1).await
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
