//! `mesh odps import`: a product.toml drafted from an Open Data Product Standard
//! document; `mesh show --format odps`: a product exported as one, with the
//! ports this node serves; and the `odps_file` a product.toml names, read at
//! publish.

use std::path::{Path, PathBuf};

use anyhow::Context;
use mesh_contract::odps::{InputLink, Served};
use mesh_node::NodeHome;
use mesh_protocol::{Manifest, ProductRef};
use serde_json::json;

use crate::args::OdpsImportArgs;
use crate::output::{print_json, say, say_err};

fn read(path: &Path) -> anyhow::Result<String> {
    crate::input::read_text(path, "the ODPS document", crate::input::MAX_CONTRACT)
}

/// `path` relative to `base` when it lies under it, else absolute.
fn relative_to(path: &Path, base: &Path) -> anyhow::Result<String> {
    let path =
        std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rel = std::fs::canonicalize(base)
        .ok()
        .and_then(|b| path.strip_prefix(b).ok().map(Path::to_path_buf))
        .unwrap_or(path);
    Ok(rel.to_string_lossy().into_owned())
}

/// `mesh odps import FILE`.
pub(crate) fn import(home: &Path, a: OdpsImportArgs, json: bool) -> anyhow::Result<()> {
    let yaml = read(&a.file)?;
    let out = a.output.clone().unwrap_or_else(|| {
        a.file
            .parent()
            .map_or_else(|| PathBuf::from("product.toml"), |d| d.join("product.toml"))
    });
    if out.exists() && !a.force {
        anyhow::bail!("{} exists; give --force to replace it", out.display());
    }
    let out_dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let named = relative_to(&a.file, &out_dir)?;
    let domain = crate::contract::domain(home, a.domain);
    let imported = mesh_contract::odps::import(&yaml, &named, domain.as_deref())
        .with_context(|| format!("reading {}", a.file.display()))?;
    let toml = toml::to_string(&imported.draft).context("writing the product.toml draft")?;
    std::fs::write(&out, &toml).with_context(|| format!("writing {}", out.display()))?;
    if json {
        return print_json(
            &json!({"product_toml": out, "id": imported.draft.id, "notes": imported.notes}),
        );
    }
    for n in &imported.notes {
        say_err!("note: {n}");
    }
    say!(
        "wrote {} for {} (odps_file = {named:?}); publish with `mesh publish DATA --manifest {}`",
        out.display(),
        imported.draft.id,
        out.display()
    );
    Ok(())
}

/// The product.toml `text` (read from `path`) with its `odps_file` read into
/// `odps`, checked against the standard: what is sent to the daemon.
pub(crate) fn resolve_file(path: &Path, text: String) -> anyhow::Result<String> {
    let mut draft: mesh_contract::ManifestDraft =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let Some(file) = draft.odps_file.take() else {
        return Ok(text);
    };
    let at = path.parent().unwrap_or(Path::new(".")).join(&file);
    let document = mesh_contract::odps::document(&read(&at)?)
        .with_context(|| format!("reading {} (odps_file of {})", at.display(), path.display()))?;
    draft.odps = Some(document);
    toml::to_string(&draft).context("writing the manifest draft")
}

/// The ports this node serves (from its status), and whether its Flight SQL
/// port has TLS (from its config).
fn served(home: &Path, delta_sharing: Option<String>, flight_sql: Option<String>) -> Served {
    let tls = NodeHome::new(home)
        .load_config()
        .is_ok_and(|c| c.flight_sql.tls_cert.is_some());
    Served {
        delta_sharing,
        flight_sql,
        flight_sql_tls: tls,
    }
}

/// Each upstream of `m` as an input port: its contract's id and the version
/// read, where this node can tell (the pinned manifest hash is always given).
fn inputs(client: &mesh_node::ApiClient, m: &Manifest) -> Vec<InputLink> {
    m.lineage
        .iter()
        .map(|u| {
            let target = ProductRef {
                id: u.id.clone(),
                version: None,
            };
            let shown = client.show(&target, None).ok();
            // The version read, when the lineage pins the newest one.
            let version = shown
                .as_ref()
                .filter(|r| Some(r.entry.announcement.manifest) == u.manifest)
                .map(|r| r.entry.announcement.version.to_string());
            let contract_id = shown
                .and_then(|r| r.manifest)
                .and_then(|up| mesh_contract::odcs::export_value(&up).ok())
                .and_then(|c| c.get("id").and_then(|v| v.as_str()).map(String::from));
            InputLink {
                product: u.id.to_string(),
                version,
                contract_id,
                manifest: u.manifest.map(|h| h.to_string()),
            }
        })
        .collect()
}

/// `mesh show ID --format odps`: the product as an ODPS v1.1.0 document (YAML).
pub(crate) fn show(home: &Path, r: &mesh_node::api::ShowResponse) -> anyhow::Result<()> {
    let m = r.manifest.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "the manifest is not available: {}",
            r.manifest_error.as_deref().unwrap_or("unknown")
        )
    })?;
    let client = crate::client(home)?;
    let status = client.status()?;
    let contract = mesh_contract::odcs::export_value(m)?;
    let contract_id = contract
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let hash = r.entry.announcement.manifest.to_string();
    let doc = mesh_contract::odps::export(
        m,
        &hash,
        &contract_id,
        &served(home, status.delta_sharing, status.flight_sql),
        &inputs(&client, m),
    )?;
    print!("{}", mesh_contract::odps::to_yaml(&doc)?);
    Ok(())
}
