//! Command-line flags (clap derive). `sharing.rs` holds the flags of access
//! requests and grants, of subscriptions and of consumer tokens.

mod sharing;

pub(crate) use sharing::{
    AccessArgs, AccessCommand, ShareArgs, ShareCommand, SubscribeArgs, SubscribersArgs, TokenArgs,
    TokenCommand, UnsubscribeArgs,
};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A peer-to-peer data mesh node: publish data products, discover them over gossip,
/// fetch and verify them, under a council-signed governance policy.
#[derive(Debug, Parser)]
#[command(name = "mesh", version)]
#[command(
    after_help = "Start here: `mesh-testnet demo` runs a whole mesh on this machine.\n\
By hand: `mesh council keygen`, `mesh init`, `mesh policy genesis`, `mesh policy sign`,\n\
`mesh init --genesis`, `mesh node run`, then `mesh publish` / `mesh products` / `mesh fetch`.\n\
The README walks through it."
)]
pub(crate) struct Cli {
    /// The node home (keys, config, data). Defaults to $MESH_HOME, then ~/.local/share/mesh.
    #[arg(long, global = true, env = "MESH_HOME", default_value_os_t = default_home())]
    pub(crate) home: PathBuf,
    /// Print machine-readable JSON instead of human text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

fn default_home() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("mesh")
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a node home for a domain, and/or install the signed genesis policy.
    ///
    /// First run (no --genesis): creates the home, the node identity and the domain's
    /// publisher key, and prints the peer id and publisher key to register in the
    /// genesis policy. Second run, with --genesis: verifies and installs the policy.
    Init(InitArgs),
    /// Print this home's identity: domain, peer id and publisher key (offline).
    Id(IdArgs),
    /// Run the node daemon.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Council key management.
    Council {
        #[command(subcommand)]
        command: CouncilCommand,
    },
    /// Governance policy files: build the genesis, sign, inspect.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Work with ODCS data contracts, without a node: draft one from data, lint it,
    /// test data against it, compare two versions. Each exits 1 on a problem.
    Contract {
        #[command(subcommand)]
        command: ContractCommand,
    },
    /// Open Data Product Standard (ODPS) documents: draft a product.toml from one
    /// (`mesh odps import`); `mesh show ID --format odps` exports a product as one.
    Odps {
        #[command(subcommand)]
        command: OdpsCommand,
    },
    /// Publish a file or directory as a data product version.
    Publish(PublishArgs),
    /// List the products in this node's catalog.
    Products(ProductsArgs),
    /// Show one product: catalog entry and manifest (owner, schema, SLA, files).
    Show(ShowArgs),
    /// Fetch a product from its providers, verify every byte, write it to a directory.
    Fetch(FetchArgs),
    /// Run SQL over the mesh's products: `domain.product` is a table (fetched and
    /// verified first, as `mesh fetch` would, under the same rules and grants).
    Query(QueryArgs),
    /// Publish a derived product: its data is the `[derive]` query of its
    /// product.toml over other products, computed into Parquet by this node,
    /// checked against its own contract and published with its inputs pinned in
    /// its lineage. The daemon keeps it up to date: when an input publishes a new
    /// version it computes it again (an unchanged result publishes nothing).
    Derive(DeriveArgs),
    /// List the derived products this node computes: the last computation's
    /// outcome (published, unchanged, failed and why) and the inputs it read.
    Derived,
    /// Show what a product is built from (upstream) and what is built from it
    /// (downstream), from the manifests this node knows.
    Lineage(LineageArgs),
    /// Show who fetches a product: fetches per consumer domain and per provider, from
    /// the signed usage reports providers gossip.
    Usage(UsageArgs),
    /// Access to restricted products: a consumer domain asks, the owning domain
    /// grants (with a purpose, terms and an end), denies or revokes. Each is signed
    /// with the domain's publisher key and replicated, and every provider enforces
    /// the grants through the fetch rules (`resource.grants`).
    Access(AccessArgs),
    /// Follow a product into a directory: the daemon fetches each new version as it
    /// is announced (only the chunks it lacks), verifies it, and switches it in whole
    /// (DIR/VERSION/, then the DIR/current link), keeping the newest --keep.
    ///
    /// A job reads DIR/current/...: it always names a complete version. The
    /// subscription survives restarts; a denied or revoked one stops and says why
    /// (run `mesh subscribe` again to resume). The node serves what it fetched to
    /// others, and the product's owner sees it among the subscribers.
    Subscribe(SubscribeArgs),
    /// Stop following a product (its folders stay).
    Unsubscribe(UnsubscribeArgs),
    /// List this node's subscriptions: state (up to date, fetching, behind, denied,
    /// failing, waiting), the current and newest versions, and the lag.
    Subscriptions,
    /// List the nodes that follow a product (from their signed provider records),
    /// with their domain and the versions they hold.
    Subscribers(SubscribersArgs),
    /// Consumer tokens of this node's output ports (Flight SQL, Delta Sharing):
    /// each is bound to a consumer domain, expires, and can be revoked.
    Token(TokenArgs),
    /// Delta Sharing: write a recipient's profile file (`mesh share profile`).
    Share(ShareArgs),
    /// Delete chunks no retained product version references (keeps the newest
    /// `keep_versions` complete versions of each product, and any fetch in progress).
    Gc(GcArgs),
    /// Read every stored chunk and check it against its BLAKE3 hash; remove corrupt
    /// ones, mark the products that lost one as not held, and fetch them again from
    /// peers (unless --no-repair).
    Verify(VerifyArgs),
    /// List connected peers, or add one to keep connected to.
    Peers(PeersArgs),
    /// Show this node's status: peer id, listen addresses, catalog, policy.
    Status,
    /// Print the address of the web catalog this node serves (the whole mesh's
    /// products, their schema, quality, SLA, lineage and usage, and governance), or
    /// open it in a browser with --open. Read-only; served on the control API's
    /// loopback address.
    Ui(UiArgs),
}

#[derive(Debug, Args)]
pub(crate) struct UiArgs {
    /// A product (`domain/name`) whose page to show instead of the home page.
    pub(crate) product: Option<String>,
    /// Open the page in the desktop's browser (xdg-open or open).
    #[arg(long)]
    pub(crate) open: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PeersArgs {
    #[command(subcommand)]
    pub(crate) command: Option<PeersCommand>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PeersCommand {
    /// Connect to a peer and keep reconnecting to it, like a bootstrap peer (until
    /// the node restarts; put it in config.toml `bootstrap` to make it permanent).
    Add {
        /// Its multiaddr, e.g. /ip4/127.0.0.1/tcp/4801/p2p/12D3... (`mesh status` there).
        addr: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The business domain this node publishes for (e.g. sales).
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// A council-signed genesis policy file to trust (from `mesh policy genesis`).
    #[arg(long)]
    pub(crate) genesis: Option<PathBuf>,
    /// Use this existing key file as the domain's publisher key instead of a new one.
    #[arg(long)]
    pub(crate) publisher_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// Print only the domain publisher key (for scripts and `mesh policy genesis`).
    #[arg(long, conflicts_with = "peer_id")]
    pub(crate) publisher_key: bool,
    /// Print only the libp2p peer id.
    #[arg(long)]
    pub(crate) peer_id: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Run the daemon until Ctrl-C or SIGTERM.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// libp2p listen multiaddr (repeatable), e.g. /ip4/0.0.0.0/tcp/4801. Default: config.toml.
    #[arg(long)]
    pub(crate) listen: Vec<String>,
    /// A peer to join through, e.g. /ip4/127.0.0.1/tcp/4801/p2p/12D3... (repeatable).
    #[arg(long)]
    pub(crate) bootstrap: Vec<String>,
    /// Control API address (loopback by default; port 0 picks a free port).
    #[arg(long)]
    pub(crate) api: Option<std::net::SocketAddr>,
    /// Connect only to bootstrap peers and those added with `mesh peers add` (no
    /// kademlia or identify discovery); same as `discovery = false` in config.toml.
    #[arg(long)]
    pub(crate) no_discovery: bool,
    /// Stop when the process with this id exits (used by mesh-testnet so that no node
    /// outlives its harness).
    #[arg(long, hide = true)]
    pub(crate) parent_pid: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CouncilCommand {
    /// Generate a council member key file (mode 0600) and print its public key.
    Keygen(KeygenArgs),
}

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the key file; it is never overwritten.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Build an unsigned genesis policy (version 1); council members then sign it.
    Genesis(GenesisArgs),
    /// Draft the next policy version from the current one plus a change file.
    Draft(DraftArgs),
    /// Add your signature to a policy file (offline; no daemon needed).
    Sign(SignArgs),
    /// Submit a signed policy to the node; it verifies it and gossips it to the mesh.
    Submit(SubmitArgs),
    /// Show a policy file, or the node's current policy (or --version N).
    Show(ShowPolicyArgs),
    /// List every version of the node's policy chain.
    History,
    /// Dry run: would publishing this manifest be allowed, and if not, which rule says no?
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DraftArgs {
    /// The change file (TOML): council, domain registry, rules_file, settings, expires_in.
    #[arg(long)]
    pub(crate) change: PathBuf,
    /// The current policy as a file; default: the running node's current policy.
    #[arg(long)]
    pub(crate) current: Option<PathBuf>,
    /// Where to write the unsigned draft.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// How long the new version is valid, when the change file names no
    /// `expires_in` (default: `policy_validity` in the home's config.toml, else 365d;
    /// at most 10 years).
    #[arg(long)]
    pub(crate) expires_in: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The signed policy file.
    pub(crate) file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The product manifest (TOML).
    #[arg(required_unless_present = "contract", conflicts_with = "contract")]
    pub(crate) manifest: Option<PathBuf>,
    /// An ODCS v3 contract instead of a manifest.
    #[arg(long)]
    pub(crate) contract: Option<PathBuf>,
    /// The data to publish: also check it as publish would (columns present,
    /// types, quality rules), under the policy's quality mode.
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct GenesisArgs {
    /// Council member public keys (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) council: Vec<String>,
    /// How many distinct council members must sign.
    #[arg(long)]
    pub(crate) threshold: u16,
    /// A domain and its publisher key(s): NAME=KEY[+KEY...] (repeatable).
    #[arg(long = "domain", required = true)]
    pub(crate) domains: Vec<String>,
    /// A node peer id of a domain: NAME=PEERID (repeatable).
    #[arg(long = "node")]
    pub(crate) nodes: Vec<String>,
    /// How long the policy stays valid, e.g. 365d.
    #[arg(long, default_value = "365d")]
    pub(crate) expires_in: String,
    /// The most product versions one domain may have in every node's catalog
    /// (0: no limit), so one domain or a stolen key cannot flood the mesh.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) max_versions_per_domain: u32,
    /// The most versions one domain may announce in any hour (0: no limit).
    #[arg(long, default_value_t = 3_600)]
    pub(crate) max_versions_per_domain_per_hour: u32,
    /// Where to write the policy file.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// Your council key file.
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// The policy file to sign (updated in place).
    pub(crate) file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ShowPolicyArgs {
    /// A policy file; without it, the running node's policy.
    pub(crate) file: Option<PathBuf>,
    /// Which version of the node's chain (default: the current one).
    #[arg(long, conflicts_with = "file")]
    pub(crate) version: Option<u64>,
    /// Also write the shown policy to this file (e.g. as `--current` for a draft).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The file or directory to publish; or `s3://BUCKET/PREFIX`: every object
    /// under the prefix (its key below the prefix is its path in the product),
    /// read by the node with the credentials in its environment (see `mesh fetch
    /// --help`). With --in-place the node keeps no copy and serves the objects by
    /// ranged reads, each checked against its hash and the ETag read at publish.
    /// Omitted: `[source] url` (and `in_place`) of the manifest says.
    pub(crate) path: Option<PathBuf>,
    /// The product manifest (TOML); see the README for every field.
    #[arg(
        long,
        required_unless_present = "contract",
        conflicts_with = "contract"
    )]
    pub(crate) manifest: Option<PathBuf>,
    /// An Open Data Contract Standard v3 contract (YAML) instead of a manifest; parts
    /// mesh does not represent are listed, never dropped silently.
    #[arg(long)]
    pub(crate) contract: Option<PathBuf>,
    /// Serve the files from where they are instead of copying them into the node's
    /// store: no second copy on disk. The node serves this version only while the
    /// files keep exactly these bytes (every chunk is verified as it is read); edit,
    /// move or delete one and the version is no longer held here (`mesh verify`
    /// reports it). Publish a changed file as a new version.
    #[arg(long)]
    pub(crate) in_place: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProductsArgs {
    /// Only this domain.
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// Only products with this tag.
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// Only products whose id, title or tags contain this text.
    #[arg(long)]
    pub(crate) search: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// domain/name[@version]; the latest version when none is given.
    pub(crate) product: String,
    /// `text` for people, `odcs` for the product's contract as ODCS v3 YAML,
    /// `odps` for the product as an ODPS v1.1.0 data product (YAML) with the
    /// ports this node serves.
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    pub(crate) format: ShowFormat,
    /// With `--format odcs`: convert the contract to this ODCS version (by
    /// default it comes back in the version its author declared).
    #[arg(long, value_enum, requires = "format")]
    pub(crate) to: Option<ConvertTo>,
}

/// How `mesh show` prints a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ShowFormat {
    /// A readable summary.
    Text,
    /// An Open Data Contract Standard v3 contract.
    Odcs,
    /// An Open Data Product Standard v1.1.0 data product.
    Odps,
}

#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// domain/name, or domain/name@version to count that version's fetches only.
    pub(crate) product: String,
}

#[derive(Debug, Args)]
pub(crate) struct LineageArgs {
    /// domain/name.
    pub(crate) product: String,
    /// `tree` for a terminal, `dot` for Graphviz, `mermaid` for Markdown.
    #[arg(long, value_enum, default_value_t = LineageFormat::Tree)]
    pub(crate) format: LineageFormat,
}

/// How `mesh lineage` draws the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LineageFormat {
    /// Indented upstream and downstream trees.
    Tree,
    /// Graphviz `digraph`.
    Dot,
    /// A Mermaid `graph LR`.
    Mermaid,
}

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Complete versions to keep per product (default: keep_versions in config.toml, 3).
    #[arg(long)]
    pub(crate) keep: Option<usize>,
    /// Report what would be freed without deleting anything.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Only check and clean up; do not fetch damaged products again.
    #[arg(long)]
    pub(crate) no_repair: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Tables:\n  sales.orders                  the newest version this node may read\n  \"sales\".\"orders@1.2.0\"       a given version\n  sales.orders.lines            one schema object of a product with several\n\nColumns have the types the product's contract declares; identifiers are\ncase-sensitive as written. Queries only read, use at most 512 MiB and run at\nmost 5 minutes. `EXPLAIN SELECT ...` shows the plan.\n\nExamples:\n  mesh query \"SELECT region, SUM(amount) FROM sales.orders GROUP BY region\"\n  mesh query --file q.sql --format parquet -o result.parquet"
)]
pub(crate) struct QueryArgs {
    /// The query (or give --file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub(crate) sql: Option<String>,
    /// Read the query from this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// How to write the rows.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub(crate) format: QueryFormat,
    /// Write the rows to this file instead of the terminal.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "product.toml of a derived product (a contract like any other, plus):\n  [derive]\n  sql = \"SELECT carrier, COUNT(*) AS parcels FROM logistics.shipments GROUP BY carrier\"\n  # or sql_file = \"query.sql\" (relative to product.toml)\n\nExamples:\n  mesh derive product.toml          register it and publish its first version\n  mesh derive finance/parcels       compute it again now\n  mesh derive finance/parcels --remove   stop computing it"
)]
pub(crate) struct DeriveArgs {
    /// A product.toml with a [derive] section (registers it and computes it), or
    /// the domain/name of a derived product this node computes (computes it again).
    pub(crate) target: String,
    /// Compute it even if its inputs did not change.
    #[arg(long)]
    pub(crate) force: bool,
    /// Stop computing it (its published versions stay).
    #[arg(long, conflicts_with = "force")]
    pub(crate) remove: bool,
}

/// How `mesh query` writes its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum QueryFormat {
    /// A table for the terminal.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row.
    Jsonl,
    /// A Parquet file (needs --out).
    Parquet,
}

#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// domain/name[@version]; the latest version when none is given.
    pub(crate) product: String,
    /// Directory to write the product's files into. A file already there at one of
    /// the product's paths is replaced only if identical; otherwise nothing is
    /// written (see --force). Or `s3://BUCKET/PREFIX`: the node delivers the
    /// version into object storage as `PREFIX/VERSION/...` and then switches
    /// `PREFIX/current` (a JSON object naming the version) with a conditional put;
    /// files unchanged since the previous version are copied inside the store.
    /// The node's environment has the credentials (AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and `[object_store] endpoint` in
    /// config.toml (or AWS_ENDPOINT_URL) names an S3-compatible store.
    #[arg(short, long)]
    pub(crate) out: PathBuf,
    /// Replace files already in the directory at the product's paths, even if they
    /// differ.
    #[arg(long)]
    pub(crate) force: bool,
    /// Also keep a copy of every chunk in the node's store (each byte written
    /// twice), so that the node keeps serving this version whatever becomes of the
    /// files under --out. Without it (the default) the product is kept in place:
    /// the node verifies each chunk, writes it into the output and serves it from
    /// there, with no second copy (every byte lands on disk once), and serves this
    /// version only while the files keep exactly these bytes; edit, move or delete
    /// one and it is no longer held here (`mesh verify` reports it). An interrupted
    /// fetch leaves hidden `.mesh-partial-N` files in the output's folders; running
    /// it again resumes from them. Products of more than 256 files, and deliveries
    /// into object storage, are always fetched with a copy.
    #[arg(long, conflicts_with = "in_place")]
    pub(crate) copy: bool,
    /// Kept for scripts written before it became the default: the product is kept
    /// in place unless --copy is given.
    #[arg(long, hide = true)]
    pub(crate) in_place: bool,
    /// Fetch without a daemon: start an ephemeral node that trusts this genesis
    /// policy, catches up from --bootstrap, verifies everything, fetches and exits.
    #[arg(long, value_name = "FILE")]
    pub(crate) genesis: Option<PathBuf>,
    /// With --genesis: a node of the mesh to start from (a multiaddr ending in
    /// /p2p/<peer id>; /dns4/ and /dnsaddr/ names work). Repeatable.
    #[arg(long, value_name = "ADDR")]
    pub(crate) bootstrap: Vec<String>,
    /// With --genesis: fetch as the node whose key this is (a node.key the policy's
    /// registry names, so its domain's rules apply). Anonymous without it.
    #[arg(long, value_name = "NODE_KEY")]
    pub(crate) identity: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContractCommand {
    /// Draft an ODCS v3.1.0 contract from data files: one schema object per CSV,
    /// JSON-lines or Parquet file (a folder of files is one object), column types
    /// inferred, `required` where no null was seen.
    Init(ContractInitArgs),
    /// List a contract's problems, each with its field path: the standard's
    /// required fields and values, mesh's rules, quality rules that cannot run.
    Lint(ContractLintArgs),
    /// Check a data directory against a contract: every check publish makes
    /// (types, required, unique, primary keys, logicalTypeOptions, quality rules),
    /// without publishing. Exits 1 when the data breaks the contract.
    Test(ContractTestArgs),
    /// What changed between two contracts, over every schema object and property;
    /// exits 1 when a change breaks consumers under the schema-compatibility mode.
    Changelog(ChangelogArgs),
    /// Rewrite a v3.0.x contract as v3.1.0: `team` lists, quality `rule`s as
    /// `metric`s, exclusive bounds as numbers; fields v3.1.0 does not define move
    /// into `customProperties`. Each change is listed; the result is checked
    /// against the official v3.1.0 schema.
    Convert(ContractConvertArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum OdpsCommand {
    /// Draft a product.toml from an ODPS data product document (v0.9.0 to
    /// v1.1.0, checked against the official v1.1.0 schema): id (domain/name),
    /// version, status, title, description, owner and tags are read from it, and
    /// the draft names the document (`odps_file`), which travels whole with each
    /// published version: `mesh show ID --format odps` gives every value back.
    Import(OdpsImportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct OdpsImportArgs {
    /// The ODPS document (YAML or JSON).
    pub(crate) file: PathBuf,
    /// The owning domain when the document names none (default: this home's).
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// Write the product.toml here (default: product.toml beside the document).
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
    /// Replace an existing --output file.
    #[arg(long)]
    pub(crate) force: bool,
}

/// The ODCS versions mesh converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ConvertTo {
    /// ODCS v3.1.0.
    #[value(name = "v3.1.0")]
    V3_1_0,
}

#[derive(Debug, Args)]
pub(crate) struct ContractConvertArgs {
    /// The contract (ODCS v3.0.x or v3.1.0 YAML).
    pub(crate) file: PathBuf,
    /// The version to convert to.
    #[arg(long, value_enum, default_value = "v3.1.0")]
    pub(crate) to: ConvertTo,
    /// Write the converted contract here instead of printing it.
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
    /// Replace an existing --output file, and write the result even when it is
    /// still not valid under the new version.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ContractInitArgs {
    /// The directory (or file) of data.
    pub(crate) dir: PathBuf,
    /// The product name (default: the directory's name).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The owning domain (default: this home's domain).
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// Write the contract here instead of printing it.
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
    /// Replace an existing --output file.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ContractLintArgs {
    /// The contract (ODCS v3 YAML).
    pub(crate) file: PathBuf,
    /// The domain a contract without `domain` is published for (default: this
    /// home's).
    #[arg(long)]
    pub(crate) domain: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ContractTestArgs {
    /// The contract (ODCS v3 YAML).
    pub(crate) file: PathBuf,
    /// The data: a directory (files map to schema objects by name or
    /// physicalName, or by folder) or one file.
    pub(crate) dir: PathBuf,
    /// The domain a contract without `domain` is published for (default: this
    /// home's).
    #[arg(long)]
    pub(crate) domain: Option<String>,
}

/// Schema-compatibility modes, as the policy names them.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum CompatMode {
    /// Never refuse.
    None,
    /// Breaking changes need a new major version.
    Backward,
    /// Breaking changes are refused, whatever the version.
    Frozen,
}

#[derive(Debug, Args)]
pub(crate) struct ChangelogArgs {
    /// The earlier contract.
    pub(crate) old: PathBuf,
    /// The later contract.
    pub(crate) new: PathBuf,
    /// The schema-compatibility mode (default: --policy's, else the running node's
    /// policy's, else backward).
    #[arg(long, value_enum)]
    pub(crate) mode: Option<CompatMode>,
    /// A policy file whose `schema_compatibility` to apply.
    #[arg(long, conflicts_with = "mode")]
    pub(crate) policy: Option<PathBuf>,
    /// Whose code a change must not break: consumers (who read the data: a
    /// `required` or `unique` loosened breaks them), producers (who write it: one
    /// tightened, or a property added as required, breaks them), or both.
    #[arg(long, value_enum, default_value = "both")]
    pub(crate) perspective: PerspectiveArg,
}

/// `--perspective`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum PerspectiveArg {
    /// Those who read the data.
    Consumer,
    /// Those who write the data.
    Producer,
    /// Either.
    Both,
}

impl From<PerspectiveArg> for mesh_contract::changelog::Perspective {
    fn from(p: PerspectiveArg) -> Self {
        match p {
            PerspectiveArg::Consumer => Self::Consumer,
            PerspectiveArg::Producer => Self::Producer,
            PerspectiveArg::Both => Self::Both,
        }
    }
}
