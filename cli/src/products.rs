//! Product commands that talk to the running daemon: publish, products, show, gc,
//! verify and usage (fetch is `fetch.rs`, peers and status `network.rs`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use mesh_node::api::{Filter, GcRequest};
use mesh_protocol::duration::format_duration;
use mesh_protocol::ProductRef;

use crate::args::{GcArgs, ProductsArgs, PublishArgs, ShowArgs, UsageArgs};
use crate::client;
use crate::output::{human_bytes, print_json, say_err, say_line};

/// The manifest draft (TOML) to publish: `manifest` as written, or `contract`
/// imported (a contract without `domain` belongs to this node's domain), with its
/// notes printed.
pub(crate) fn draft_toml(
    home: &Path,
    manifest: Option<&Path>,
    contract: Option<&Path>,
) -> anyhow::Result<String> {
    match (manifest, contract) {
        (_, Some(contract)) => {
            let yaml =
                crate::input::read_text(contract, "the contract", crate::input::MAX_CONTRACT)?;
            let domain = crate::contract::domain(home, None);
            let imported = mesh_contract::odcs::import(&yaml, domain.as_deref())
                .with_context(|| format!("reading {}", contract.display()))?;
            for note in &imported.notes {
                say_err!("note: {note}");
            }
            toml::to_string(&imported.draft).context("writing the manifest draft")
        }
        (Some(path), None) => {
            let text = crate::input::read_text(path, "the manifest", crate::input::MAX_SMALL_FILE)?;
            // Read here first, so a mistake is named by the file given; an
            // `odps_file` is read in.
            crate::odps::resolve_file(path, text)
        }
        (None, None) => anyhow::bail!("give --manifest FILE or --contract FILE"),
    }
}

/// What to publish and whether in place: the PATH given, else `[source]` of the
/// manifest (a relative path there is relative to the manifest's folder).
fn data_to_publish(a: &PublishArgs, manifest: &str) -> anyhow::Result<(PathBuf, bool)> {
    if let Some(p) = &a.path {
        return Ok((p.clone(), a.in_place));
    }
    let draft: mesh_contract::ManifestDraft =
        toml::from_str(manifest).context("reading the manifest's [source]")?;
    let Some(source) = draft.source else {
        anyhow::bail!(
            "give the data to publish: `mesh publish PATH --manifest product.toml`, or [source] url = \"...\" in product.toml"
        );
    };
    let url = PathBuf::from(&source.url);
    let is_url = mesh_storage::objects::ObjectUrl::is_object_url(&source.url);
    let beside = a.manifest.as_deref().and_then(Path::parent);
    let path = match beside {
        Some(dir) if !is_url && url.is_relative() => dir.join(url),
        _ => url,
    };
    Ok((path, a.in_place || source.in_place))
}

pub(crate) fn publish(home: &Path, a: PublishArgs, json: bool) -> anyhow::Result<()> {
    let manifest = draft_toml(home, a.manifest.as_deref(), a.contract.as_deref())?;
    let (given, in_place) = data_to_publish(&a, &manifest)?;
    let is_url = given
        .to_str()
        .is_some_and(mesh_storage::objects::ObjectUrl::is_object_url);
    let path = if is_url {
        // Checked here, so a mistake is named before the node is asked.
        let url: mesh_storage::objects::ObjectUrl = given.to_string_lossy().parse()?;
        PathBuf::from(url.to_string())
    } else {
        std::fs::canonicalize(&given).with_context(|| format!("cannot read {}", given.display()))?
    };
    let options = mesh_node::api::PublishOptions { in_place };
    let p = client(home)?.publish_with(&path, &manifest, options)?;
    if json {
        return print_json(&p);
    }
    for w in &p.warnings {
        say_err!("warning: {w}");
    }
    say_line!("published {}@{}", p.product, p.version);
    say_line!("  manifest {}", p.manifest);
    say_line!(
        "  {} file(s), {}, {} chunks ({} new)",
        p.files,
        human_bytes(p.size),
        p.chunks,
        human_bytes(p.new_bytes)
    );
    if p.in_place {
        say_line!(
            "  served in place from {} (no copy in the store; keep the data unchanged)",
            path.display()
        );
    }
    if !p.rules.is_empty() {
        say_line!("  quality rules:");
        for r in &p.rules {
            say_line!("    {}", mesh_contract::quality::rule_line(r));
        }
    }
    Ok(())
}

pub(crate) fn list(home: &Path, a: ProductsArgs, json: bool) -> anyhow::Result<()> {
    let filter = Filter {
        domain: a.domain.clone(),
        tag: a.tag.clone(),
        q: a.search.clone(),
        at: None,
    };
    let entries = client(home)?.products(&filter)?;
    if json {
        return print_json(&entries);
    }
    if entries.is_empty() {
        let filtered = a.domain.is_some() || a.tag.is_some() || a.search.is_some();
        let all = if filtered {
            client(home)?.products(&Filter::default())?.len()
        } else {
            0
        };
        if all > 0 {
            let mut given = Vec::new();
            if let Some(d) = &a.domain {
                given.push(format!("--domain {d}"));
            }
            if let Some(t) = &a.tag {
                given.push(format!("--tag {t}"));
            }
            if let Some(q) = &a.search {
                given.push(format!("--search {q}"));
            }
            say_line!(
                "no product matches {} ({all} version(s) in the catalog; `mesh products` lists them all)",
                given.join(" ")
            );
        } else {
            say_line!(
                "no products yet (a new node learns the catalog from its peers within seconds)"
            );
        }
        return Ok(());
    }
    say_line!(
        "{:<32} {:<10} {:<11} {:<12} {:>10}  {:<5}  {:<8}  {:<20}  TITLE",
        "PRODUCT",
        "VERSION",
        "STATUS",
        "CLASS",
        "SIZE",
        "LOCAL",
        "SLA",
        "FLAGS"
    );
    for e in entries {
        let a = &e.announcement;
        let mut flags: Vec<&str> = e.flags.iter().map(|f| f.rule.as_str()).collect();
        if e.health.as_ref().is_some_and(|h| !h.lineage.is_empty()) {
            flags.push("upstream");
        }
        let flags = if flags.is_empty() {
            "-".to_string()
        } else {
            flags.join(",")
        };
        say_line!(
            "{:<32} {:<10} {:<11} {:<12} {:>10}  {:<5}  {:<8}  {:<20}  {}",
            a.product.to_string(),
            a.version.to_string(),
            a.summary.status.to_string(),
            a.summary.classification.to_string(),
            human_bytes(a.summary.size),
            if e.local { "yes" } else { "-" },
            e.health
                .as_ref()
                .map_or("-".to_string(), |h| h.sla.to_string()),
            flags,
            a.summary.title
        );
    }
    Ok(())
}

pub(crate) fn show(home: &Path, a: ShowArgs, json: bool) -> anyhow::Result<()> {
    let target: ProductRef = a.product.parse()?;
    let r = client(home)?.show(&target, None)?;
    if a.format == crate::args::ShowFormat::Odcs {
        return show_contract(&r, &target, a.to.is_some());
    }
    if a.format == crate::args::ShowFormat::Odps {
        return crate::odps::show(home, &r);
    }
    if json {
        return print_json(&r);
    }
    let entry = &r.entry;
    let an = &entry.announcement;
    say_line!("{}@{}  {}", an.product, an.version, an.summary.title);
    say_line!("  manifest   {}", an.manifest);
    say_line!("  held here  {}", if entry.local { "yes" } else { "no" });
    print_providers(&entry.providers);
    for f in &entry.flags {
        say_line!(
            "  FLAGGED    rule `{}` (policy v{}): {}",
            f.rule,
            f.policy_version,
            f.reason
        );
    }
    let Some(m) = &r.manifest else {
        say_line!(
            "  (manifest unavailable: {})",
            r.manifest_error.as_deref().unwrap_or_default()
        );
        return Ok(());
    };
    print_about(m);
    if let Some(h) = &entry.health {
        say_line!("  sla state  {}", h.sla);
        for r in &h.reasons {
            say_line!("             {r}");
        }
        for l in &h.lineage {
            say_line!("  flag       {l}");
        }
    }
    if let Some(q) = &m.quality {
        print_quality(q);
    }
    print_schema_and_files(m);
    if let Some(d) = &m.derivation {
        print_derivation(home, &target, d);
    }
    Ok(())
}

/// A derived product's query and, if this node computes it, its last outcome.
fn print_derivation(home: &Path, target: &ProductRef, d: &mesh_protocol::manifest::Derivation) {
    say_line!(
        "  derived by query {} (inputs: the upstreams above):",
        d.query_hash.short()
    );
    for line in d.sql.lines() {
        say_line!("    {line}");
    }
    let here = client(home)
        .and_then(|c| Ok(c.derived()?))
        .ok()
        .and_then(|all| all.into_iter().find(|r| r.product == target.id));
    if let Some(mesh_node::DeriveState::Failed { reason, .. }) = here.map(|r| r.state) {
        say_line!("  LAST COMPUTATION FAILED (nothing published): {reason}");
    }
}

/// `show --format odcs`: the product's contract as its author declared it, or
/// converted to v3.1.0 (`to_v3_1`), the changes on stderr.
fn show_contract(
    r: &mesh_node::api::ShowResponse,
    target: &ProductRef,
    to_v3_1: bool,
) -> anyhow::Result<()> {
    let m = r.manifest.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "the manifest is not available: {}",
            r.manifest_error.as_deref().unwrap_or("unknown")
        )
    })?;
    if !to_v3_1 {
        print!("{}", mesh_contract::odcs::export(m)?);
        return Ok(());
    }
    let doc = match mesh_contract::odcs::export_value(m)? {
        serde_json::Value::Object(doc) => doc,
        _ => anyhow::bail!("the stored contract of {} is not a mapping", target),
    };
    let c = mesh_contract::odcs::to_v3_1(doc)?;
    for n in &c.notes {
        say_err!("changed: {n}");
    }
    for p in &c.problems {
        say_err!("still not valid under v3.1.0: {p}");
    }
    print!("{}", c.yaml()?);
    Ok(())
}

/// Status, owner, tags, description and SLA of a manifest.
fn print_about(m: &mesh_protocol::Manifest) {
    say_line!(
        "  status     {}   classification {}",
        m.status,
        m.classification
    );
    say_line!("  owner      {} <{}>", m.owner.team, m.owner.contact);
    if !m.tags.is_empty() {
        say_line!("  tags       {}", m.tags.join(", "));
    }
    if !m.description.is_empty() {
        say_line!("  {}", m.description);
    }
    let sla = [
        ("freshness", m.sla.freshness_secs.map(format_duration)),
        (
            "update every",
            m.sla.update_frequency_secs.map(format_duration),
        ),
        (
            "availability",
            m.sla
                .availability_bp
                .map(|b| format!("{:.2}%", f64::from(b) / 100.0)),
        ),
        ("retention", m.sla.retention_secs.map(format_duration)),
    ];
    let sla: Vec<String> = sla
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
        .collect();
    if !sla.is_empty() {
        say_line!("  sla        {}", sla.join(", "));
    }
}

/// The metrics and rule outcomes measured at publish.
fn print_quality(q: &mesh_protocol::manifest::Quality) {
    say_line!(
        "  quality    {} rows in {} checked file(s)",
        q.rows,
        q.files_checked
    );
    for f in &q.fields {
        say_line!(
            "    {:<20} {} null(s){}",
            f.name,
            f.nulls,
            f.distinct
                .map(|d| format!(", {d} distinct"))
                .unwrap_or_default()
        );
    }
    if q.objects.len() > 1 {
        for o in &q.objects {
            say_line!(
                "    object {:<13} {} file(s), {} row(s)",
                o.name,
                o.files,
                o.rows
            );
        }
    }
    if !q.rules.is_empty() {
        say_line!("  quality rules:");
        for r in &q.rules {
            say_line!("    {}", mesh_contract::quality::rule_line(r));
        }
    }
    if !q.violations.is_empty() {
        say_line!("  broke its contract (published with quality mode warn):");
        for v in &q.violations {
            say_line!("    {}", mesh_contract::quality::summary_line(v));
        }
    }
}

/// The columns, upstreams and files of a manifest.
fn print_schema_and_files(m: &mesh_protocol::Manifest) {
    if !m.schema.is_empty() {
        say_line!("  schema:");
        for f in &m.schema {
            say_line!(
                "    {:<20} {:<10} {:<15} {:<13} {}",
                f.name,
                format!("{:?}", f.logical_type).to_lowercase(),
                match (f.required, f.unique) {
                    (true, true) => "required,unique",
                    (true, false) => "required",
                    (false, true) => "unique",
                    (false, false) => "optional",
                },
                f.classification.to_string(),
                f.description
            );
        }
    }
    for u in &m.lineage {
        say_line!(
            "  upstream   {}{}",
            u.id,
            u.manifest
                .map(|h| format!(" @ {}", h.short()))
                .unwrap_or_default()
        );
    }
    say_line!("  files:");
    for f in &m.files {
        say_line!(
            "    {:<40} {:>10}  {} chunks",
            f.path,
            human_bytes(f.size),
            f.chunks.len()
        );
    }
}

/// The providers of a version: reachable ones counted, each with its role and
/// when its record was last renewed.
fn print_providers(providers: &[mesh_node::api::ProviderStatus]) {
    let reachable = providers.iter().filter(|p| p.connected).count();
    say_line!(
        "  providers  {reachable} reachable of {} known",
        providers.len()
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for p in providers {
        let mut notes = Vec::new();
        if p.this_node {
            notes.push("this node".to_string());
        }
        if p.announced {
            notes.push("publisher".into());
        }
        if p.replica {
            notes.push("replica".into());
        }
        if !p.this_node {
            notes.push(
                if p.connected {
                    "connected"
                } else {
                    "not connected"
                }
                .into(),
            );
        }
        if let Some(seen) = p.last_seen_ms {
            let ago = crate::output::ago(now_ms.saturating_sub(seen) / 1000);
            notes.push(if p.stale {
                format!("STALE, last seen {ago}")
            } else {
                format!("last seen {ago}")
            });
        }
        say_line!(
            "    {}  {:<12} {}",
            p.peer_id,
            p.domain.as_deref().unwrap_or("-"),
            notes.join(", ")
        );
    }
}

pub(crate) fn gc(home: &Path, a: GcArgs, json: bool) -> anyhow::Result<()> {
    let r = client(home)?.gc(&GcRequest {
        keep: a.keep,
        dry_run: a.dry_run,
    })?;
    if json {
        return print_json(&r);
    }
    let verb = if r.dry_run { "would free" } else { "freed" };
    for v in &r.dropped_versions {
        say_line!("no longer held: {v}");
    }
    say_line!(
        "{verb} {} in {} chunk(s); kept {} chunk(s)",
        human_bytes(r.freed_bytes),
        r.freed_chunks,
        r.kept_chunks
    );
    if r.query_copies_removed > 0 || r.query_bytes_freed > 0 {
        say_line!(
            "{verb} {} of query copies ({} older or unfinished version(s)) and derived-product work files",
            human_bytes(r.query_bytes_freed),
            r.query_copies_removed
        );
    }
    if r.sharing_files_removed > 0 {
        say_line!(
            "{verb} {} Delta Sharing file(s) of older or unfinished versions",
            r.sharing_files_removed
        );
    }
    Ok(())
}

pub(crate) fn verify(home: &Path, a: crate::args::VerifyArgs, json: bool) -> anyhow::Result<()> {
    let r = client(home)?.verify(&mesh_node::api::VerifyRequest {
        no_repair: a.no_repair,
    })?;
    if json {
        return print_json(&r);
    }
    let corrupt = match r.corrupt_removed.len() {
        0 => "none corrupt".to_string(),
        n => format!("{n} corrupt, removed"),
    };
    let changed = match r.chunks_changed {
        0 => String::new(),
        n => format!(", {n} of in-place files that changed, dropped"),
    };
    say_line!(
        "checked {} chunk(s): {} intact ({}){changed}, {corrupt}",
        r.chunks_checked,
        r.chunks_intact,
        human_bytes(r.bytes_checked)
    );
    for c in &r.corrupt_removed {
        say_line!("  corrupt chunk {c}");
    }
    for f in &r.changed_files {
        say_line!("  kept in place, changed since: {f} (restore it; or publish the data again as a new version, or fetch the version again)");
    }
    for p in &r.unmarked {
        say_line!("no longer held whole: {p}");
    }
    for p in &r.repaired {
        say_line!("repaired from peers: {p}");
    }
    for p in &r.not_repaired {
        say_err!("warning: not repaired: {p}");
    }
    if !r.not_repaired.is_empty() {
        anyhow::bail!(
            "{} product(s) could not be fetched again; retry when a provider is up",
            r.not_repaired.len()
        );
    }
    Ok(())
}

pub(crate) fn usage(home: &Path, a: UsageArgs, json: bool) -> anyhow::Result<()> {
    let target: ProductRef = a.product.parse()?;
    let u = client(home)?.usage(&target)?;
    if json {
        return print_json(&u);
    }
    let what = match &u.version {
        Some(v) => format!("{}@{v}", u.product),
        None => u.product.clone(),
    };
    say_line!(
        "{what}: {} fetch(es) reported by {} provider(s)",
        u.total,
        u.reports
    );
    if u.total == 0 {
        say_line!("  no fetches reported yet (providers report within seconds of a fetch)");
    }
    for (consumer, n) in &u.by_consumer {
        say_line!("  consumer {consumer:<20} {n:>8}");
    }
    if u.version.is_none() {
        for (version, n) in &u.by_version {
            say_line!("  version  {version:<20} {n:>8}");
        }
    }
    for (grant, n) in &u.by_grant {
        say_line!(
            "  grant    {grant:<20} {n:>8}   (`mesh access requests --product {}` names it)",
            u.product
        );
    }
    for (provider, n) in &u.by_provider {
        say_line!("  provider {provider:<52} {n:>8}");
    }
    Ok(())
}
