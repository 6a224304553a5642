//! Offline governance commands: council keys, genesis policy, signing, inspection.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use mesh_node::home::{keyfile, policy_file};
use mesh_node::unix_now;
use mesh_protocol::duration::parse_duration;
use mesh_protocol::policy::{Council, DomainEntry};
use mesh_protocol::{DomainName, KeyPair, Policy, PolicyError, PublicKey, Signed};
use serde_json::json;

use crate::args::{GenesisArgs, KeygenArgs};
use crate::output::{print_json, say, say_err};

pub(crate) fn keygen(a: KeygenArgs, json: bool) -> anyhow::Result<()> {
    let key = KeyPair::generate();
    keyfile::write_key(&a.out, &key)?;
    if json {
        print_json(&json!({ "public_key": key.public().to_string(), "file": a.out }))
    } else {
        say!("{}", key.public());
        say_err!(
            "wrote {} (mode 0600); share the public key above, keep the file secret",
            a.out.display()
        );
        Ok(())
    }
}

fn parse_key(s: &str) -> anyhow::Result<PublicKey> {
    Ok(s.trim().parse::<PublicKey>()?)
}

/// Builds the genesis policy from flags.
pub(crate) fn build_genesis(a: &GenesisArgs, now: u64) -> anyhow::Result<Policy> {
    let members: BTreeSet<PublicKey> = a
        .council
        .iter()
        .map(|k| parse_key(k).context("--council"))
        .collect::<anyhow::Result<_>>()?;
    let mut domains: BTreeMap<DomainName, DomainEntry> = BTreeMap::new();
    for spec in &a.domains {
        let (name, keys) = spec
            .split_once('=')
            .with_context(|| format!("--domain {spec:?}: expected NAME=KEY[+KEY...]"))?;
        let name = DomainName::new(name).with_context(|| format!("--domain {spec:?}"))?;
        let entry = domains.entry(name).or_default();
        for k in keys.split('+') {
            entry
                .publisher_keys
                .insert(parse_key(k).with_context(|| format!("--domain {spec:?}"))?);
        }
    }
    for spec in &a.nodes {
        let (name, peer) = spec
            .split_once('=')
            .with_context(|| format!("--node {spec:?}: expected NAME=PEERID"))?;
        let name = DomainName::new(name).with_context(|| format!("--node {spec:?}"))?;
        peer.parse::<mesh_node::PeerId>()
            .map_err(|e| anyhow::anyhow!("--node {spec:?}: {peer:?} is not a peer id ({e})"))?;
        let Some(entry) = domains.get_mut(&name) else {
            bail!("--node {spec:?}: domain {name} has no --domain entry with its publisher key");
        };
        entry.nodes.insert(peer.to_string());
    }
    let valid_for =
        parse_duration(&a.expires_in).map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
    let valid_for = mesh_protocol::policy::check_validity(valid_for)
        .map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
    let council = Council {
        members,
        threshold: a.threshold,
    };
    let mut policy = match Policy::genesis(council, domains, now, valid_for) {
        Err(PolicyError::BadThreshold { members, .. }) => bail!(
            "--threshold {} must be between 1 and the number of council keys ({members})",
            a.threshold
        ),
        other => other?,
    };
    policy.settings.domain_limits = mesh_protocol::policy::DomainLimits {
        max_versions: a.max_versions_per_domain,
        max_versions_per_hour: a.max_versions_per_domain_per_hour,
    };
    Ok(policy)
}

pub(crate) fn genesis(a: GenesisArgs, json: bool) -> anyhow::Result<()> {
    let policy = build_genesis(&a, unix_now())?;
    policy_file::write(&a.out, &Signed::unsigned(&policy))?;
    if json {
        print_json(&json!({ "file": a.out, "version": 1, "threshold": policy.council.threshold }))
    } else {
        say!(
            "wrote unsigned genesis policy v1 to {}: {} council members, threshold {}, {} domains",
            a.out.display(),
            policy.council.members.len(),
            policy.council.threshold,
            policy.domains.len()
        );
        say!(
            "next: each council member runs `mesh policy sign --key THEIR.key {}`",
            a.out.display()
        );
        Ok(())
    }
}
