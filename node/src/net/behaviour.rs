//! The libp2p behaviour of a mesh node and how the swarm is built: QUIC, and TCP +
//! noise + yamux, both behind DNS resolution (`/dns4`, `/dns6`, `/dnsaddr`) and the
//! circuit relay v2 client; identify, ping, kademlia, gossipsub with application
//! validation, content-hash message ids and peer scoring ([`super::scoring`]), the
//! transfer protocol, and reachability: AutoNAT v2 (client and server), a relay
//! server when configured, and DCUtR hole punching.

use std::time::Duration;

use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    autonat, dcutr, identify, kad, noise, ping, relay, tcp, yamux, StreamProtocol, Swarm,
};

use super::error::NetError;
use super::transfer::codec::{TransferCodec, TRANSFER_PROTOCOL};
use crate::home::config::{NodeConfig, Reachability};

/// The gossip topic of product announcements.
pub const ANNOUNCE_TOPIC: &str = "mesh/announce/v1";

/// The gossip topic of governance policies.
pub const POLICY_TOPIC: &str = "mesh/policy/v1";

/// Gossip messages larger than this are dropped by gossipsub itself.
pub const MAX_GOSSIP_BYTES: usize = 64 * 1024;

/// How long a transfer request may take before it fails.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The mesh's Kademlia protocol: only peers that speak it go into the routing
/// table.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/kad/1");

/// Concurrent inbound plus outbound transfer streams per connection.
pub(crate) const MAX_STREAMS_PER_CONNECTION: usize = 64;

/// The node's combined behaviour.
#[derive(NetworkBehaviour)]
pub(crate) struct MeshBehaviour {
    /// Caps on connections: total, per peer, and pending (see [`connection_limits`]).
    pub(crate) limits: libp2p::connection_limits::Behaviour,
    /// Refuses new connections while the process uses more memory than
    /// `[limits] max_memory_mib`.
    pub(crate) memory: libp2p::memory_connection_limits::Behaviour,
    /// Exchange of listen addresses and protocols.
    pub(crate) identify: identify::Behaviour,
    /// Liveness.
    pub(crate) ping: ping::Behaviour,
    /// Peer routing.
    /// Off without discovery: kademlia learns the address of every peer it talks to
    /// and of every peer those know, and would hand them to any dial, so a node
    /// told to connect only to its configured links would reach everyone.
    pub(crate) kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    /// Announcement dissemination.
    pub(crate) gossipsub: gossipsub::Behaviour,
    /// Manifests, chunks and catalog pages.
    pub(crate) transfer: request_response::Behaviour<TransferCodec>,
    /// Reserving slots on relays and dialling through them.
    pub(crate) relay_client: relay::client::Behaviour,
    /// Relaying for others, when `[network] relay_server` is on.
    pub(crate) relay: Toggle<relay::Behaviour>,
    /// Hole punching: upgrades a relayed connection to a direct one.
    pub(crate) dcutr: Toggle<dcutr::Behaviour>,
    /// Asks peers to dial this node's candidate addresses back (reachability).
    pub(crate) autonat: autonat::v2::client::Behaviour,
    /// Dials other nodes' candidate addresses back when they ask.
    pub(crate) autonat_server: autonat::v2::server::Behaviour,
}

impl std::fmt::Debug for MeshBehaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeshBehaviour")
    }
}

/// Connections established with one peer at most: one each way through a fixed
/// link, with room for a redial racing a close.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// Connections established in all, at most.
pub const MAX_CONNECTIONS: u32 = 1024;
/// Connections being set up (handshakes in progress) each way, at most.
pub const MAX_PENDING_CONNECTIONS: u32 = 128;

/// The connection caps: a peer that dials again and again, or many peers at once,
/// are refused past them, before any handshake work for the pending ones.
pub(crate) fn connection_limits() -> libp2p::connection_limits::ConnectionLimits {
    libp2p::connection_limits::ConnectionLimits::default()
        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
        .with_max_established(Some(MAX_CONNECTIONS))
        .with_max_pending_incoming(Some(MAX_PENDING_CONNECTIONS))
        .with_max_pending_outgoing(Some(MAX_PENDING_CONNECTIONS))
}

/// The announcement topic.
pub(crate) fn announce_topic() -> IdentTopic {
    IdentTopic::new(ANNOUNCE_TOPIC)
}

/// The policy topic.
pub(crate) fn policy_topic() -> IdentTopic {
    IdentTopic::new(POLICY_TOPIC)
}

/// The gossip topic of signed usage reports.
pub const USAGE_TOPIC: &str = "mesh/usage/v1";

pub(crate) fn usage_topic() -> IdentTopic {
    IdentTopic::new(USAGE_TOPIC)
}

/// The gossip topic of signed provider records (who holds which versions).
pub const PROVIDERS_TOPIC: &str = "mesh/providers/v1";

pub(crate) fn providers_topic() -> IdentTopic {
    IdentTopic::new(PROVIDERS_TOPIC)
}

/// The gossip topic of signed access requests.
pub(crate) const ACCESS_REQUESTS_TOPIC: &str = "mesh/access-requests/v1";

pub(crate) fn access_requests_topic() -> IdentTopic {
    IdentTopic::new(ACCESS_REQUESTS_TOPIC)
}

/// The gossip topic of signed access decisions (grants, denials, revocations).
pub(crate) const ACCESS_DECISIONS_TOPIC: &str = "mesh/access-decisions/v1";

pub(crate) fn access_decisions_topic() -> IdentTopic {
    IdentTopic::new(ACCESS_DECISIONS_TOPIC)
}

/// What identify announces as the agent: mesh and its version.
pub fn agent_version() -> String {
    format!("mesh/{}", env!("CARGO_PKG_VERSION"))
}

/// How often AutoNAT tests a candidate address while some are untested.
const AUTONAT_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The relay server's limits from `[network]`.
fn relay_config(n: &crate::home::config::Network) -> relay::Config {
    relay::Config {
        max_reservations: n.relay_max_reservations,
        max_reservations_per_peer: 2,
        max_circuits: n.relay_max_circuits,
        // One dial opens a circuit per relayed address it tries, and a consumer
        // fetching from several NATed providers dials them all at once: a quarter
        // of the relay's circuits per peer, and never fewer than libp2p's 4.
        max_circuits_per_peer: (n.relay_max_circuits / 4).max(4),
        max_circuit_duration: Duration::from_secs(n.relay_max_circuit_secs),
        max_circuit_bytes: n.relay_max_circuit_bytes,
        ..relay::Config::default()
    }
}

/// Kademlia answers queries (server mode) only where others can reach this node:
/// when configured public, or when it listens on loopback only (a single-host mesh,
/// where every peer can reach it). Configured private it is a client. Otherwise it
/// starts as a client and serves once AutoNAT confirms an external address.
fn kad_mode(config: &NodeConfig) -> Option<kad::Mode> {
    let loopback_only = config.listen_addrs().is_ok_and(|addrs| {
        !addrs.is_empty()
            && addrs.iter().all(|a| {
                a.iter().any(|p| match p {
                    libp2p::multiaddr::Protocol::Ip4(ip) => ip.is_loopback(),
                    libp2p::multiaddr::Protocol::Ip6(ip) => ip.is_loopback(),
                    _ => false,
                })
            })
    });
    match config.network.reachability {
        Reachability::Public => Some(kad::Mode::Server),
        Reachability::Private => Some(kad::Mode::Client),
        Reachability::Auto if loopback_only => Some(kad::Mode::Server),
        Reachability::Auto => None,
    }
}

/// Builds the swarm for `key` and subscribes to the announcement topic; gossipsub
/// registers its metrics (message counts with and without duplicates, mesh sizes,
/// invalid messages) in `registry` under `gossipsub_`, and every byte the
/// transports carry (`libp2p_bandwidth_bytes_total`, by direction and transport).
///
/// Without `config.discovery`, identify keeps no cache of the addresses peers report, so a
/// request to a peer that is not connected can only dial addresses this node itself
/// dialled before (its configured links), never one learned from others.
pub(crate) fn build_swarm(
    key: Keypair,
    registry: &mut prometheus_client::registry::Registry,
    config: &NodeConfig,
) -> Result<Swarm<MeshBehaviour>, NetError> {
    let net = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            // TLS first (AES-GCM: see `tls`), Noise for peers without it.
            (super::tls::Tls::new, noise::Config::new),
            yamux::Config::default,
        )
        .map_err(|e| net(&e))?
        .with_quic()
        .with_dns()
        .map_err(|e| {
            NetError::Setup(format!(
                "reading the system's DNS configuration (/etc/resolv.conf): {e}"
            ))
        })?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| net(&e))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key, relay_client| behaviour(key, relay_client, registry, config))
        .map_err(|e| net(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    for topic in [
        announce_topic(),
        policy_topic(),
        usage_topic(),
        providers_topic(),
        access_requests_topic(),
        access_decisions_topic(),
    ] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| NetError::Setup(e.to_string()))?;
    }
    Ok(swarm)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every behaviour of the swarm, configured.
fn behaviour(
    key: &Keypair,
    relay_client: relay::client::Behaviour,
    registry: &mut prometheus_client::registry::Registry,
    config: &NodeConfig,
) -> Result<MeshBehaviour, BoxError> {
    let peer_id = key.public().to_peer_id();
    let discovery = config.discovery;
    let max_memory = usize::try_from(config.limits.max_memory_mib.saturating_mul(1024 * 1024))
        .unwrap_or(usize::MAX);
    let network = &config.network;
    let mut kad = kad::Behaviour::with_config(
        peer_id,
        kad::store::MemoryStore::new(peer_id),
        kad::Config::new(KAD_PROTOCOL),
    );
    kad.set_mode(kad_mode(config));
    Ok(MeshBehaviour {
        limits: libp2p::connection_limits::Behaviour::new(connection_limits()),
        memory: libp2p::memory_connection_limits::Behaviour::with_max_bytes(max_memory),
        identify: identify::Behaviour::new(
            identify::Config::new("/mesh/id/1".into(), key.public())
                .with_agent_version(agent_version())
                .with_cache_size(if discovery { 100 } else { 0 }),
        ),
        ping: ping::Behaviour::default(),
        kad: Toggle::from(discovery.then_some(kad)),
        gossipsub: gossipsub_behaviour(registry)?,
        transfer: request_response::Behaviour::with_codec(
            TransferCodec,
            [(TRANSFER_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(REQUEST_TIMEOUT)
                .with_max_concurrent_streams(MAX_STREAMS_PER_CONNECTION),
        ),
        relay_client,
        relay: Toggle::from(
            network
                .relay_server
                .then(|| relay::Behaviour::new(peer_id, relay_config(network))),
        ),
        dcutr: Toggle::from(
            network
                .hole_punching
                .then(|| dcutr::Behaviour::new(peer_id)),
        ),
        autonat: autonat::v2::client::Behaviour::new(
            rand::make_rng::<rand::rngs::StdRng>(),
            autonat::v2::client::Config::default().with_probe_interval(AUTONAT_PROBE_INTERVAL),
        ),
        autonat_server: autonat::v2::server::Behaviour::default(),
    })
}

/// Gossipsub: anonymous envelopes (each payload is signed by its author and
/// checked by the validator, so gossipsub's own signature would only be verified
/// again on every duplicate), a size cap per topic, message ids by content, peer
/// scoring (see `scoring`), metrics.
fn gossipsub_behaviour(
    registry: &mut prometheus_client::registry::Registry,
) -> Result<gossipsub::Behaviour, BoxError> {
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validate_messages()
        .validation_mode(ValidationMode::Anonymous)
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .max_transmit_size_for_topic(
            mesh_protocol::policy::MAX_POLICY_BYTES + 64 * 1024,
            policy_topic().hash(),
        )
        .max_transmit_size_for_topic(
            mesh_protocol::usage::MAX_USAGE_BYTES + 4 * 1024,
            usage_topic().hash(),
        )
        .max_transmit_size_for_topic(
            mesh_protocol::provider::MAX_PROVIDER_BYTES + 4 * 1024,
            providers_topic().hash(),
        )
        .heartbeat_interval(Duration::from_millis(700))
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .build()
        .map_err(|e| e.to_string())?;
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)
        .map_err(|e| e.to_string())?
        .with_metrics(
            registry.sub_registry_with_prefix("gossipsub"),
            gossipsub::MetricsConfig::default(),
        );
    gossipsub.with_peer_score(
        super::scoring::params(&[
            announce_topic().hash(),
            policy_topic().hash(),
            usage_topic().hash(),
            providers_topic().hash(),
        ]),
        super::scoring::thresholds(),
    )?;
    Ok(gossipsub)
}
