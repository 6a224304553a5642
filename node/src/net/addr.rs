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

/// The relay an address goes through (the `/p2p/` before `/p2p-circuit`), if any.
fn relay_of(addr: &Multiaddr) -> Option<libp2p::PeerId> {
    let mut last = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(peer) => last = Some(peer),
            Protocol::P2pCircuit => return last,
            _ => {}
        }
    }
    None
}

/// The addresses to tell peers, in order, without duplicates, unspecified ones, or
/// a second address through the same relay.
///
/// A relay answers a reservation with each of its own addresses, so a node behind a
/// NAT listens at one relayed address per relay transport. A dialler tries all of a
/// peer's addresses at once, and each relayed one opens a circuit on the relay,
/// which counts them against its per-peer limit: one per relay is enough.
pub(crate) fn advertised<'a>(candidates: impl Iterator<Item = &'a Multiaddr>) -> Vec<Multiaddr> {
    let mut out: Vec<Multiaddr> = Vec::new();
    let mut relays = Vec::new();
    for a in candidates {
        if is_unspecified(a) || out.contains(a) {
            continue;
        }
        if let Some(relay) = relay_of(a) {
            if relays.contains(&relay) {
                continue;
            }
            relays.push(relay);
        }
        out.push(a.clone());
    }
    out
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

    #[test]
    fn one_relayed_address_per_relay_is_advertised() {
        let relay = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let other = "12D3KooWLbuAeafQe2avu8EBCQJAaZckqTghJsv79CGuiGe4v4zi";
        let addrs: Vec<Multiaddr> = [
            "/ip4/10.1.0.11/tcp/4801".to_string(),
            "/ip4/0.0.0.0/tcp/4801".to_string(),
            format!("/ip4/198.18.0.10/udp/4801/quic-v1/p2p/{relay}/p2p-circuit"),
            format!("/ip4/198.18.0.10/tcp/4801/p2p/{relay}/p2p-circuit"),
            "/ip4/10.1.0.11/tcp/4801".to_string(),
            format!("/ip4/198.18.0.20/tcp/4801/p2p/{other}/p2p-circuit"),
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let out: Vec<String> = advertised(addrs.iter())
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            out,
            vec![
                "/ip4/10.1.0.11/tcp/4801".to_string(),
                format!("/ip4/198.18.0.10/udp/4801/quic-v1/p2p/{relay}/p2p-circuit"),
                format!("/ip4/198.18.0.20/tcp/4801/p2p/{other}/p2p-circuit"),
            ]
        );
    }
}
