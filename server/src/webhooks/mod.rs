//! Webhooks: a tenant's HTTP endpoints that receive its events, signed as the Standard Webhooks
//! specification says (`webhook-id`, `webhook-timestamp`, `webhook-signature` with `v1,` HMAC-SHA256
//! signatures, `whsec_` secrets), delivered at least once with the event id as the idempotency
//! key, retried on a schedule, logged attempt by attempt, replayable.
//!
//! `service` changes endpoints (audited, permission `webhooks.manage`); `deliver` is the worker
//! that sends what the event dispatcher queued; `guard` keeps requests off private, loopback and
//! link-local addresses unless the platform allows them. The backlog lives in the database
//! (`event_deliveries`), so a slow or dead endpoint costs rows, not memory.

pub mod deliver;
pub mod guard;
pub mod http;
pub mod model;
pub mod repo;
pub mod service;

use std::time::Duration;

/// The waits between attempts: after the first failure the first wait, and so on; when they
/// are used up the delivery has failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule(pub Vec<Duration>);

impl Schedule {
    /// Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (eight attempts
    /// over about 28 hours).
    pub fn standard() -> Schedule {
        Schedule(
            [5, 300, 1800, 7200, 18000, 36000, 36000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }

    /// `5s,5m,30m,2h`: numbers with `ms`, `s`, `m` or `h`.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let mut waits = Vec::new();
        for part in s.split(',').map(str::trim) {
            let (number, unit) = part
                .find(|c: char| !c.is_ascii_digit())
                .map(|i| part.split_at(i))
                .ok_or_else(|| format!("{part:?} needs a unit (ms, s, m or h)"))?;
            let n: u64 = number
                .parse()
                .map_err(|_| format!("{part:?} does not start with a whole number"))?;
            let wait = match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n * 60),
                "h" => Duration::from_secs(n * 3600),
                _ => return Err(format!("{part:?}: the unit is ms, s, m or h")),
            };
            waits.push(wait);
        }
        if waits.is_empty() || waits.len() > 20 {
            return Err("a retry schedule has 1 to 20 waits".into());
        }
        Ok(Schedule(waits))
    }

    /// The wait after the `attempts`-th failed attempt, or `None` when that was the last one.
    pub fn after(&self, attempts: u32) -> Option<Duration> {
        self.0.get(attempts.saturating_sub(1) as usize).copied()
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|d| {
                let ms = d.as_millis();
                if ms % 3_600_000 == 0 {
                    format!("{}h", ms / 3_600_000)
                } else if ms % 60_000 == 0 {
                    format!("{}m", ms / 60_000)
                } else if ms % 1000 == 0 {
                    format!("{}s", ms / 1000)
                } else {
                    format!("{ms}ms")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl serde::Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Schedule::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A new signing secret: `whsec_` and 32 random bytes in base64 (what Standard Webhooks'
/// libraries take).
pub fn new_secret() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Checks a secret given by a person: `whsec_` and base64 of 24 to 64 bytes.
pub fn parse_secret(s: &str) -> Result<String, String> {
    use base64::Engine as _;
    let body = s
        .trim()
        .strip_prefix("whsec_")
        .ok_or("a webhook secret starts with whsec_")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "after whsec_ a webhook secret is base64")?;
    if !(24..=64).contains(&key.len()) {
        return Err("a webhook secret holds 24 to 64 bytes".into());
    }
    Ok(s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_print_back() {
        let s = Schedule::parse("5s, 5m,30m,2h,250ms").unwrap();
        assert_eq!(s.to_string(), "5s,5m,30m,2h,250ms");
        assert_eq!(s.after(1), Some(Duration::from_secs(5)));
        assert_eq!(s.after(5), Some(Duration::from_millis(250)));
        assert_eq!(s.after(6), None);
        assert_eq!(Schedule::standard().to_string(), "5s,5m,30m,2h,5h,10h,10h");
        for bad in ["", "5", "5x", "s", "1s,,2s"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_whsec_base64() {
        let s = new_secret();
        assert!(parse_secret(&s).is_ok());
        assert!(parse_secret("whsec_short").is_err());
        assert!(parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    }
}
