//! `stead healthcheck`: asks a running node's `/healthz` over plain HTTP and answers yes or no
//! through the exit code. Container images carry nothing but the binary (no shell, no curl), so
//! the binary checks itself. Blocking standard-library I/O on purpose: a health check runs every
//! few seconds in its own short-lived process, and needs no runtime, no logging and no database.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{0:?} is not an http://host[:port][/path] URL")]
    BadUrl(String),
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: std::io::Error },
    #[error("{url} answered {status_line:?}")]
    Unhealthy { url: String, status_line: String },
}

/// The URL to ask when none is given: the node's own HTTP address, through loopback when it
/// listens on every interface (`0.0.0.0` is something to bind, not to connect to).
pub fn default_url(http_addr: SocketAddr) -> String {
    let ip = match http_addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, http_addr.port()))
}

/// `Ok` when `url` answers 200 within `timeout` (for connecting, and again for the answer).
pub fn check(url: &str, timeout: Duration) -> Result<(), HealthError> {
    let (authority, path) = split_url(url)?;
    let unreachable = |source| HealthError::Unreachable {
        url: url.to_owned(),
        source,
    };
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_owned()
    };
    let addrs: Vec<SocketAddr> = with_port.to_socket_addrs().map_err(unreachable)?.collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or_else(|| unreachable(last))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(unreachable)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    // The status line is all that matters; the body of /healthz is a few bytes anyway.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        match stream.read(&mut buf).map_err(unreachable)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default().trim().to_owned();
    let status = status_line.split_whitespace().nth(1);
    if status_line.starts_with("HTTP/") && status == Some("200") {
        Ok(())
    } else {
        Err(HealthError::Unhealthy {
            url: url.to_owned(),
            status_line,
        })
    }
}

/// `http://host:port/path` → (`host:port`, `/path`). Only plain HTTP: a node's health endpoint
/// is asked from inside its own container or pod.
fn split_url(url: &str) -> Result<(&str, &str), HealthError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HealthError::BadUrl(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/healthz"),
    };
    if authority.is_empty() || authority.contains(char::is_whitespace) || path.contains(' ') {
        return Err(HealthError::BadUrl(url.to_owned()));
    }
    Ok((authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_goes_through_loopback_for_wildcard_addresses() {
        let url = |s: &str| default_url(s.parse().unwrap());
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/healthz");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080/healthz");
        assert_eq!(url("10.1.2.3:9000"), "http://10.1.2.3:9000/healthz");
    }

    #[test]
    fn urls_are_split_or_refused() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/readyz").unwrap(),
            ("127.0.0.1:8080", "/readyz")
        );
        assert_eq!(
            split_url("http://[::1]:8080").unwrap(),
            ("[::1]:8080", "/healthz")
        );
        for bad in [
            "https://x/healthz",
            "127.0.0.1:8080",
            "http:///healthz",
            "http://a b/",
        ] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}
