//! Server-side request forgery: a webhook URL is the tenant's to choose, so without a guard a
//! tenant could make Stead call into the platform's own network (a metadata service at
//! 169.254.169.254, a database on localhost). Every address a request would go to is checked:
//! literal addresses in the URL when an endpoint is saved and again when it is called, and every
//! address a host name resolves to, in the HTTP client's resolver itself (so a name that resolves
//! to a public address when saved and to a private one later is still refused). Redirects are not
//! followed. `STEAD_WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true` turns the guard off (tests, and
//! deployments whose receivers live on a private network).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Whether an address is one a tenant's webhook may not reach.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT (shared address space)
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15, benchmarking
        || (a == 198 && (b == 18 || b == 19))
}

/// Checks an endpoint URL as it is saved: http or https, a host, and (unless allowed) no literal
/// private address. Answers why it is refused.
pub fn check_url(raw: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("a webhook URL starts with http:// or https://".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("put no credentials in a webhook URL: requests are signed instead".into());
    }
    let host = url.host().ok_or("a webhook URL names a host")?;
    if !allow_private {
        let literal = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal
            && is_private(ip)
        {
            return Err(format!(
                "{ip} is a private, loopback or link-local address: webhooks may not reach it on this platform"
            ));
        }
    }
    Ok(url)
}

/// Checks an endpoint URL as it is saved, names resolved too: refused when every address its
/// host resolves to is private (the same rule the client's resolver applies at each request).
pub async fn check_url_resolved(raw: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let url = check_url(raw, allow_private)?;
    if allow_private {
        return Ok(url);
    }
    if let Some(url::Host::Domain(host)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        let all: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("{host} does not resolve: {e}"))?
            .collect();
        if let Some(first) = all.first()
            && all.iter().all(|a| is_private(a.ip()))
        {
            return Err(format!(
                "{host} resolves to {}, a private, loopback or link-local address: webhooks may not reach it on this platform",
                first.ip()
            ));
        }
    }
    Ok(url)
}

/// The HTTP client's resolver: resolves as usual, then drops every private address (and fails
/// when none is left).
struct Resolver;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !is_private(a.ip()))
                .collect();
            if allowed.is_empty() {
                let shown = all.first().map(|a| a.ip().to_string()).unwrap_or_default();
                return Err(format!(
                    "{host} resolves to {shown}, a private, loopback or link-local address: webhooks may not reach it on this platform"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The client every webhook request goes through.
pub fn client(
    allow_private: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Stead-Webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(8);
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(Resolver));
    }
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve as _;

    #[test]
    fn private_loopback_and_link_local_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused() {
        let e = check_url_resolved("http://localhost:9000/", false)
            .await
            .unwrap_err();
        assert!(e.contains("resolves to"), "{e}");
        assert!(
            check_url_resolved("http://localhost:9000/", true)
                .await
                .is_ok()
        );
        let e = Resolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("private, loopback"), "{e}");
    }

    #[test]
    fn urls_are_checked_as_saved() {
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("ftp://example.com/hook", false).is_err());
        assert!(check_url("http://user:pw@example.com/", false).is_err());
        assert!(check_url("http://127.0.0.1:9000/", false).is_err());
        assert!(check_url("http://[::1]:9000/", false).is_err());
        assert!(check_url("http://169.254.169.254/latest/meta-data", false).is_err());
        assert!(check_url("http://127.0.0.1:9000/", true).is_ok());
    }
}
