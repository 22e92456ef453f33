//! Where listeners may send: `http`/`https` URLs whose host is, and resolves to, public
//! addresses only (unless `listeners.allow_private_destinations`). Checked when a
//! listener is written and again by the resolver of every delivery connection, since
//! DNS can change between the two (and a name can resolve differently each time).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The destination rules of this deployment.
#[derive(Debug, Clone, Copy)]
pub struct Destinations {
    pub allow_private: bool,
}

/// Why a destination is refused; `Display` is what the API tells the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("must be an absolute http or https URL")]
    NotHttp,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("must have a host")]
    NoHost,
    #[error("resolves to a loopback, private, link-local or otherwise non-public address")]
    Private,
    #[error("does not resolve: {0}")]
    Unresolved(String),
}

/// Whether `ip` is an address a listener may not reach by default.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let segments = v6.segments();
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (segments[0] & 0xfe00) == 0xfc00
                || (segments[0] & 0xffc0) == 0xfe80
                // 64:ff9b::/96 (NAT64) and 2002::/16 (6to4) carry an IPv4 address.
                || (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                    && private_v4(Ipv4Addr::from(embedded_v4(v6, 12))))
                || (segments[0] == 0x2002 && private_v4(Ipv4Addr::from(embedded_v4(v6, 2))))
                // IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks).
                || (segments[..6] == [0; 6] && private_v4(Ipv4Addr::from(embedded_v4(v6, 12))))
        }
    }
}

fn embedded_v4(v6: Ipv6Addr, at: usize) -> [u8; 4] {
    let o = v6.octets();
    [o[at], o[at + 1], o[at + 2], o[at + 3]]
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        // 100.64.0.0/10 shared address space (carrier-grade NAT).
        || (a == 100 && (b & 0xc0) == 64)
        // 192.0.0.0/24 protocol assignments, 198.18.0.0/15 benchmarking, 240.0.0.0/4.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b & 0xfe) == 18)
        || a >= 240
}

impl Destinations {
    /// Checks a URL as written: scheme, no credentials, a host; an IP-literal host
    /// must be allowed. Names are checked by [`Destinations::check`].
    pub fn check_syntax(&self, raw: &str) -> Result<Url, Refused> {
        let url = Url::parse(raw).map_err(|_| Refused::NotHttp)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::NotHttp);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::Credentials);
        }
        match url.host() {
            None => return Err(Refused::NoHost),
            Some(url::Host::Ipv4(ip)) if !self.allowed(IpAddr::V4(ip)) => {
                return Err(Refused::Private);
            }
            Some(url::Host::Ipv6(ip)) if !self.allowed(IpAddr::V6(ip)) => {
                return Err(Refused::Private);
            }
            Some(_) => {}
        }
        Ok(url)
    }

    /// Checks a URL and resolves its host now: every address must be allowed.
    pub async fn check(&self, raw: &str) -> Result<Url, Refused> {
        let url = self.check_syntax(raw)?;
        if let Some(url::Host::Domain(host)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            self.resolve(host, port).await?;
        }
        Ok(url)
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.allow_private || !is_private(ip)
    }

    /// The addresses of `host`, all of them allowed, or why not. One forbidden address
    /// refuses the name: connecting to "the public one" would be a race to lose.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Refused::Unresolved(e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(Refused::Unresolved("no address".into()));
        }
        if addrs.iter().any(|a| !self.allowed(a.ip())) {
            return Err(Refused::Private);
        }
        Ok(addrs)
    }
}

/// The delivery client's resolver: every connection's name is checked as it is
/// resolved, so what was allowed at create cannot become a private address later.
impl Resolve for Destinations {
    fn resolve(&self, name: Name) -> Resolving {
        let this = *self;
        Box::pin(async move {
            let addrs = this
                .resolve(name.as_str(), 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The one HTTP client of the delivery workers: connections kept and reused, no
/// redirects (a 3xx is a failed delivery), no proxy from the environment, and names
/// resolved through `destinations`.
pub fn client(destinations: Destinations) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(destinations))
        .pool_max_idle_per_host(64)
        .user_agent(concat!("leaseq/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().expect("an address");
            assert!(is_private(ip), "{ip} was allowed");
        }
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "64:ff9b::101:101",
        ] {
            let ip: IpAddr = ip.parse().expect("an address");
            assert!(!is_private(ip), "{ip} was refused");
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        let strict = Destinations {
            allow_private: false,
        };
        assert!(strict.check_syntax("https://example.com/hook").is_ok());
        assert_eq!(
            strict.check_syntax("ftp://example.com/").err(),
            Some(Refused::NotHttp)
        );
        assert_eq!(
            strict.check_syntax("file:///etc/passwd").err(),
            Some(Refused::NotHttp)
        );
        assert_eq!(
            strict.check_syntax("https://user:pw@example.com/").err(),
            Some(Refused::Credentials)
        );
        assert_eq!(
            strict.check_syntax("http://127.0.0.1:8080/").err(),
            Some(Refused::Private)
        );
        assert_eq!(
            strict.check_syntax("http://[::1]/").err(),
            Some(Refused::Private)
        );
        assert_eq!(
            strict.check_syntax("http://0x7f000001/").err(),
            Some(Refused::Private),
            "the URL parser reads numeric hosts as the address they are"
        );
        let open = Destinations {
            allow_private: true,
        };
        assert!(open.check_syntax("http://127.0.0.1:8080/").is_ok());
    }

    #[tokio::test]
    async fn names_are_resolved_and_checked() {
        let strict = Destinations {
            allow_private: false,
        };
        assert_eq!(
            strict.check("http://localhost:9/").await.err(),
            Some(Refused::Private)
        );
    }
}
