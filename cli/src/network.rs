//! `mesh peers` and `mesh status`: the node's place in the network.

use std::path::Path;

use crate::client;
use crate::output::{print_json, say};

pub(crate) fn peers(home: &Path, a: crate::args::PeersArgs, json: bool) -> anyhow::Result<()> {
    if let Some(crate::args::PeersCommand::Add { addr }) = a.command {
        let added = client(home)?.add_peer(&addr)?;
        if json {
            return print_json(&serde_json::json!({ "added": added }));
        }
        say!("dialling {addr}; the node keeps reconnecting to it until it restarts");
        return Ok(());
    }
    let peers = client(home)?.peers()?;
    if json {
        return print_json(&peers);
    }
    if peers.is_empty() {
        say!("no connected peers; start the node with --bootstrap ADDR of another node");
    }
    for p in peers {
        let score = match p.score {
            Some(s) if p.graylisted => format!("{s:.1} graylisted"),
            Some(s) => format!("{s:.1}"),
            None => "-".into(),
        };
        say!(
            "{}  {:<12} {} over {}  score {score}  {}",
            p.peer_id,
            p.domain.as_deref().unwrap_or("-"),
            p.connection,
            p.transport,
            p.agent.as_deref().unwrap_or("agent unknown")
        );
        if p.listen_addrs.is_empty() {
            say!("    connection {}", p.address);
        }
        for a in &p.listen_addrs {
            say!("    listens on {a}");
        }
    }
    Ok(())
}

pub(crate) fn status(home: &Path, json: bool) -> anyhow::Result<()> {
    let s = client(home)?.status()?;
    if json {
        return print_json(&s);
    }
    say!("peer id    {}", s.peer_id);
    say!("domain     {}", s.domain);
    say!("home       {}", s.home.display());
    say!(
        "policy     v{}{}",
        s.policy_version,
        if s.policy_expired {
            " (EXPIRED: publishing is refused until the council renews it)"
        } else {
            ""
        }
    );
    if s.equivocations > 0 {
        say!(
            "WARNING    {} conflicting policy document(s) validly signed for accepted version(s) {:?}; the evidence is kept in the database: tell the council",
            s.equivocations,
            s.equivocated_versions
        );
    }
    say!("peers      {}", s.peers);
    say!("catalog    {} product version(s)", s.catalog);
    if let Some(k) = &s.publisher_key {
        say!("publisher  {k}");
    }
    for a in &s.listen {
        say!("listen     {a}");
    }
    if let Some(a) = &s.flight_sql {
        say!("flight sql {a} (clients need a token: `mesh token create --domain DOMAIN`)");
    }
    if let Some(a) = &s.delta_sharing {
        say!("delta sharing {a} (recipients need a profile: `mesh share profile --domain DOMAIN`)");
    }
    let r = &s.reachability;
    let how = match r.status.as_str() {
        "public" => "public: peers can dial this node directly".to_string(),
        "local" if r.relays.is_empty() => {
            "within its own network: peers there dial it directly, others cannot (configure [network] relays)".to_string()
        }
        "local" => format!(
            "within its own network directly; from elsewhere via relay {}",
            r.relays.join(", ")
        ),
        "private" if r.relays.is_empty() => {
            "behind a NAT or firewall, and no relay slot yet: only outbound connections work (configure [network] relays)".to_string()
        }
        "private" => format!("behind a NAT or firewall, reachable via relay {}", r.relays.join(", ")),
        _ => "not known yet (AutoNAT asks peers to dial back)".to_string(),
    };
    say!(
        "reachable  {how}{}",
        if r.configured == "auto" {
            String::new()
        } else {
            format!(" (configured {})", r.configured)
        }
    );
    for a in &r.external {
        say!("external   {a}");
    }
    for a in &r.relayed_addrs {
        say!("relayed    {a}");
    }
    say!(
        "direct     {} peer(s); {} through a relay only; {} hole punch(es), {} failed",
        r.direct_peers,
        r.relayed_peers,
        r.hole_punches,
        r.hole_punch_failures
    );
    if r.relay_server {
        say!("relay      serving as a relay for others");
    }
    Ok(())
}

/// `mesh ui`: the web catalog's address, checked to be served, and opened on request.
pub(crate) fn ui(home: &Path, a: crate::args::UiArgs, json: bool) -> anyhow::Result<()> {
    let api = client(home)?;
    // The daemon must answer before its address is worth printing.
    let status = api.status()?;
    let product: Option<mesh_protocol::ProductId> = match &a.product {
        Some(p) => Some(
            p.parse()
                .map_err(|e| anyhow::anyhow!("{p} is not a product id (domain/name): {e}"))?,
        ),
        None => None,
    };
    let url = api.catalog_url(product.as_ref());
    let mut opened = false;
    if a.open {
        for opener in ["xdg-open", "open"] {
            let spawned = std::process::Command::new(opener)
                .arg(&url)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            if spawned.is_ok() {
                opened = true;
                break;
            }
        }
    }
    if json {
        return print_json(&serde_json::json!({ "url": url, "opened": opened }));
    }
    say!("{url}");
    if a.open && !opened {
        anyhow::bail!("no browser opener (xdg-open or open) on this machine; open {url} by hand");
    }
    if !a.open {
        crate::output::say_err!(
            "the mesh catalog as node {} of domain {} sees it (read-only, served on loopback); open it in a browser",
            status.peer_id,
            status.domain
        );
    }
    Ok(())
}
