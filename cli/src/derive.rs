//! `mesh derive` and `mesh derived`: derived products, computed by the daemon.

use std::path::Path;

use anyhow::{bail, Context};
use mesh_contract::ManifestDraft;
use mesh_node::api::types::DeriveBody;
use mesh_node::{DeriveState, DerivedProduct};

use crate::args::DeriveArgs;
use crate::output::{date, say};

/// `mesh derive PATH|ID`.
pub(crate) fn derive(home: &Path, a: DeriveArgs, json: bool) -> anyhow::Result<()> {
    let api = crate::client(home)?;
    let path = Path::new(&a.target);
    let record = if a.remove {
        api.underive(&a.target.parse()?)?
    } else if path.is_file() {
        let draft = draft_with_query(path)?;
        api.derive(&DeriveBody {
            draft: Some(draft),
            product: None,
            force: a.force,
        })?
    } else if a.target.ends_with(".toml") {
        bail!("{}: no such file", path.display())
    } else {
        api.derive(&DeriveBody {
            draft: None,
            product: Some(a.target.clone()),
            force: a.force,
        })?
    };
    if json {
        say!("{}", serde_json::to_string(&record)?);
    } else if a.remove {
        say!(
            "{}: no longer computed here (its published versions stay)",
            record.product
        );
    } else {
        show(&record);
    }
    if matches!(record.state, DeriveState::Failed { .. }) && !a.remove {
        bail!("{} was not published", record.product);
    }
    Ok(())
}

/// `product.toml`'s text with a `sql_file` read into `sql`.
fn draft_with_query(path: &Path) -> anyhow::Result<String> {
    let text = crate::input::read_text(path, "product.toml", crate::input::MAX_SMALL_FILE)?;
    let mut draft: ManifestDraft =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let Some(derive) = draft.derive.as_mut() else {
        bail!(
            "{} has no [derive] section: a derived product's product.toml names its query, e.g.\n  [derive]\n  sql = \"SELECT ... FROM sales.orders\"",
            path.display()
        );
    };
    match (&derive.sql, derive.sql_file.take()) {
        (Some(_), Some(_)) => bail!("[derive] has both sql and sql_file: keep one"),
        (None, Some(file)) => {
            let base = path.parent().unwrap_or(Path::new("."));
            let sql = crate::input::read_text(&base.join(&file), "the query file", 64 * 1024)?;
            derive.sql = Some(sql);
        }
        (Some(_), None) => {}
        (None, None) => bail!("[derive] needs sql = \"...\" or sql_file = \"query.sql\""),
    }
    Ok(toml::to_string(&draft)?)
}

/// `mesh derived`.
pub(crate) fn list(home: &Path, json: bool) -> anyhow::Result<()> {
    let all = crate::client(home)?.derived()?;
    if json {
        say!("{}", serde_json::to_string(&all)?);
    } else if all.is_empty() {
        say!("no derived products (publish one with `mesh derive product.toml`)");
    } else {
        all.iter().for_each(show);
    }
    Ok(())
}

/// A derived product's outcome and inputs.
fn show(d: &DerivedProduct) {
    let state = match &d.state {
        DeriveState::Waiting => "waiting: not computed yet".to_string(),
        DeriveState::Published { version } => format!("published {version}"),
        DeriveState::Unchanged { version } => format!(
            "unchanged: the same result as {} (nothing published)",
            version.as_deref().unwrap_or("the last version")
        ),
        DeriveState::Failed { reason, transient } => format!(
            "FAILED{}: {reason}",
            if *transient { " (retried)" } else { "" }
        ),
    };
    say!("{}  {state}  ({})", d.product, date(d.updated_ms / 1000));
    for u in &d.inputs {
        let pin = u.manifest.map(|h| h.short()).unwrap_or_default();
        say!("  input {} @ {pin}", u.id);
    }
}
