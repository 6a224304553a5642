//! `mesh init` and `mesh node run`.

use std::path::Path;

use anyhow::Context;
use mesh_node::home::{keyfile, policy_file};
use mesh_node::{install_genesis, unix_now, NodeHome, RunOptions};
use mesh_protocol::DomainName;
use mesh_storage::SledStore;
use serde_json::json;

use crate::args::{IdArgs, InitArgs, RunArgs};
use crate::output::{print_json, say, say_err};

pub(crate) fn init(home: &Path, a: InitArgs, json: bool) -> anyhow::Result<()> {
    let home = NodeHome::new(home);
    let mut created = false;
    if !home.exists() {
        let domain = a.domain.as_deref().with_context(|| {
            format!(
                "{} is not a mesh home yet: pass --domain NAME to create it",
                home.root().display()
            )
        })?;
        let domain = DomainName::new(domain).context("--domain")?;
        let import = a
            .publisher_key
            .as_deref()
            .map(keyfile::read_key)
            .transpose()?;
        home.create(&domain, import)?;
        created = true;
    } else if let Some(d) = &a.domain {
        let config = home.load_config()?;
        if config.domain.as_str() != d {
            anyhow::bail!(
                "{} already belongs to domain {}, not {d}; use another --home",
                home.root().display(),
                config.domain
            );
        }
    }
    let config = home.load_config()?;
    let publisher = home.load_publisher_key(&config.domain)?.public();
    let peer_id = home.peer_id()?;
    let mut policy_version = None;
    if let Some(genesis) = &a.genesis {
        let signed = policy_file::read(genesis)?;
        let store = SledStore::open(&home.db_path())?;
        let policy = install_genesis(&store, &signed, unix_now())
            .with_context(|| format!("installing genesis {}", genesis.display()))?;
        if !policy.is_publisher(&config.domain, &publisher) {
            say_err!(
                "warning: the genesis does not register this node's publisher key for domain {}; it can fetch but not publish",
                config.domain
            );
        }
        policy_version = Some(policy.version);
    }
    if json {
        return print_json(&json!({
            "home": home.root(), "created": created, "domain": config.domain.to_string(),
            "peer_id": peer_id.to_string(), "publisher_key": publisher.to_string(),
            "policy_version": policy_version,
        }));
    }
    if created {
        say!(
            "created mesh home {} for domain {}",
            home.root().display(),
            config.domain
        );
    }
    say!("peer id:       {peer_id}");
    say!("publisher key: {publisher}");
    match policy_version {
        Some(v) => say!("trusted genesis policy v{v}; start with `mesh --home {} node run`", home.root().display()),
        None => say!(
            "next: register the publisher key (and peer id) in the genesis policy, then `mesh --home {} init --genesis FILE`",
            home.root().display()
        ),
    }
    Ok(())
}

pub(crate) fn id(home: &Path, a: IdArgs, json: bool) -> anyhow::Result<()> {
    let home = NodeHome::new(home);
    let config = home.load_config()?;
    let publisher = home.load_publisher_key(&config.domain)?.public();
    let peer_id = home.peer_id()?;
    if a.publisher_key {
        say!("{publisher}");
    } else if a.peer_id {
        say!("{peer_id}");
    } else if json {
        print_json(&json!({
            "domain": config.domain.to_string(), "peer_id": peer_id.to_string(),
            "publisher_key": publisher.to_string(),
        }))?;
    } else {
        say!("domain         {}", config.domain);
        say!("peer id        {peer_id}");
        say!("publisher key  {publisher}");
    }
    Ok(())
}

pub(crate) fn run_node(home: &Path, a: RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,libp2p_gossipsub=warn,libp2p_kad=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let running = mesh_node::start(
            NodeHome::new(home),
            RunOptions {
                listen: a.listen,
                bootstrap: a.bootstrap,
                api_listen: a.api,
                no_discovery: a.no_discovery,
                ephemeral: false,
            },
        )
        .await?;
        let status = running.node.status().await?;
        say_err!(
            "mesh node {} (domain {}) running; control API on {}",
            status.peer_id,
            status.domain,
            running.api_addr
        );
        say_err!(
            "the mesh catalog in your browser: http://{}/",
            running.api_addr
        );
        let token = running.shutdown_token();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let orphaned = async {
            match a.parent_pid {
                Some(pid) => {
                    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
                    while proc_dir.exists() {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => say_err!("interrupted; shutting down"),
            _ = orphaned => say_err!("parent process exited; shutting down"),
            _ = term.recv() => say_err!("terminated; shutting down"),
            _ = token.cancelled() => {}
        }
        running.shutdown().await?;
        Ok(())
    })
}
