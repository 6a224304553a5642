//! Governance commands: draft, sign, submit, show, history, check.
//!
//! Drafting and signing are offline (a council member needs only their key file and
//! the policy file); submitting, history and check talk to the running node.

use std::path::Path;

use anyhow::Context;
use mesh_node::home::{keyfile, policy_file};
use mesh_node::{unix_now, NodeHome};
use mesh_protocol::policy::Council;
use mesh_protocol::policy_change::PolicyChange;
use mesh_protocol::{Policy, PublicKey, Signed};
use serde_json::json;

use crate::args::{CheckArgs, DraftArgs, ShowPolicyArgs, SignArgs, SubmitArgs};
use crate::client;
use crate::output::{print_json, say, say_err};

fn decode_envelope(hex_text: &str) -> anyhow::Result<Signed<Policy>> {
    let bytes = hex::decode(hex_text).context("policy envelope from the node is not hex")?;
    Ok(Signed::from_bytes(&bytes)?)
}

fn status_lines(
    signed: &Signed<Policy>,
    policy: &Policy,
    previous: Option<&Council>,
) -> Vec<(String, usize, u16, Vec<PublicKey>)> {
    let mut out = Vec::new();
    if let Some(prev) = previous {
        let (have, missing) = prev.signatures(signed);
        out.push(("current council".to_string(), have, prev.threshold, missing));
    }
    let (have, missing) = policy.council.signatures(signed);
    let label = if previous.is_some() {
        "new council"
    } else {
        "council"
    };
    out.push((label.to_string(), have, policy.council.threshold, missing));
    out
}

pub(crate) fn draft(home: &Path, a: DraftArgs, json: bool) -> anyhow::Result<()> {
    let current: Signed<Policy> = match &a.current {
        Some(f) => policy_file::read(f)?,
        None => decode_envelope(&client(home)?.policy(None)?.envelope)?,
    };
    let current = current.value()?;
    let text = crate::input::read_text(&a.change, "the change file", crate::input::MAX_SMALL_FILE)?;
    let mut change = PolicyChange::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.change.display()))?;
    if change.expires_in.is_none() {
        // Never inherited from the current version: the flag, the home's default,
        // or a year.
        change.expires_in = Some(match &a.expires_in {
            Some(d) => d.clone(),
            None => NodeHome::new(home)
                .load_config()
                .map(|c| c.policy_validity)
                .unwrap_or_else(|_| "365d".into()),
        });
    }
    if let Some(rules) = &change.rules_file {
        let path = a.change.parent().unwrap_or(Path::new(".")).join(rules);
        change.rules = Some(crate::input::read_text(
            &path,
            "the rules file",
            crate::input::MAX_SMALL_FILE,
        )?);
    }
    let next = change
        .apply(&current, unix_now())
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.change.display()))?;
    policy_file::write_with_previous(
        &a.out,
        &Signed::unsigned(&next),
        Some(current.council.clone()),
    )?;
    if json {
        return print_json(
            &json!({ "file": a.out, "version": next.version, "expires_at": next.expires_at }),
        );
    }
    say!(
        "wrote unsigned policy v{} to {} (replaces v{}); it expires {} ({} from now)",
        next.version,
        a.out.display(),
        current.version,
        crate::output::date(next.expires_at),
        mesh_protocol::duration::format_duration(next.expires_at.saturating_sub(next.issued_at))
    );
    say!(
        "it needs {} of the current council and {} of the new council: each signer runs `mesh policy sign --key KEY {}`",
        current.council.threshold,
        next.council.threshold,
        a.out.display()
    );
    Ok(())
}

pub(crate) fn sign(a: SignArgs, json: bool) -> anyhow::Result<()> {
    let key = keyfile::read_key(&a.key)?;
    let (before, previous) = policy_file::read_with_previous(&a.file)?;
    let policy = before.value()?;
    let member = policy.council.members.contains(&key.public())
        || previous
            .as_ref()
            .is_some_and(|c| c.members.contains(&key.public()));
    if !member {
        say_err!(
            "warning: {} is not a council member for this policy; its signature will not count",
            key.public()
        );
    }
    let signed = policy_file::sign(&a.file, &key)?;
    let lines = status_lines(&signed, &policy, previous.as_ref());
    if json {
        return print_json(&json!({
            "file": a.file,
            "councils": lines.iter().map(|(label, have, need, missing)| json!({
                "council": label, "signatures": have, "threshold": need,
                "missing": missing.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
    }
    say!(
        "signed policy v{} with {}",
        policy.version,
        key.public().short()
    );
    for (label, have, need, _) in lines {
        let state = if have >= usize::from(need) {
            "complete"
        } else {
            "incomplete"
        };
        say!("  {label}: {have} signed, {need} required ({state})");
    }
    Ok(())
}

pub(crate) fn submit(home: &Path, a: SubmitArgs, json: bool) -> anyhow::Result<()> {
    let signed = policy_file::read(&a.file)?;
    let r = client(home)?.submit_policy(&signed)?;
    if json {
        return print_json(&r);
    }
    if r.accepted.is_empty() {
        say!(
            "the node already holds this policy; it enforces v{}",
            r.version
        );
    } else {
        say!(
            "accepted policy v{}; it is being gossiped to the mesh",
            r.version
        );
    }
    Ok(())
}

fn print_policy(signed: &Signed<Policy>, policy: &Policy, previous: Option<&Council>) {
    say!("policy v{}  hash {}", policy.version, signed.hash().short());
    say!(
        "issued_at {}  expires_at {}{}",
        policy.issued_at,
        policy.expires_at,
        if policy.expires_at <= unix_now() {
            "  (EXPIRED)"
        } else {
            ""
        }
    );
    say!(
        "council: threshold {} of {}",
        policy.council.threshold,
        policy.council.members.len()
    );
    let signers = signed.valid_signers();
    for m in &policy.council.members {
        say!(
            "  {m}  {}",
            if signers.contains(m) {
                "signed"
            } else {
                "not signed"
            }
        );
    }
    say!("domains:");
    for (name, d) in &policy.domains {
        say!(
            "  {name}: {} publisher key(s), {} node(s){}",
            d.publisher_keys.len(),
            d.nodes.len(),
            if d.contact.is_empty() {
                String::new()
            } else {
                format!(", contact {}", d.contact)
            }
        );
        for k in &d.publisher_keys {
            say!("    key  {k}");
        }
        for n in &d.nodes {
            say!("    node {n}");
        }
    }
    let st = &policy.settings;
    say!(
        "settings: schema_compatibility = \"{}\", quality = \"{}\", serve_retired = {}, max_versions_per_domain = {}, max_versions_per_domain_per_hour = {} (0: no limit)",
        st.schema_compatibility,
        st.quality,
        st.serve_retired,
        st.domain_limits.max_versions,
        st.domain_limits.max_versions_per_hour
    );
    let rules = policy
        .rules
        .lines()
        .filter(|l| l.trim_start().starts_with("@id("))
        .count();
    say!(
        "rules: {} bytes, {rules} rule(s) with an @id",
        policy.rules.len()
    );
    for (label, have, need, missing) in status_lines(signed, policy, previous) {
        if have >= usize::from(need) {
            say!("signatures ({label}): {have} of {need} required: complete");
        } else {
            say!(
                "signatures ({label}): {have} of {need} required; missing: {}",
                missing
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

pub(crate) fn show(home: &Path, a: ShowPolicyArgs, json: bool) -> anyhow::Result<()> {
    let (signed, previous) = match &a.file {
        Some(f) => policy_file::read_with_previous(f)?,
        None => (
            decode_envelope(&client(home)?.policy(a.version)?.envelope)?,
            None,
        ),
    };
    let policy = signed.value()?;
    if let Some(out) = &a.out {
        policy_file::write_with_previous(out, &signed, previous.clone())?;
    }
    if json {
        let lines = status_lines(&signed, &policy, previous.as_ref());
        return print_json(&json!({
            "policy": policy, "hash": signed.hash().to_string(),
            "signers": signed.valid_signers().iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            "councils": lines.iter().map(|(label, have, need, missing)| json!({
                "council": label, "signatures": have, "threshold": need,
                "missing": missing.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
    }
    print_policy(&signed, &policy, previous.as_ref());
    if !policy.rules.trim().is_empty() {
        say!("--- rules\n{}", policy.rules.trim_end());
    }
    Ok(())
}

pub(crate) fn history(home: &Path, json: bool) -> anyhow::Result<()> {
    let versions = client(home)?.policy_history()?;
    if json {
        return print_json(&versions);
    }
    say!(
        "{:<8} {:<14} {:<20} {:<20} {:<10} {:<8} SIGNERS",
        "VERSION",
        "HASH",
        "ISSUED",
        "EXPIRES",
        "COUNCIL",
        "DOMAINS"
    );
    for v in versions {
        let p = &v.policy;
        say!(
            "{:<8} {:<14} {:<20} {:<20} {:<10} {:<8} {}{}",
            p.version,
            &v.hash[..12],
            crate::output::date(p.issued_at),
            crate::output::date(p.expires_at),
            format!("{}-of-{}", p.council.threshold, p.council.members.len()),
            p.domains.len(),
            v.signers.len(),
            if v.expired { "  expired" } else { "" }
        );
    }
    Ok(())
}

pub(crate) fn check(home: &Path, a: CheckArgs, json: bool) -> anyhow::Result<()> {
    let what = a
        .manifest
        .as_deref()
        .or(a.contract.as_deref())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let manifest = crate::products::draft_toml(home, a.manifest.as_deref(), a.contract.as_deref())?;
    let node = client(home)?;
    let r = node.check(&manifest)?;
    // The data, checked here as the node would at publish.
    let data = match &a.data {
        None => None,
        Some(dir) => {
            let draft: mesh_contract::ManifestDraft =
                toml::from_str(&manifest).context("reading the manifest")?;
            let files = mesh_node::collect_files(dir)?;
            let report = draft
                .check_data(&files)
                .with_context(|| format!("reading the data in {}", dir.display()))?;
            let warn = node.policy(None)?.policy.settings.quality
                == mesh_protocol::policy::QualityEnforcement::Warn;
            Some((report, warn))
        }
    };
    let data_refused = data.as_ref().is_some_and(|(d, warn)| !d.kept() && !warn);
    if json {
        print_json(&json!({
            "allowed": r.allowed && !data_refused,
            "policy_version": r.policy_version,
            "problems": r.problems,
            "data": data.as_ref().map(|(d, warn)| json!({
                "kept": d.kept(), "quality_mode_warn": warn, "rules": d.rules,
                "violations": d.summary, "total_violations": d.total_violations,
            })),
        }))?;
    } else {
        if r.allowed {
            say!(
                "allowed: policy v{} permits publishing {what}",
                r.policy_version
            );
        } else {
            say!("denied under policy v{}:", r.policy_version);
            for p in &r.problems {
                say!("  {p}");
            }
        }
        if let Some((d, warn)) = &data {
            match (d.kept(), warn) {
                (true, _) => say!("the data keeps its contract"),
                (false, true) => say!(
                    "the data breaks its contract (published with warnings: quality mode warn):"
                ),
                (false, false) => {
                    say!("the data breaks its contract (refused: quality mode refuse):")
                }
            }
            for line in d.lines() {
                say!("  {line}");
            }
        }
    }
    if r.allowed && !data_refused {
        Ok(())
    } else {
        anyhow::bail!("publishing {what} would be refused")
    }
}
