//! Rate limits: rate strings (`count:seconds[,count:seconds…]`, as ThingsBoard writes them and
//! `getSessionLimits` reports them) and fixed-window limiters for messages and data points.

/// A parsed rate string such as `200:1,6000:60`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    windows: Vec<(u64, i64)>,
}

impl Rate {
    pub fn parse(s: &str) -> Result<Rate, String> {
        let mut windows = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (count, secs) = part
                .split_once(':')
                .ok_or_else(|| format!("{part:?} is not count:seconds"))?;
            let count: u64 = count
                .trim()
                .parse()
                .map_err(|_| format!("{count:?} is not a count"))?;
            let secs: i64 = secs
                .trim()
                .parse()
                .map_err(|_| format!("{secs:?} is not a number of seconds"))?;
            if count == 0 || secs <= 0 {
                return Err(format!("{part:?}: count and seconds must be positive"));
            }
            windows.push((count, secs * 1000));
        }
        if windows.is_empty() {
            return Err("a rate needs at least one count:seconds".into());
        }
        Ok(Rate { windows })
    }
}

impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Rate::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .windows
            .iter()
            .map(|(c, ms)| format!("{c}:{}", ms / 1000))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone)]
struct Windows {
    rate: Rate,
    /// (window start, used) per window of the rate.
    state: Vec<(i64, u64)>,
}

impl Windows {
    fn new(rate: Rate) -> Windows {
        let state = vec![(0, 0); rate.windows.len()];
        Windows { rate, state }
    }

    fn would_exceed(&mut self, now: i64, n: u64) -> Option<(u64, i64)> {
        for (i, (limit, len)) in self.rate.windows.iter().enumerate() {
            let (start, used) = &mut self.state[i];
            if now - *start >= *len {
                *start = now;
                *used = 0;
            }
            if *used + n > *limit {
                return Some((*limit, *len / 1000));
            }
        }
        None
    }

    fn add(&mut self, n: u64) {
        for (_, used) in &mut self.state {
            *used += n;
        }
    }
}

/// Messages and data points, each against its own rate.
#[derive(Debug, Clone)]
pub struct Limiter {
    messages: Windows,
    points: Windows,
}

impl Limiter {
    pub fn new(messages: Rate, points: Rate) -> Limiter {
        Limiter {
            messages: Windows::new(messages),
            points: Windows::new(points),
        }
    }

    /// Admits one message carrying `points` data points, or says which limit it would break.
    pub fn admit(&mut self, now: i64, points: u64) -> Result<(), String> {
        if let Some((limit, secs)) = self.messages.would_exceed(now, 1) {
            return Err(format!("more than {limit} messages in {secs} s"));
        }
        if let Some((limit, secs)) = self.points.would_exceed(now, points) {
            return Err(format!("more than {limit} data points in {secs} s"));
        }
        self.messages.add(1);
        self.points.add(points);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_strings_round_trip() {
        let r = Rate::parse("200:1, 6000:60").unwrap();
        assert_eq!(r.to_string(), "200:1,6000:60");
        for bad in ["", "200", "a:1", "1:b", "0:1", "5:0", "5:-1"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limiter_counts_messages_and_points_per_window() {
        let mut l = Limiter::new(Rate::parse("3:1").unwrap(), Rate::parse("10:1").unwrap());
        assert!(l.admit(0, 4).is_ok());
        assert!(l.admit(10, 4).is_ok());
        assert_eq!(
            l.admit(20, 4).unwrap_err(),
            "more than 10 data points in 1 s"
        );
        assert!(l.admit(30, 2).is_ok());
        assert_eq!(l.admit(40, 0).unwrap_err(), "more than 3 messages in 1 s");
        // A new window starts after a second.
        assert!(l.admit(1000, 4).is_ok());
    }
}
