//! The client's address: the peer's, unless the peer is a trusted proxy
//! (`server.trusted_proxies`), in which case the client it names in `X-Forwarded-For`
//! (or, without that header, `Forwarded`).
//!
//! Anyone can send those headers, so they are believed only from a trusted peer, and
//! read from the right: each trusted proxy appends the address it saw, so the rightmost
//! entry that is not itself a trusted proxy is the client; entries further left were
//! written by the client and prove nothing.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::http::header::HeaderMap;

/// An address or a CIDR block: `192.0.2.7`, `10.0.0.0/8`, `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for IpBlock {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not an IP address or a CIDR block like 10.0.0.0/8");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?,
        };
        Ok(Self { network, prefix })
    }
}

impl IpBlock {
    /// Whether `ip` is in this block; an IPv4-mapped IPv6 address counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose forwarding headers are believed (`server.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpBlock>);

impl TrustedProxies {
    /// Parses `server.trusted_proxies` entries.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| entry.parse())
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// Whether the request from `peer` came through a trusted proxy.
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|peer| self.contains(peer))
    }

    /// The client of a request that `peer` sent with these headers.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.contains(peer) {
            return Some(peer);
        }
        let mut client = peer;
        for hop in forwarded_for(headers).iter().rev() {
            // An entry that is not an address ("unknown", an obfuscated name): the
            // hop after it is as far as anyone can tell.
            let Some(hop) = hop else { break };
            client = *hop;
            if !self.contains(*hop) {
                break;
            }
        }
        Some(client)
    }
}

/// The `X-Forwarded-For` chain, left to right, or else the `for=` values of `Forwarded`
/// (RFC 7239); `None` for an entry that is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().flat_map(|v| v.split(',')).map(node_ip).collect();
    }
    values("forwarded")
        .iter()
        .flat_map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| node_ip(value))
            })
        })
        .collect()
}

/// The address in a node: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`,
/// `"[2001:db8::1]:4711"`.
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    let (host, _port) = node.rsplit_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        TrustedProxies::parse(&entries).expect("valid entries")
    }

    #[test]
    fn blocks_match_addresses_by_prefix() {
        let block: IpBlock = "10.0.0.0/8".parse().expect("block");
        assert!(block.contains(ip("10.200.3.4")));
        assert!(block.contains(ip("::ffff:10.1.2.3")));
        assert!(!block.contains(ip("11.0.0.1")));
        let one: IpBlock = "192.0.2.7".parse().expect("address");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: IpBlock = "2001:db8::/32".parse().expect("block");
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        let all: IpBlock = "0.0.0.0/0".parse().expect("block");
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("::1")));
        for bad in ["10.0.0.0/33", "localhost", "10.0.0.0/", "::/129", ""] {
            assert!(bad.parse::<IpBlock>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let proxies = trusted(&[]);
        let sent = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.7"),
        ]);
        assert_eq!(
            proxies.client_ip(Some(ip("127.0.0.1")), &sent),
            Some(ip("127.0.0.1"))
        );
        let proxies = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            proxies.client_ip(Some(ip("192.0.2.1")), &sent),
            Some(ip("192.0.2.1"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = Some(ip("10.0.0.2"));
        // The client forged the first entry; 10.0.0.3 is another of our proxies.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.3")]);
        assert_eq!(proxies.client_ip(peer, &chain), Some(ip("203.0.113.9")));
        let split = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(proxies.client_ip(peer, &split), Some(ip("203.0.113.9")));
        let forwarded = headers(&[(
            "forwarded",
            r#"for=1.2.3.4, for="[2001:db8::17]:4711";proto=https"#,
        )]);
        assert_eq!(
            proxies.client_ip(peer, &forwarded),
            Some(ip("2001:db8::17"))
        );
        let with_port = headers(&[("x-forwarded-for", "203.0.113.9:5123")]);
        assert_eq!(proxies.client_ip(peer, &with_port), Some(ip("203.0.113.9")));
        // Nothing forwarded, or nothing usable: the proxy itself.
        assert_eq!(proxies.client_ip(peer, &headers(&[])), peer);
        let unknown = headers(&[("x-forwarded-for", "1.2.3.4, unknown")]);
        assert_eq!(proxies.client_ip(peer, &unknown), peer);
    }
}
