//! The node home: where a node keeps its identity, keys, token, config and data.
//!
//! ```text
//! HOME/config.toml    NodeConfig (domain, listen and bootstrap addresses, API address)
//! HOME/node.key       libp2p identity (protobuf-encoded ed25519), mode 0600
//! HOME/keys/D.key     the publisher key of domain D, mode 0600
//! HOME/api.token      bearer token for mutating control API calls, mode 0600
//! HOME/api.addr       written by a running daemon: its control API address
//! HOME/flight_sql.addr  written by a running daemon: its Flight SQL port's address
//! HOME/query/H/       the files of product version H (manifest hash) read by queries
//! HOME/db/            sled metadata (policy chain, catalog, manifests)
//! HOME/chunks/        content-addressed chunk files
//! HOME/policy.seal    the highest policy version accepted ([`seal`])
//! ```
//!
//! Map: [`config`] is `config.toml`, [`keyfile`] the private key files,
//! [`policy_file`] the policy files council members pass around, [`seal`] the guard
//! against a silently rolled-back database. Nothing here knows the network.

use std::fs;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use mesh_protocol::{DomainName, KeyPair};

pub mod config;
mod error;
pub mod keyfile;
pub mod policy_file;
pub(crate) mod seal;
mod write;

pub use error::HomeError;
pub use write::{write_atomic, write_private};

use config::NodeConfig;

/// Paths and identity of one node home.
#[derive(Debug, Clone)]
pub struct NodeHome {
    root: PathBuf,
}

impl NodeHome {
    /// A home rooted at `root` (not checked).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        NodeHome { root: root.into() }
    }

    /// The home directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `node.key`.
    pub fn node_key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }

    /// `keys/<domain>.key`.
    pub fn publisher_key_path(&self, domain: &DomainName) -> PathBuf {
        self.root.join("keys").join(format!("{domain}.key"))
    }

    /// `api.token`.
    pub fn token_path(&self) -> PathBuf {
        self.root.join("api.token")
    }

    /// `api.addr`, present while a daemon runs.
    pub fn api_addr_path(&self) -> PathBuf {
        self.root.join("api.addr")
    }

    /// `flight_sql.addr`: where the running daemon serves Flight SQL.
    pub fn flight_sql_addr_path(&self) -> PathBuf {
        self.root.join("flight_sql.addr")
    }

    /// `delta_sharing.endpoint`: the Delta Sharing port's endpoint URL (what a
    /// profile names) while it serves.
    pub fn delta_sharing_endpoint_path(&self) -> PathBuf {
        self.root.join("delta_sharing.endpoint")
    }

    /// `policy.seal`: the highest policy version accepted (see [`seal`]).
    pub fn seal_path(&self) -> PathBuf {
        self.root.join("policy.seal")
    }

    /// `db/`.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("db")
    }

    /// `chunks/`.
    pub fn chunks_path(&self) -> PathBuf {
        self.root.join("chunks")
    }

    /// Whether `mesh init` has created this home.
    pub fn exists(&self) -> bool {
        self.config_path().is_file()
    }

    /// Creates a new home for `domain`: config, node identity, publisher key (or
    /// `import_key`), API token. Fails if the home already exists.
    pub fn create(
        &self,
        domain: &DomainName,
        import_key: Option<KeyPair>,
    ) -> Result<(), HomeError> {
        if self.exists() {
            return Err(HomeError::Invalid(format!(
                "{} is already a mesh home; use another --home, or run `mesh init --home {} --genesis FILE` to install a genesis policy",
                self.root.display(),
                self.root.display()
            )));
        }
        fs::create_dir_all(self.root.join("keys")).map_err(HomeError::io(&self.root))?;
        self.secure()?;
        let node_key = Keypair::generate_ed25519();
        let encoded = node_key
            .to_protobuf_encoding()
            .map_err(|e| HomeError::Invalid(format!("encoding node key: {e}")))?;
        write_private(&self.node_key_path(), &encoded)?;
        let publisher = import_key.unwrap_or_else(KeyPair::generate);
        keyfile::write_key(&self.publisher_key_path(domain), &publisher)?;
        let token = hex::encode(rand::random::<[u8; 32]>());
        write_private(&self.token_path(), token.as_bytes())?;
        let config = NodeConfig {
            domain: domain.clone(),
            ..NodeConfig::default()
        };
        write_atomic(&self.config_path(), config.to_toml()?.as_bytes())?;
        Ok(())
    }

    /// Makes the home readable by its owner only (mode 0700), so no other local user
    /// can read keys, the database or product chunks (pii among them). Returns
    /// whether the mode had to be tightened.
    pub fn secure(&self) -> Result<bool, HomeError> {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&self.root)
            .map_err(HomeError::io(&self.root))?
            .permissions()
            .mode();
        if mode & 0o077 == 0 {
            return Ok(false);
        }
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .map_err(HomeError::io(&self.root))?;
        Ok(true)
    }

    /// Loads `config.toml`.
    pub fn load_config(&self) -> Result<NodeConfig, HomeError> {
        if !self.exists() {
            return Err(HomeError::Invalid(format!(
                "{} is not a mesh home: run `mesh init --home {} --domain DOMAIN` first",
                self.root.display(),
                self.root.display()
            )));
        }
        let text =
            fs::read_to_string(self.config_path()).map_err(HomeError::io(&self.config_path()))?;
        NodeConfig::from_toml(&text)
            .map_err(|e| HomeError::Invalid(format!("{}: {e}", self.config_path().display())))
    }

    /// Loads the libp2p identity.
    pub fn load_node_key(&self) -> Result<Keypair, HomeError> {
        let path = self.node_key_path();
        let bytes = fs::read(&path).map_err(HomeError::io(&path))?;
        Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| HomeError::Invalid(format!("{}: not a node key ({e})", path.display())))
    }

    /// The libp2p peer id of this home's node.
    pub fn peer_id(&self) -> Result<libp2p::PeerId, HomeError> {
        Ok(self.load_node_key()?.public().to_peer_id())
    }

    /// Loads the publisher key of `domain`.
    pub fn load_publisher_key(&self, domain: &DomainName) -> Result<KeyPair, HomeError> {
        keyfile::read_key(&self.publisher_key_path(domain))
    }

    /// Reads the API token.
    pub fn load_token(&self) -> Result<String, HomeError> {
        let path = self.token_path();
        Ok(fs::read_to_string(&path)
            .map_err(HomeError::io(&path))?
            .trim()
            .to_owned())
    }
}
