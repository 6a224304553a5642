//! What an address says about a connection: relayed or direct, its transport, and
//! whether anyone could dial it.

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// How a connection reaches its peer.
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether an address names no interface (`0.0.0.0`, `::`): nobody can dial it.
pub(crate) fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// The transport of a connection address: `quic`, `tcp`, or `other`.
pub(crate) fn transport_of(addr: &Multiaddr) -> &'static str {
    // A relayed address names the relay's transport first; what counts is the hop.
    let mut transport = "other";
    for p in addr.iter() {
        match p {
            Protocol::QuicV1 | Protocol::Quic => transport = "quic",
            Protocol::Tcp(_) => transport = "tcp",
            _ => {}
        }
    }
    transport
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_classified() {
        let tcp: Multiaddr = "/ip4/10.0.0.1/tcp/4801".parse().unwrap();
        let quic: Multiaddr = "/ip4/10.0.0.1/udp/4801/quic-v1".parse().unwrap();
        let relayed: Multiaddr =
            "/ip4/10.0.0.9/tcp/4801/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
                .parse()
                .unwrap();
        assert_eq!(transport_of(&tcp), "tcp");
        assert_eq!(transport_of(&quic), "quic");
        assert!(!is_relayed(&quic));
        assert!(is_relayed(&relayed));
    }
}
