//! `http.proxy` `trusted_proxies`: the networks whose forwarding headers the
//! gateway believes, and the client address derived from them.
//!
//! Invariants: with no trusted network (the default), the client is the
//! socket's peer and every incoming `X-Forwarded-*` is replaced. Only a peer
//! inside a trusted network may pass on `X-Forwarded-For/Proto/Host`; the
//! client address behind it is the rightmost `X-Forwarded-For` hop that is
//! not itself trusted (hops to the left of it could be written by anyone).
//! Addresses are compared in canonical form (`::ffff:10.0.0.1` is
//! `10.0.0.1`).

use std::net::IpAddr;

use crate::http::front::Headers;

/// One network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128`; a bare address is a single host.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let expected = || format!("expected a network like 10.0.0.0/8 or ::1/128, found {s:?}");
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let net: IpAddr = addr.parse().map_err(|_| expected())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            "" if !s.contains('/') => max,
            p => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(expected)?,
        };
        Ok(Cidr { net, prefix })
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
            IpAddr::V6(v6) => u128::from(v6),
        };
        let ip = ip.to_canonical();
        // The network's bits are the top `prefix` bits of the 128-bit form.
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix))
            .unwrap_or(0);
        ip.is_ipv4() == self.net.is_ipv4() && (bits(ip) ^ bits(self.net)) & mask == 0
    }
}

/// The trusted networks of one proxy.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(networks: Vec<Cidr>) -> Self {
        TrustedProxies(networks)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// Whether the direct peer may pass on forwarding headers.
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        !self.0.is_empty() && peer.is_some_and(|p| self.contains(p))
    }

    /// The client's address: the peer, or behind a trusted peer the
    /// rightmost untrusted `X-Forwarded-For` hop (the leftmost hop when
    /// all are trusted; the peer when a hop does not parse).
    pub(crate) fn client(&self, peer: Option<IpAddr>, headers: Headers<'_>) -> Option<IpAddr> {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let values: Vec<&[u8]> = headers
            .get_all(&super::forward::X_FORWARDED_FOR_NAME)
            .collect();
        for value in values.iter().rev() {
            let text = std::str::from_utf8(value).unwrap_or("");
            for hop in text.rsplit(',') {
                let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                    return peer;
                };
                client = Some(ip);
                if !self.contains(ip) {
                    return client;
                }
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderMap;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_and_nothing_else() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(
            !net.contains(ip("::a00:1")),
            "an IPv6 address is not in a v4 net"
        );
        let host = Cidr::parse("127.0.0.1/32").unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        assert_eq!(Cidr::parse("127.0.0.1"), Ok(host));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("::1/128").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn malformed_networks_are_refused() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::1/129",
            "10.0.0/8",
            "host/8",
            "10.0.0.0/-1",
            "/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop_behind_a_trusted_peer() {
        let trusted = TrustedProxies::new(vec![Cidr::parse("10.0.0.0/8").unwrap()]);
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for".parse().unwrap(),
            "1.1.1.1, 2.2.2.2".parse().unwrap(),
        );
        headers.append(
            "x-forwarded-for".parse().unwrap(),
            "10.0.0.9".parse().unwrap(),
        );
        assert_eq!(
            trusted.client(Some(ip("10.0.0.1")), Headers::Map(&headers)),
            Some(ip("2.2.2.2"))
        );
        assert_eq!(
            trusted.client(Some(ip("9.9.9.9")), Headers::Map(&headers)),
            Some(ip("9.9.9.9")),
            "an untrusted peer is the client"
        );
        assert_eq!(
            TrustedProxies::default().client(Some(ip("10.0.0.1")), Headers::Map(&headers)),
            Some(ip("10.0.0.1"))
        );
    }
}
