//! `config.toml`: the node's settings, with defaults, and the validated runtime form
//! that command-line flags override.

use std::net::SocketAddr;
use std::path::PathBuf;

use libp2p::Multiaddr;
use mesh_protocol::DomainName;
use serde::{Deserialize, Serialize};

use super::error::HomeError;

/// The node's configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The domain this node publishes for.
    pub domain: DomainName,
    /// libp2p listen addresses: TCP and QUIC (`/udp/PORT/quic-v1`) by default.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Peers to connect to at start (multiaddrs ending in `/p2p/<peer id>`); a
    /// `/dns4/`, `/dns6/` or `/dnsaddr/` name is resolved when dialled.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// Addresses others can reach this node at that it cannot see itself: a public
    /// IP forwarded to it, a DNS name (`/dns4/mesh.example.org/udp/4801/quic-v1`).
    /// Advertised at once, with no reachability probe needed.
    #[serde(default)]
    pub external: Vec<String>,
    /// How others reach this node: relays, reachability and hole punching.
    #[serde(default)]
    pub network: Network,
    /// Control API address; loopback only unless you mean otherwise (port 0 picks one
    /// and writes it to `api.addr`).
    #[serde(default = "default_api")]
    pub api_listen: SocketAddr,
    /// How many complete versions of each product `mesh gc` keeps.
    #[serde(default = "default_keep_versions")]
    pub keep_versions: usize,
    /// How long a policy drafted here (`mesh policy draft`) is valid when its change
    /// file names no `expires_in`, e.g. `"365d"`.
    #[serde(default = "default_policy_validity")]
    pub policy_validity: String,
    /// Find peers through kademlia and identify (the default). Off, the node connects
    /// only to its bootstrap peers and those added with `mesh peers add`, redialling
    /// them when a connection drops: for fixed topologies, such as a testnet whose
    /// links run through a fault proxy.
    #[serde(default = "default_discovery")]
    pub discovery: bool,
    /// Let the control API listen on a non-loopback address. Off by default: the
    /// API serves the catalog and usage to anyone who can reach it, and guards
    /// publishing and policy changes with a bearer token sent in clear text; see
    /// SECURITY.md before turning this on.
    #[serde(default)]
    pub api_allow_remote: bool,
    /// Caps on what peers may ask of this node.
    #[serde(default)]
    pub limits: Limits,
    /// The Arrow Flight SQL port: SQL over the mesh's products for any Flight SQL
    /// client (ADBC, JDBC), authenticated by consumer tokens (`mesh token`).
    #[serde(default)]
    pub flight_sql: PortConfig,
    /// The Delta Sharing port: every product this node's rules let a recipient
    /// read, as shared tables for the Delta Sharing connectors (pandas, Spark),
    /// authenticated by the same consumer tokens.
    #[serde(default)]
    pub delta_sharing: SharingConfig,
    /// Where OpenLineage events of this node's publishes go (none by default).
    #[serde(default)]
    pub lineage: LineageConfig,
    /// How the node reaches S3-compatible object storage (`s3://` outputs): the
    /// endpoint, region and profile; credentials come from the AWS environment
    /// variables or profile files only.
    #[serde(default)]
    pub object_store: mesh_storage::objects::ObjectSettings,
    /// Where the chunk store keeps its sealed packs (`[storage] url =
    /// "s3://bucket/prefix"`): only the active pack, the index logs and the index
    /// stay on this disk.
    #[serde(default)]
    pub storage: StorageConfig,
}

/// The `[storage]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `s3://bucket/prefix` for sealed packs; unset keeps them on local disk.
    pub url: Option<String>,
    /// The size in MiB at which a pack is sealed (default 1024).
    pub pack_mib: Option<u64>,
}

impl StorageConfig {
    /// The pack destination, checked.
    pub fn packs_url(&self) -> Result<Option<mesh_storage::objects::ObjectUrl>, HomeError> {
        self.url
            .as_deref()
            .map(|u| {
                u.parse()
                    .map_err(|e| HomeError::Invalid(format!("[storage] url: {e}")))
            })
            .transpose()
    }
}

fn default_discovery() -> bool {
    true
}

fn default_keep_versions() -> usize {
    3
}

fn default_policy_validity() -> String {
    mesh_protocol::duration::format_duration(mesh_protocol::policy::DEFAULT_VALIDITY_SECS)
}

fn default_listen() -> Vec<String> {
    vec![
        "/ip4/127.0.0.1/tcp/0".into(),
        "/ip4/127.0.0.1/udp/0/quic-v1".into(),
    ]
}

fn default_api() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            domain: DomainName::new("default").unwrap_or_else(|_| unreachable!()),
            listen: default_listen(),
            bootstrap: Vec::new(),
            external: Vec::new(),
            network: Network::default(),
            api_listen: default_api(),
            keep_versions: default_keep_versions(),
            policy_validity: default_policy_validity(),
            discovery: default_discovery(),
            api_allow_remote: false,
            limits: Limits::default(),
            flight_sql: PortConfig::default(),
            delta_sharing: SharingConfig::default(),
            lineage: LineageConfig::default(),
            object_store: mesh_storage::objects::ObjectSettings::default(),
            storage: StorageConfig::default(),
        }
    }
}

impl NodeConfig {
    /// Parses TOML.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Renders TOML.
    pub fn to_toml(&self) -> Result<String, HomeError> {
        toml::to_string_pretty(self)
            .map_err(|e| HomeError::Invalid(format!("encoding config: {e}")))
    }

    /// Checks the settings that parsing alone does not: limits that let work
    /// through, and an API address that is loopback unless remote access is allowed.
    pub fn validate(&self) -> Result<(), HomeError> {
        self.limits.validate()?;
        self.flight_sql.validate("flight_sql")?;
        self.delta_sharing.validate()?;
        self.lineage.validate()?;
        self.storage.packs_url()?;
        self.network.validate()?;
        self.external_addrs()?;
        self.relay_addrs()?;
        if !self.api_listen.ip().is_loopback() && !self.api_allow_remote {
            return Err(HomeError::Invalid(format!(
                "api_listen {} is not a loopback address: the control API would be reachable from other machines, with its token sent in clear text. Use 127.0.0.1, or set `api_allow_remote = true` in config.toml behind a TLS proxy (see SECURITY.md)",
                self.api_listen
            )));
        }
        Ok(())
    }

    /// Parses the listen addresses.
    pub fn listen_addrs(&self) -> Result<Vec<Multiaddr>, HomeError> {
        parse_addrs("listen", &self.listen)
    }

    /// Parses the bootstrap addresses; each must name its peer with `/p2p/<id>`.
    pub fn bootstrap_addrs(&self) -> Result<Vec<(libp2p::PeerId, Multiaddr)>, HomeError> {
        peer_addrs("bootstrap", &self.bootstrap)
    }

    /// Parses the configured external addresses.
    pub fn external_addrs(&self) -> Result<Vec<Multiaddr>, HomeError> {
        parse_addrs("external", &self.external)
    }

    /// Parses the configured relays; each must name its peer with `/p2p/<id>`.
    pub fn relay_addrs(&self) -> Result<Vec<(libp2p::PeerId, Multiaddr)>, HomeError> {
        peer_addrs("[network] relays", &self.network.relays)
    }
}

fn peer_addrs(what: &str, addrs: &[String]) -> Result<Vec<(libp2p::PeerId, Multiaddr)>, HomeError> {
    parse_addrs(what, addrs)?
        .into_iter()
        .map(|a| match a.iter().last() {
            Some(libp2p::multiaddr::Protocol::P2p(peer)) => Ok((peer, a)),
            _ => Err(HomeError::Invalid(format!(
                "{what} address {a} must end with /p2p/<peer id> (see `mesh status` on that node)"
            ))),
        })
        .collect()
}

/// A TLS identity as read from its files: the PEM certificate chain and key.
pub type TlsPem = (Vec<u8>, Vec<u8>);

/// An output port of the node (a `[flight_sql]` section): where it listens and
/// with what TLS identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortConfig {
    /// Serve the port.
    pub enabled: bool,
    /// The address; loopback unless TLS is configured (port 0 picks one and writes
    /// it to the home, e.g. `flight_sql.addr`).
    pub listen: SocketAddr,
    /// PEM certificate chain for TLS; needed, with `tls_key`, for a non-loopback
    /// address.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl PortConfig {
    /// Checks that a non-loopback address has TLS, and that the certificate and
    /// key come together.
    pub fn validate(&self, section: &str) -> Result<(), HomeError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(HomeError::Invalid(format!(
                    "[{section}] needs both tls_cert and tls_key (PEM files), or neither"
                )))
            }
            (None, None) if self.enabled && !self.listen.ip().is_loopback() => {
                return Err(HomeError::Invalid(format!(
                    "[{section}] listen {} is not a loopback address: its tokens would cross the network in clear text. Set tls_cert and tls_key (PEM files), or listen on 127.0.0.1",
                    self.listen
                )))
            }
            _ => {}
        }
        Ok(())
    }

    /// The TLS certificate and key, read, if configured.
    pub fn tls_identity(&self, section: &str) -> Result<Option<TlsPem>, HomeError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| {
                HomeError::Invalid(format!("[{section}] reading {}: {e}", p.display()))
            })
        };
        Ok(Some((read(cert)?, read(key)?)))
    }
}

/// The `[delta_sharing]` section: the port's address and TLS identity (as
/// [`PortConfig`]), and how much converted Parquet it keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharingConfig {
    /// Serve the port.
    pub enabled: bool,
    /// The address; loopback unless TLS is configured (port 0 picks one and
    /// writes it to `delta_sharing.addr`).
    pub listen: SocketAddr,
    /// PEM certificate chain for TLS; needed, with `tls_key`, for a non-loopback
    /// address.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The most MiB of Parquet files converted from CSV and JSON products that
    /// the node keeps (`sharing/`); the least recently served go first.
    pub cache_mib: u64,
    /// How long a file link the port hands out works, in seconds (1 to 604800).
    pub link_ttl_secs: u64,
}

impl Default for SharingConfig {
    fn default() -> Self {
        let port = PortConfig::default();
        SharingConfig {
            enabled: port.enabled,
            listen: port.listen,
            tls_cert: None,
            tls_key: None,
            cache_mib: 10 * 1024,
            link_ttl_secs: 3600,
        }
    }
}

impl SharingConfig {
    /// Checks the port as every port, and the link lifetime.
    pub fn validate(&self) -> Result<(), HomeError> {
        self.port().validate("delta_sharing")?;
        if !(1..=7 * 24 * 3600).contains(&self.link_ttl_secs) {
            return Err(HomeError::Invalid(format!(
                "[delta_sharing] link_ttl_secs = {}: give 1 to 604800 seconds (file links are short-lived)",
                self.link_ttl_secs
            )));
        }
        Ok(())
    }

    /// Its address and TLS identity, as every port has them.
    pub fn port(&self) -> PortConfig {
        PortConfig {
            enabled: self.enabled,
            listen: self.listen,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
        }
    }
}

/// The `[lineage]` section: where each publish's OpenLineage event goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LineageConfig {
    /// A JSON-lines file the events are appended to (relative to the node home,
    /// or absolute).
    pub file: Option<PathBuf>,
    /// An HTTP endpoint each event is POSTed to as JSON, e.g. Marquez's
    /// `http://localhost:5000/api/v1/lineage`.
    pub url: Option<String>,
    /// The OpenLineage namespace of the datasets (products) and jobs.
    pub namespace: String,
}

impl Default for LineageConfig {
    fn default() -> Self {
        LineageConfig {
            file: None,
            url: None,
            namespace: "mesh".into(),
        }
    }
}

impl LineageConfig {
    /// Checks the endpoint's scheme and the namespace.
    pub fn validate(&self) -> Result<(), HomeError> {
        if let Some(url) = &self.url {
            if !url.starts_with("http://") {
                return Err(HomeError::Invalid(format!(
                    "[lineage] url {url:?}: give an http:// endpoint (https is not built in; put the node and the endpoint behind a TLS proxy, or use `file`)"
                )));
            }
        }
        if self.namespace.trim().is_empty() {
            return Err(HomeError::Invalid(
                "[lineage] namespace is empty: name the namespace of the mesh's datasets (e.g. \"mesh\")".into(),
            ));
        }
        Ok(())
    }
}

/// Whether this node is publicly reachable, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// Learn it: AutoNAT asks peers to dial back; reachable means public.
    #[default]
    Auto,
    /// Reachable: serve the DHT and never reserve a relay slot.
    Public,
    /// Behind a NAT or firewall: reserve relay slots at once, DHT client only.
    Private,
}

/// The `[network]` section of `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// `auto` (AutoNAT decides), `public` or `private`.
    pub reachability: Reachability,
    /// Relays to reserve a slot on when this node is not publicly reachable
    /// (multiaddrs ending in `/p2p/<peer id>`). Connected peers that run a relay
    /// are used as well.
    pub relays: Vec<String>,
    /// Upgrade relayed connections to direct ones by hole punching (DCUtR).
    pub hole_punching: bool,
    /// Serve as a relay for nodes that are not reachable.
    pub relay_server: bool,
    /// Relay: reservations held at once, at most.
    pub relay_max_reservations: usize,
    /// Relay: relayed connections open at once, at most (one peer may hold a
    /// quarter of them).
    pub relay_max_circuits: usize,
    /// Relay: bytes one relayed connection may carry each way before it is closed
    /// (enough for hole punching, the catalog and small products).
    pub relay_max_circuit_bytes: u64,
    /// Relay: seconds one relayed connection may stay open.
    pub relay_max_circuit_secs: u64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            reachability: Reachability::Auto,
            relays: Vec::new(),
            hole_punching: true,
            relay_server: false,
            relay_max_reservations: 128,
            relay_max_circuits: 64,
            relay_max_circuit_bytes: 64 * 1024 * 1024,
            relay_max_circuit_secs: 30 * 60,
        }
    }
}

impl Network {
    /// Checks that relay limits let some work through.
    pub fn validate(&self) -> Result<(), HomeError> {
        if self.relay_server
            && (self.relay_max_reservations == 0
                || self.relay_max_circuits == 0
                || self.relay_max_circuit_bytes == 0
                || self.relay_max_circuit_secs == 0)
        {
            return Err(HomeError::Invalid(
                "[network] relay_server is on but a relay_max_* limit is 0, which would refuse every client; raise it or remove the line to use the default".into(),
            ));
        }
        Ok(())
    }
}

fn parse_addrs(what: &str, addrs: &[String]) -> Result<Vec<Multiaddr>, HomeError> {
    addrs
        .iter()
        .map(|a| {
            a.parse::<Multiaddr>().map_err(|e| {
                HomeError::Invalid(format!(
                    "{what} address {a:?} is not a multiaddr ({e}); example: /ip4/127.0.0.1/tcp/4801"
                ))
            })
        })
        .collect()
}

/// The `[limits]` section of `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Refuse new connections while the node process uses more memory than this
    /// (resident, in MiB).
    pub max_memory_mib: u64,
    /// Sustained transfer requests per second one peer may make; a 1 MiB chunk batch
    /// is one request.
    pub requests_per_second: u32,
    /// Requests one peer may make at once after a quiet spell.
    pub request_burst: u32,
    /// Reads (manifests and chunks) in flight for one peer at a time.
    pub transfers_per_peer: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_mib: 2048,
            requests_per_second: 1000,
            request_burst: 2000,
            transfers_per_peer: 16,
        }
    }
}

impl Limits {
    /// Checks that every limit lets some work through.
    pub fn validate(&self) -> Result<(), HomeError> {
        let zero = |name: &str| {
            HomeError::Invalid(format!(
                "[limits] {name} is 0, which would refuse everything; raise it or remove the line to use the default"
            ))
        };
        if self.max_memory_mib == 0 {
            return Err(zero("max_memory_mib"));
        }
        if self.requests_per_second == 0 {
            return Err(zero("requests_per_second"));
        }
        if self.request_burst == 0 {
            return Err(zero("request_burst"));
        }
        if self.transfers_per_peer == 0 {
            return Err(zero("transfers_per_peer"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_api_address_needs_explicit_permission() {
        let mut config =
            NodeConfig::from_toml("domain = \"sales\"\napi_listen = \"0.0.0.0:4900\"\n")
                .expect("parses");
        let err = config.validate().expect_err("refused").to_string();
        assert!(err.contains("api_allow_remote"), "{err}");
        config.api_allow_remote = true;
        config.validate().expect("allowed when asked for");
        assert!(
            NodeConfig::default().validate().is_ok(),
            "loopback by default"
        );
    }

    #[test]
    fn limits_are_read_from_their_section_with_defaults_for_the_rest() {
        let config =
            NodeConfig::from_toml("domain = \"sales\"\n[limits]\nrequests_per_second = 50\n")
                .expect("parses");
        assert_eq!(config.limits.requests_per_second, 50);
        assert_eq!(config.limits.request_burst, Limits::default().request_burst);
        let err = NodeConfig::from_toml("domain = \"sales\"\n[limits]\nbogus = 1\n")
            .expect_err("unknown keys are refused");
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn a_port_off_loopback_needs_tls_and_a_certificate_comes_with_its_key() {
        let config =
            NodeConfig::from_toml("domain = \"sales\"\n[flight_sql]\nlisten = \"0.0.0.0:4910\"\n")
                .expect("parses");
        let err = config.validate().expect_err("refused").to_string();
        assert!(
            err.contains("[flight_sql]") && err.contains("tls_cert"),
            "{err}"
        );
        let with_tls = NodeConfig::from_toml(
            "domain = \"sales\"\n[flight_sql]\nlisten = \"0.0.0.0:4910\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
        )
        .expect("parses");
        with_tls.validate().expect("TLS makes it acceptable");
        let half =
            NodeConfig::from_toml("domain = \"sales\"\n[flight_sql]\ntls_cert = \"c.pem\"\n")
                .expect("parses");
        let err = half.validate().expect_err("refused").to_string();
        assert!(err.contains("both tls_cert and tls_key"), "{err}");
        let off = NodeConfig::from_toml(
            "domain = \"sales\"\n[flight_sql]\nenabled = false\nlisten = \"0.0.0.0:4910\"\n",
        )
        .expect("parses");
        off.validate().expect("a port that is off binds nothing");
        assert!(NodeConfig::default().flight_sql.listen.ip().is_loopback());
    }
}
