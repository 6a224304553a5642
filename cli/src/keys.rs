//! Offline governance commands: council keys, genesis policy, signing, inspection.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use mesh_node::governance::unix_now;
use mesh_node::{keyfile, policy_file};
use mesh_protocol::duration::parse_duration;
use mesh_protocol::policy::{Council, DomainEntry, Settings, POLICY_FORMAT};
use mesh_protocol::{DomainName, KeyPair, Policy, PublicKey, Signed};
use serde_json::json;

use crate::args::{GenesisArgs, KeygenArgs, ShowPolicyArgs, SignArgs};
use crate::output::print_json;

pub(crate) fn keygen(a: KeygenArgs, json: bool) -> anyhow::Result<()> {
    let key = KeyPair::generate();
    keyfile::write_key(&a.out, &key)?;
    if json {
        print_json(&json!({ "public_key": key.public().to_string(), "file": a.out }))
    } else {
        println!("{}", key.public());
        eprintln!(
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
    let policy = Policy {
        format: POLICY_FORMAT,
        version: 1,
        issued_at: now,
        expires_at: now.saturating_add(valid_for),
        council: Council {
            members,
            threshold: a.threshold,
        },
        domains,
        rules: String::new(),
        settings: Settings::default(),
    };
    if policy.council.threshold == 0
        || usize::from(policy.council.threshold) > policy.council.members.len()
    {
        bail!(
            "--threshold {} must be between 1 and the number of council keys ({})",
            policy.council.threshold,
            policy.council.members.len()
        );
    }
    Ok(policy)
}

pub(crate) fn genesis(a: GenesisArgs, json: bool) -> anyhow::Result<()> {
    let policy = build_genesis(&a, unix_now())?;
    policy_file::write(&a.out, &Signed::unsigned(&policy))?;
    if json {
        print_json(&json!({ "file": a.out, "version": 1, "threshold": policy.council.threshold }))
    } else {
        println!(
            "wrote unsigned genesis policy v1 to {}: {} council members, threshold {}, {} domains",
            a.out.display(),
            policy.council.members.len(),
            policy.council.threshold,
            policy.domains.len()
        );
        println!(
            "next: each council member runs `mesh policy sign --key THEIR.key {}`",
            a.out.display()
        );
        Ok(())
    }
}

fn signature_status(signed: &Signed<Policy>, policy: &Policy) -> (usize, Vec<PublicKey>) {
    let signers = signed.valid_signers();
    let have = policy.council.members.intersection(&signers).count();
    let missing = policy
        .council
        .members
        .difference(&signers)
        .copied()
        .collect();
    (have, missing)
}

pub(crate) fn sign(a: SignArgs, json: bool) -> anyhow::Result<()> {
    let key = keyfile::read_key(&a.key)?;
    let before = policy_file::read(&a.file)?;
    let policy = before.value()?;
    if !policy.council.members.contains(&key.public()) {
        eprintln!(
            "warning: {} is not a member of this policy's council; its signature will not count",
            key.public()
        );
    }
    let signed = policy_file::sign(&a.file, &key)?;
    let (have, missing) = signature_status(&signed, &policy);
    if json {
        return print_json(&json!({
            "file": a.file, "signatures": have, "threshold": policy.council.threshold,
            "missing": missing.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        }));
    }
    println!(
        "signed policy v{} with {}: {have} of {} required council signatures",
        policy.version,
        key.public().short(),
        policy.council.threshold
    );
    Ok(())
}

pub(crate) fn show(a: ShowPolicyArgs, json: bool) -> anyhow::Result<()> {
    let signed = policy_file::read(&a.file)?;
    let policy = signed.value()?;
    let (have, missing) = signature_status(&signed, &policy);
    if json {
        return print_json(&json!({
            "policy": policy, "hash": signed.hash().to_string(),
            "signatures": have, "missing": missing.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        }));
    }
    println!("policy v{}  hash {}", policy.version, signed.hash().short());
    println!("expires_at: {} (unix seconds)", policy.expires_at);
    println!(
        "council: threshold {} of {}",
        policy.council.threshold,
        policy.council.members.len()
    );
    for m in &policy.council.members {
        let mark = if missing.contains(m) {
            "not signed"
        } else {
            "signed"
        };
        println!("  {m}  {mark}");
    }
    println!("domains:");
    for (name, d) in &policy.domains {
        println!(
            "  {name}: {} publisher key(s), {} node(s)",
            d.publisher_keys.len(),
            d.nodes.len()
        );
        for k in &d.publisher_keys {
            println!("    key  {k}");
        }
        for n in &d.nodes {
            println!("    node {n}");
        }
    }
    let need = usize::from(policy.council.threshold);
    if have >= need {
        println!("signatures: {have} of {need} required: complete");
    } else {
        println!(
            "signatures: {have} of {need} required; missing: {}",
            missing
                .iter()
                .map(|k| k.short())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
