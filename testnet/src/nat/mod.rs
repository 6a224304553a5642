//! A mesh across networks, in Linux network namespaces: an "internet" segment with a
//! relay and bootstrap node and a DNS server, and sites behind their own NAT routers
//! (nftables masquerade), each with mesh nodes inside. Needs root (CI has it), and
//! Debian's iproute2, nftables and dnsmasq (`.ci/run` installs them).
//!
//! ```text
//!                      internet 198.18.0.0/24 (a bridge)
//!        relay 198.18.0.10 (relay server, bootstrap, DNS: relay.mesh.test, _dnsaddr.mesh.test)
//!            |                    |                      |
//!   router A .2 (cone NAT)  router C .4 (cone NAT)  router B .3 (symmetric NAT)
//!     10.1.0.0/24             10.3.0.0/24              10.2.0.0/24
//!     a0 a1                   c0                       b0 b1
//! ```
//!
//! Site A and site B are the two sites of the scenario (one endpoint-independent
//! NAT, one address-and-port-dependent); site C is a second office behind a cone
//! NAT, so that a hole punch has two NATed ends in different networks (a0 and a1
//! share a LAN and reach each other without one). Site nodes bootstrap by DNS name:
//! a0 with `/dnsaddr/mesh.test`, the others with `/dns4/relay.mesh.test/...`.

mod netns;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mesh_node::api::{CatalogEntry, FetchEvent, FetchOutcome, NodeStatus, PeerInfo, Published};
use mesh_node::home::config::{NodeConfig, Reachability};
use mesh_node::NodeHome;

pub use netns::{missing_tools, Namespaces, Nat};

use crate::{sample, wait_until, MeshBin, Testnet, TestnetConfig, Transport};

/// The relay's address on the internet segment.
pub const RELAY_IP: &str = "198.18.0.10";
/// The port the relay listens on (UDP for QUIC, and TCP); a site's `k`th node
/// listens on `PORT + k`.
pub const PORT: u16 = 4801;

/// One site behind a NAT.
#[derive(Debug, Clone)]
pub struct Site {
    /// Its letter: `a`, `b`, `c`.
    pub name: char,
    /// Its router's translation.
    pub nat: Nat,
    /// Its network's second octet (`10.N.0.0/24`); its router is `198.18.0.(N+1)`.
    pub net: u8,
    /// Lab node indices inside.
    pub nodes: Vec<usize>,
}

/// The running lab: namespaces, a DNS server, and the node processes.
#[derive(Debug)]
pub struct NatLab {
    /// Homes, genesis and node processes; node 0 is the relay. Dropped first, so
    /// every process is killed before its namespace goes.
    pub net: Testnet,
    /// The sites, in order A, B, C.
    pub sites: Vec<Site>,
    dns: Option<KillOnDrop>,
    /// When the lab's nodes were started.
    pub started: Instant,
    mesh: MeshBin,
    _ns: Namespaces,
}

#[derive(Debug)]
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why the lab cannot run here, if it cannot: not root, or tools missing.
pub fn unavailable() -> Option<String> {
    if !crate::process::is_root() {
        return Some("needs root (network namespaces and nftables)".into());
    }
    let missing = missing_tools();
    if !missing.is_empty() {
        return Some(format!(
            "needs {} (apt-get install iproute2 nftables dnsmasq-base)",
            missing.join(", ")
        ));
    }
    None
}

/// The address of a site's `k`th node: `10.NET.0.(11+k)`.
fn site_ip(net: u8, k: usize) -> String {
    format!("10.{net}.0.{}", 11 + k)
}

impl NatLab {
    /// Builds the namespaces and homes and starts every node: the relay first, then
    /// each site's nodes. `per_site` is the number of nodes in sites A and B (C has
    /// one).
    pub fn start(mesh: MeshBin, per_site: usize) -> anyhow::Result<Self> {
        if let Some(why) = unavailable() {
            bail!("the NAT lab {why}");
        }
        let (sites, domains) = plan_sites(per_site.clamp(1, 8));
        let domain_refs: Vec<&str> = domains.iter().map(String::as_str).collect();
        let mut net = Testnet::create(TestnetConfig::new(
            mesh.clone(),
            domains.len(),
            &domain_refs,
        ))?;
        let mut ns = Namespaces::new(&format!("mesh{}", std::process::id()));
        let relay_ns = wire_sites(&mut ns, &sites, &mut net)?;
        let relay_peer = net.nodes[0].peer_id.clone();
        let relay_quic = format!("/ip4/{RELAY_IP}/udp/{PORT}/quic-v1/p2p/{relay_peer}");
        let dns = start_dns(&relay_ns, &relay_quic)?;
        // The relay: public, serving as a relay.
        net.nodes[0].netns = Some(relay_ns);
        net.nodes[0].ip = RELAY_IP.parse()?;
        configure(&net.nodes[0].home, |c| {
            c.network.reachability = Reachability::Public;
            c.network.relay_server = true;
        })?;
        net.nodes[0].port = Some(PORT);
        for n in &mut net.nodes {
            let port = n.port.unwrap_or(PORT);
            n.transport = Transport::Quic;
            n.listen = vec![
                format!("/ip4/{}/udp/{port}/quic-v1", n.ip),
                format!("/ip4/{}/tcp/{port}", n.ip),
            ];
        }
        let started = Instant::now();
        net.start_with(0, &[])?;
        for site in &sites {
            for (k, &i) in site.nodes.iter().enumerate() {
                let relay = relay_quic.clone();
                configure(&net.nodes[i].home, |c| c.network.relays = vec![relay])?;
                let bootstrap = if site.name == 'a' && k == 0 {
                    format!("/dnsaddr/mesh.test/p2p/{relay_peer}")
                } else {
                    format!("/dns4/relay.mesh.test/udp/{PORT}/quic-v1/p2p/{relay_peer}")
                };
                net.start_with(i, &[bootstrap])?;
            }
        }
        Ok(NatLab {
            net,
            sites,
            dns: Some(dns),
            started,
            mesh,
            _ns: ns,
        })
    }

    /// The lab index of site `name`'s `k`th node.
    pub fn node(&self, site: char, k: usize) -> usize {
        self.sites
            .iter()
            .find(|s| s.name == site)
            .and_then(|s| s.nodes.get(k).copied())
            .unwrap_or(usize::MAX)
    }

    /// Node `i`'s status.
    pub fn status(&self, i: usize) -> anyhow::Result<NodeStatus> {
        self.net.nodes[i].cli_json(&self.mesh, &["status"])
    }

    /// Node `i`'s connected peers.
    pub fn peers(&self, i: usize) -> anyhow::Result<Vec<PeerInfo>> {
        self.net.nodes[i].cli_json(&self.mesh, &["peers"])
    }

    /// Node `i`'s connection to node `j`, if any.
    pub fn link(&self, i: usize, j: usize) -> anyhow::Result<Option<PeerInfo>> {
        let peer = &self.net.nodes[j].peer_id;
        Ok(self.peers(i)?.into_iter().find(|p| &p.peer_id == peer))
    }

    /// Node `i`'s catalog.
    pub fn products(&self, i: usize) -> anyhow::Result<Vec<CatalogEntry>> {
        self.net.nodes[i].cli_json(&self.mesh, &["products"])
    }

    /// Whether node `i` lists `product@version`.
    pub fn knows(&self, i: usize, product: &str, version: &str) -> anyhow::Result<bool> {
        Ok(crate::lists(&self.products(i)?, product, version))
    }

    /// Writes `rows` sample rows and publishes them as `product@version` on node `i`.
    pub fn publish(
        &self,
        i: usize,
        product: &str,
        version: &str,
        rows: usize,
    ) -> anyhow::Result<Published> {
        let dir = self
            .net
            .root()
            .join("data")
            .join(format!("{}-{version}", product.replace('/', "-")));
        let seed = product
            .bytes()
            .chain(version.bytes())
            .fold(5u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
        sample::write_orders(&dir, rows, seed)?;
        let manifest = dir.with_extension("toml");
        std::fs::write(&manifest, sample::manifest_toml(product, version))?;
        self.net.nodes[i].cli_json(
            &self.mesh,
            &[
                "publish",
                &dir.to_string_lossy(),
                "--manifest",
                &manifest.to_string_lossy(),
            ],
        )
    }

    /// Fetches `product` on node `i` into a fresh directory, and how long it took.
    pub fn fetch(&self, i: usize, product: &str) -> anyhow::Result<(FetchOutcome, Duration)> {
        let out = self
            .net
            .root()
            .join(format!("out-{i}-{}", product.replace(['/', '@'], "-")));
        let _ = std::fs::remove_dir_all(&out);
        let t = Instant::now();
        let output = self.net.nodes[i].mesh(
            &self.mesh,
            &["--json", "fetch", product, "-o", &out.to_string_lossy()],
        )?;
        let took = t.elapsed();
        Ok((
            outcome(&output, &format!("fetch of {product} on node {i}"))?,
            took,
        ))
    }

    /// Runs a one-shot fetch (`mesh fetch --genesis --bootstrap /dnsaddr/...`, no
    /// home, no daemon) in node `i`'s namespace.
    pub fn one_shot(&self, i: usize, product: &str) -> anyhow::Result<FetchOutcome> {
        let out = self.root().join(format!("one-shot-{i}"));
        let relay = &self.net.nodes[0].peer_id;
        let output = self
            .mesh
            .command_in(
                self.net.nodes[i].netns.as_deref(),
                &self.root().join("no-home"),
            )
            .args(["--json", "fetch", product, "-o", &out.to_string_lossy()])
            .arg("--genesis")
            .arg(&self.net.genesis)
            .args(["--bootstrap", &format!("/dnsaddr/mesh.test/p2p/{relay}")])
            .output()?;
        outcome(
            &output,
            &format!("one-shot fetch of {product} on node {i}'s host"),
        )
    }

    /// Waits until `check` holds, for up to `timeout`.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        check: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        wait_until(what, timeout, check)
    }

    /// Stops the relay node (the lab keeps its namespace).
    pub fn stop_relay(&mut self) -> anyhow::Result<()> {
        self.dns.take();
        self.net.nodes[0].terminate()
    }

    /// Where the lab keeps homes and logs.
    pub fn root(&self) -> &Path {
        self.net.root()
    }

    /// Log tails of every node, for a failure message.
    pub fn logs(&self) -> String {
        self.net
            .nodes
            .iter()
            .map(|n| format!("--- node {} ({}):\n{}", n.index, n.domain, n.log_tail(25)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The sites (a cone NAT and a symmetric one with `per_site` nodes each, a cone
/// one with one node) and every node's domain, the relay's (`ops`) first.
fn plan_sites(per_site: usize) -> (Vec<Site>, Vec<String>) {
    let sites_spec = [
        ('a', Nat::Cone, 1u8, per_site),
        ('b', Nat::Symmetric, 2, per_site),
        ('c', Nat::Cone, 3, 1),
    ];
    let mut domains = vec!["ops".to_string()];
    let mut sites = Vec::new();
    let mut next = 1;
    for (name, nat, net, n) in sites_spec {
        let domain = match name {
            'a' => "sales",
            'b' => "finance",
            _ => "logistics",
        };
        sites.push(Site {
            name,
            nat,
            net,
            nodes: (next..next + n).collect(),
        });
        domains.extend(std::iter::repeat_n(domain.to_string(), n));
        next += n;
    }
    (sites, domains)
}

/// The namespaces: the "internet" bridge, the relay on it, and per site a NAT
/// router with its hosts; each site node gets its namespace, address and port.
/// Returns the relay's namespace.
fn wire_sites(ns: &mut Namespaces, sites: &[Site], net: &mut Testnet) -> anyhow::Result<String> {
    let inet = ns.add("inet")?;
    ns.bridge(&inet, "br0")?;
    let relay_ns = ns.add("relay")?;
    ns.veth(&relay_ns, "eth0", &inet, "p-relay")?;
    ns.attach(&inet, "p-relay", "br0")?;
    ns.addr(&relay_ns, "eth0", &format!("{RELAY_IP}/24"))?;
    for site in sites {
        let router = ns.add(&format!("rtr{}", site.name))?;
        let port = format!("p-rtr{}", site.name);
        ns.veth(&router, "wan", &inet, &port)?;
        ns.attach(&inet, &port, "br0")?;
        ns.addr(&router, "wan", &format!("198.18.0.{}/24", 1 + site.net))?;
        ns.bridge(&router, "lan")?;
        ns.addr(&router, "lan", &format!("10.{}.0.1/24", site.net))?;
        ns.router(&router, "wan", site.nat)?;
        for (k, &i) in site.nodes.iter().enumerate() {
            let host = ns.add(&format!("{}{k}", site.name))?;
            let port = format!("p-{}{k}", site.name);
            ns.veth(&host, "eth0", &router, &port)?;
            ns.attach(&router, &port, "lan")?;
            ns.addr(&host, "eth0", &format!("{}/24", site_ip(site.net, k)))?;
            ns.default_route(&host, &format!("10.{}.0.1", site.net))?;
            ns.etc_file(&host, "resolv.conf", &format!("nameserver {RELAY_IP}\n"))?;
            let node = &mut net.nodes[i];
            node.netns = Some(host.clone());
            node.ip = site_ip(site.net, k).parse()?;
            // Its own port, so the NAT can keep it for every destination (two
            // hosts on one port would share one external port: the second gets
            // another for every flow).
            node.port = Some(PORT + k as u16);
        }
    }
    Ok(relay_ns)
}

/// dnsmasq in the relay's namespace: `relay.mesh.test` and the `_dnsaddr`
/// record of the relay's QUIC address.
fn start_dns(relay_ns: &str, relay_quic: &str) -> anyhow::Result<KillOnDrop> {
    let dns = Command::new("ip")
        .args([
            "netns",
            "exec",
            relay_ns,
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
        ])
        .arg(format!("--listen-address={RELAY_IP}"))
        .args(["--bind-interfaces", "--pid-file="])
        .arg(format!("--address=/relay.mesh.test/{RELAY_IP}"))
        .arg(format!(
            "--txt-record=_dnsaddr.mesh.test,dnsaddr={relay_quic}"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting dnsmasq")?;
    Ok(KillOnDrop(dns))
}

/// The outcome a `mesh --json fetch` run printed, or its error.
fn outcome(output: &std::process::Output, what: &str) -> anyhow::Result<FetchOutcome> {
    match crate::last_fetch_event(&String::from_utf8_lossy(&output.stdout)) {
        Some(FetchEvent::Done(o)) => Ok(o),
        Some(FetchEvent::Error { message, .. }) => bail!("{what}: {message}"),
        _ => bail!(
            "{what} printed no outcome: {}{}",
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

/// Edits a home's `config.toml`.
fn configure(home: &Path, edit: impl FnOnce(&mut NodeConfig)) -> anyhow::Result<()> {
    let home = NodeHome::new(home);
    let mut config = home.load_config()?;
    edit(&mut config);
    std::fs::write(home.config_path(), config.to_toml()?)?;
    Ok(())
}

/// What the NAT scenario measured.
#[derive(Debug, Clone, Default)]
pub struct NatReport {
    /// Seconds from the lab's start until every node had the catalog.
    pub catalog_everywhere_s: f64,
    /// Milliseconds from a cone node's start to its first hole punch.
    pub first_hole_punch_ms: Option<u64>,
    /// Peers connected directly and only through the relay, summed over site nodes.
    pub direct_links: usize,
    /// As above, through the relay only.
    pub relayed_links: usize,
    /// Hole punches that succeeded and failed, summed over site nodes.
    pub hole_punches: u64,
    /// As above, failed.
    pub hole_punch_failures: u64,
    /// Fetch throughput in MB/s: over a hole-punched connection, through the relay,
    /// and between two nodes of one LAN.
    pub direct_mbps: f64,
    /// Through the relay.
    pub relayed_mbps: f64,
    /// On one LAN.
    pub lan_mbps: f64,
    /// Bytes of the product fetched for the throughput figures.
    pub bytes: u64,
    /// Seconds a one-shot fetch (no home, no daemon; genesis and a `/dnsaddr`
    /// bootstrap only) took from behind the symmetric NAT.
    pub one_shot_s: f64,
    /// Circuits the relay refused (its log's `circuit refused` lines), up to the
    /// one-shot fetch.
    pub relay_refusals: usize,
}

impl NatReport {
    /// The report as a Markdown table.
    pub fn markdown(&self) -> String {
        let opt =
            |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.1} s", v as f64 / 1000.0));
        format!(
            "| measure | value |\n|---|---|\n\
             | catalog on every node | {:.1} s after start |\n\
             | first direct connection by hole punching | {} after start |\n\
             | site links direct / relayed only | {} / {} |\n\
             | hole punches ok / failed | {} / {} |\n\
             | fetch over a hole-punched link | {:.1} MB/s |\n\
             | fetch through the relay | {:.1} MB/s |\n\
             | fetch within one LAN | {:.1} MB/s |\n\
             | product size | {:.1} MB |\n\
             | one-shot fetch behind the symmetric NAT (genesis + /dnsaddr only) | {:.1} s |\n\
             | circuits the relay refused | {} |\n",
            self.catalog_everywhere_s,
            opt(self.first_hole_punch_ms),
            self.direct_links,
            self.relayed_links,
            self.hole_punches,
            self.hole_punch_failures,
            self.direct_mbps,
            self.relayed_mbps,
            self.lan_mbps,
            self.bytes as f64 / 1e6,
            self.one_shot_s,
            self.relay_refusals
        )
    }
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// Runs the scenario on a started lab: catalog everywhere, hole punching between the
/// cone sites, the symmetric site through the relay, throughput, and a fetch after
/// the relay is gone. Each step fails with the nodes' logs if its condition does not
/// hold within `deadline`. `rows` sizes the throughput product (48 bytes a row).
pub fn scenario(lab: &mut NatLab, rows: usize, deadline: Duration) -> anyhow::Result<NatReport> {
    let mut report = NatReport::default();
    reserve_relays(lab, deadline)?;
    spread_products(lab, rows, deadline)?;
    report.catalog_everywhere_s = lab.started.elapsed().as_secs_f64();
    punch_and_measure(lab, deadline, &mut report)?;
    through_the_relay(lab, &mut report)?;
    tally(lab, &mut report)?;
    one_shot_behind_nat(lab, &mut report)?;
    without_the_relay(lab, deadline)?;
    Ok(report)
}

/// Names a failed wait with what was being waited for, and the nodes' logs.
fn step(lab: &NatLab, what: &str, r: anyhow::Result<()>) -> anyhow::Result<()> {
    r.map_err(|e| anyhow::anyhow!("{what}: {e:#}\n{}", lab.logs()))
}

/// Every site node reserves a relay slot (none is publicly reachable; peers on
/// its LAN may confirm its LAN address, which makes it `local`, not public).
fn reserve_relays(lab: &NatLab, deadline: Duration) -> anyhow::Result<()> {
    for site in lab.sites.clone() {
        for &i in &site.nodes {
            let r = lab.wait(&format!("node {i} to hold a relay slot"), deadline, || {
                let s = lab.status(i)?;
                let r = &s.reachability;
                Ok(r.status != "public" && !r.relays.is_empty())
            });
            step(lab, "relay reservation", r)?;
        }
    }
    Ok(())
}

/// Products from the symmetric site and both cone sites reach every node.
fn spread_products(lab: &mut NatLab, rows: usize, deadline: Duration) -> anyhow::Result<()> {
    let (a0, b0, c0) = (lab.node('a', 0), lab.node('b', 0), lab.node('c', 0));
    let n = lab.net.nodes.len();
    lab.publish(b0, "finance/ledger", "1.0.0", 2_000)?;
    lab.publish(a0, "sales/orders", "1.0.0", rows)?;
    lab.publish(c0, "logistics/routes", "1.0.0", rows)?;
    for i in 0..n {
        for (p, v) in [
            ("finance/ledger", "1.0.0"),
            ("sales/orders", "1.0.0"),
            ("logistics/routes", "1.0.0"),
        ] {
            let r = lab.wait(&format!("node {i} to list {p}"), deadline, || {
                lab.knows(i, p, v)
            });
            step(lab, "catalog", r)?;
        }
    }
    Ok(())
}

/// c0 fetches from a0 (relayed at first); hole punching makes the link direct;
/// then the throughput over the punched link.
fn punch_and_measure(
    lab: &mut NatLab,
    deadline: Duration,
    report: &mut NatReport,
) -> anyhow::Result<()> {
    let (a0, c0) = (lab.node('a', 0), lab.node('c', 0));
    let (o, _) = lab.fetch(c0, "sales/orders@1.0.0")?;
    if !o.verified {
        bail!("fetch not verified: {o:?}");
    }
    let r = lab.wait("a hole punched between the cone sites", deadline, || {
        Ok(lab.link(c0, a0)?.is_some_and(|p| p.connection == "direct"))
    });
    step(lab, "hole punching", r)?;
    // Throughput over the punched link: a fresh fetch of another product.
    let (o, took) = lab.fetch(a0, "logistics/routes@1.0.0")?;
    let direct_link = lab.link(a0, c0)?;
    if direct_link
        .as_ref()
        .is_none_or(|p| p.connection != "direct")
    {
        bail!("a0's link to c0 is not direct: {direct_link:?}");
    }
    report.direct_mbps = mbps(o.transferred_bytes, took);
    report.bytes = o.transferred_bytes;
    Ok(())
}

/// The symmetric site: no hole can be punched; a0 fetches b0's product through
/// the relay, and b1 fetches a cone site's product through it too; then one LAN.
fn through_the_relay(lab: &mut NatLab, report: &mut NatReport) -> anyhow::Result<()> {
    let (a0, a1, b0, b1, c0) = (
        lab.node('a', 0),
        lab.node('a', 1),
        lab.node('b', 0),
        lab.node('b', 1),
        lab.node('c', 0),
    );
    let (o, _) = lab.fetch(a0, "finance/ledger@1.0.0")?;
    if !o.verified {
        bail!("fetch through the relay not verified: {o:?}");
    }
    let link = lab.link(a0, b0)?;
    if link.as_ref().is_none_or(|p| p.connection != "relayed") {
        bail!("a0 reaches b0 other than through the relay: {link:?}");
    }
    let (o2, took2) = lab.fetch(b1, "logistics/routes@1.0.0")?;
    if !o2.served.contains_key(&lab.net.nodes[c0].peer_id)
        && !o2.served.contains_key(&lab.net.nodes[a0].peer_id)
    {
        bail!("b1 fetched routes from neither holder: {o2:?}");
    }
    report.relayed_mbps = mbps(o2.transferred_bytes, took2);
    // Within one LAN (a1 from a0, no NAT in between).
    let (o, took) = lab.fetch(a1, "sales/orders@1.0.0")?;
    report.lan_mbps = mbps(o.transferred_bytes, took);
    Ok(())
}

/// Links and hole punches as every site node counts them.
fn tally(lab: &NatLab, report: &mut NatReport) -> anyhow::Result<()> {
    let mut first: Option<u64> = None;
    for site in &lab.sites {
        for &i in &site.nodes {
            let r = lab.status(i)?.reachability;
            report.direct_links += r.direct_peers;
            report.relayed_links += r.relayed_peers;
            report.hole_punches += r.hole_punches;
            report.hole_punch_failures += r.hole_punch_failures;
            if let Some(ms) = r.first_hole_punch_ms {
                first = Some(first.map_or(ms, |f| f.min(ms)));
            }
        }
    }
    report.first_hole_punch_ms = first;
    Ok(())
}

/// A one-shot consumer on a clean host behind the symmetric NAT: only the
/// genesis file and the DNS name of the bootstrap node.
fn one_shot_behind_nat(lab: &mut NatLab, report: &mut NatReport) -> anyhow::Result<()> {
    let b0 = lab.node('b', 0);
    let t = Instant::now();
    let o = lab.one_shot(b0, "sales/orders@1.0.0")?;
    if !o.verified {
        bail!("the one-shot fetch was not verified: {o:?}");
    }
    report.one_shot_s = t.elapsed().as_secs_f64();
    report.relay_refusals = lab.net.nodes[0].log().matches("circuit refused").count();
    Ok(())
}

/// The relay goes away: the punched link stays, gossip and fetches go on over it.
fn without_the_relay(lab: &mut NatLab, deadline: Duration) -> anyhow::Result<()> {
    let (a0, c0) = (lab.node('a', 0), lab.node('c', 0));
    lab.stop_relay()?;
    lab.publish(a0, "sales/orders", "1.1.0", 500)?;
    let r = lab.wait("c0 to learn 1.1.0 with the relay gone", deadline, || {
        lab.knows(c0, "sales/orders", "1.1.0")
    });
    step(lab, "after the relay", r)?;
    let (o, _) = lab.fetch(c0, "sales/orders@1.1.0")?;
    if !o.verified || !o.served.contains_key(&lab.net.nodes[a0].peer_id) {
        bail!("the fetch after the relay went away: {o:?}");
    }
    Ok(())
}
