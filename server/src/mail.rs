//! Outgoing e-mail (invitations, password resets) over SMTP with lettre. Without
//! `STEAD_SMTP_URL` there is no mailer: the routes that would send say so
//! (`mail_not_configured`), and an invitation answers its link to the person who made it.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::config::Config;

pub enum Mailer {
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
    },
    None,
}

/// One message: plain text, to one person.
pub struct Mail<'a> {
    pub to: &'a str,
    pub subject: String,
    pub text: String,
}

impl Mailer {
    pub fn from_config(config: &Config) -> anyhow::Result<Mailer> {
        let Some(url) = &config.smtp_url else {
            return Ok(Mailer::None);
        };
        let transport = Box::new(
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                .map_err(|e| anyhow::anyhow!("STEAD_SMTP_URL is not a valid SMTP URL: {e}"))?
                .timeout(Some(Duration::from_secs(10)))
                .build(),
        );
        let from = config
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("STEAD_MAIL_FROM: {e}"))?;
        Ok(Mailer::Smtp { transport, from })
    }

    pub fn configured(&self) -> bool {
        matches!(self, Mailer::Smtp { .. })
    }

    /// Sends one message; the error says why it did not go (for the person who asked, and the
    /// log), never the message itself (it may hold a link that works once).
    pub async fn send(&self, mail: Mail<'_>) -> Result<(), String> {
        let Mailer::Smtp { transport, from } = self else {
            return Err("no SMTP server is configured (STEAD_SMTP_URL)".into());
        };
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| format!("{:?} is not an address mail can go to: {e}", mail.to))?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(mail.subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(mail.text)
            .map_err(|e| format!("building the message: {e}"))?;
        match transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "an e-mail could not be sent");
                Err(format!("the SMTP server did not take the message: {e}"))
            }
        }
    }
}

/// The console's address for links in e-mails: `STEAD_PUBLIC_URL`, else the HTTP address.
pub fn public_url(config: &Config) -> String {
    match &config.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => public_url_of(config.http_addr),
    }
}

/// `http://` and the address, through loopback when it listens on every interface.
pub fn public_url_of(addr: std::net::SocketAddr) -> String {
    let url = crate::healthcheck::default_url(addr);
    url.trim_end_matches("/healthz").to_owned()
}

/// A one-time link into the console: the token goes after `#`, so that it never reaches a
/// server's access log or another site's `Referer`.
pub fn link(config: &Config, path: &str, token: &str) -> String {
    format!("{}{path}#{token}", public_url(config))
}

/// "7 days", "1 hour", "90 minutes": how long a link works, in a sentence.
pub fn duration_words(secs: u64) -> String {
    let (n, unit) = if secs >= 86_400 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs >= 3600 && secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs >= 60 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_naturally() {
        assert_eq!(super::duration_words(7 * 86_400), "7 days");
        assert_eq!(super::duration_words(3600), "1 hour");
        assert_eq!(super::duration_words(5400), "90 minutes");
        assert_eq!(super::duration_words(2), "2 seconds");
    }
}
