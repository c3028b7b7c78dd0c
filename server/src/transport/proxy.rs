//! Which peers may describe the original request with `X-Forwarded-*` headers.
//!
//! Forward-auth proxies (Caddy `forward_auth`, Traefik `forwardAuth`, nginx `auth_request`)
//! call the HTTP listener with their own method and path and put the client's in
//! `X-Forwarded-Method`, `-Proto`, `-Host` and `-Uri`. Anyone who can reach the listener can
//! send those headers too, so they are believed only from these networks; from any other peer
//! the request itself is the check.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The networks whose `X-Forwarded-*` headers are believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// The default: loopback only (a proxy on the same host or in the same pod).
pub const DEFAULT_TRUSTED_PROXIES: [&str; 2] = ["127.0.0.0/8", "::1/128"];

impl Default for TrustedProxies {
    fn default() -> Self {
        Self(
            DEFAULT_TRUSTED_PROXIES
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
        )
    }
}

impl TrustedProxies {
    /// Exactly these networks (empty: trust no one).
    pub fn new(networks: impl IntoIterator<Item = Cidr>) -> Self {
        Self(networks.into_iter().map(|c| c.0).collect())
    }

    /// Trust no peer: `X-Forwarded-*` is always ignored.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// Whether `peer` is in one of the networks. An IPv4-mapped IPv6 address
    /// (`::ffff:127.0.0.1`, from a dual-stack listener) counts as its IPv4 address.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }
}

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address is a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

/// Why a `--trusted-proxy` value is not a network.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IP network in CIDR notation (e.g. 10.0.0.0/8, ::1/128) or an IP address")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            // `10.1.2.3/8` means the network 10.0.0.0/8, as in most firewall syntaxes.
            return Ok(Self(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| Self(IpNet::from(ip)))
            .map_err(|_| CidrError(s.to_owned()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(cidrs: &[&str]) -> TrustedProxies {
        TrustedProxies::new(cidrs.iter().map(|c| c.parse::<Cidr>().unwrap()))
    }

    #[test]
    fn the_default_trusts_loopback_only() {
        let t = TrustedProxies::default();
        let cases = [
            ("127.0.0.1", true),
            ("127.3.4.5", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("10.0.0.1", false),
            ("::2", false),
            ("::ffff:10.0.0.1", false),
        ];
        for (ip, want) in cases {
            assert_eq!(t.contains(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn configured_networks_replace_the_default() {
        let t = trusted(&["10.0.0.0/8", "192.168.1.7"]);
        assert!(t.contains("10.200.0.1".parse().unwrap()));
        assert!(t.contains("192.168.1.7".parse().unwrap()));
        assert!(!t.contains("192.168.1.8".parse().unwrap()));
        assert!(!t.contains("127.0.0.1".parse().unwrap()));
        assert!(!TrustedProxies::none().contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn cidr_parsing_accepts_networks_and_addresses_and_rejects_the_rest() {
        let cases = [
            ("10.0.0.0/8", Some("10.0.0.0/8")),
            ("10.1.2.3/8", Some("10.0.0.0/8")),
            ("::1", Some("::1/128")),
            ("192.0.2.1", Some("192.0.2.1/32")),
            ("fd00::/8", Some("fd00::/8")),
            ("10.0.0.0/33", None),
            ("localhost", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<Cidr>().ok().map(|c| c.to_string());
            assert_eq!(got.as_deref(), want, "{input:?}");
        }
    }
}
