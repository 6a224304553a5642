//! `mesh contract`: ODCS data contracts without a node, for a domain team's own
//! CI. `init` drafts a contract from the data, `lint` lists its problems, `test`
//! runs every check publish makes against a data directory, `changelog` says what
//! changed between two versions and whether it breaks consumers. Each exits 1
//! when it finds a problem.

use std::path::Path;

use anyhow::Context;
use mesh_contract::quality::{self, RuleState};
use mesh_node::home::policy_file;
use mesh_node::NodeHome;
use mesh_protocol::policy::SchemaCompatibility;
use serde_json::json;

use crate::args::{
    ChangelogArgs, CompatMode, ContractConvertArgs, ContractInitArgs, ContractLintArgs,
    ContractTestArgs,
};
use crate::output::{print_json, say, say_err};

/// The domain a contract without one is published for: `--domain`, else this
/// home's.
pub(crate) fn domain(home: &Path, given: Option<String>) -> Option<String> {
    given.or_else(|| {
        NodeHome::new(home)
            .load_config()
            .ok()
            .map(|c| c.domain.to_string())
    })
}

fn read(path: &Path) -> anyhow::Result<String> {
    crate::input::read_text(path, "the contract", crate::input::MAX_CONTRACT)
}

fn contract_json(path: &Path) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    mesh_contract::odcs::document(&read(path)?)
        .with_context(|| format!("reading {}", path.display()))
}

pub(crate) fn init(home: &Path, a: ContractInitArgs, json: bool) -> anyhow::Result<()> {
    let files = mesh_node::collect_files(&a.dir)?;
    let domain = domain(home, a.domain).unwrap_or_else(|| "my-domain".into());
    let name = a.name.unwrap_or_else(|| {
        std::fs::canonicalize(&a.dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "my-product".into())
    });
    let drafted = mesh_contract::infer::draft(&files, &domain, &name)?;
    if let Some(out) = &a.output {
        if out.exists() && !a.force {
            anyhow::bail!("{} exists; give --force to replace it", out.display());
        }
        std::fs::write(out, &drafted.yaml).with_context(|| format!("writing {}", out.display()))?;
    }
    if json {
        return print_json(&json!({"contract": drafted.yaml, "notes": drafted.notes}));
    }
    for n in &drafted.notes {
        say_err!("note: {n}");
    }
    match &a.output {
        Some(out) => say!(
            "wrote {} (edit it, then `mesh contract lint {}`)",
            out.display(),
            out.display()
        ),
        None => say!("{}", drafted.yaml.trim_end()),
    }
    Ok(())
}

pub(crate) fn lint(home: &Path, a: ContractLintArgs, json: bool) -> anyhow::Result<()> {
    let l = mesh_contract::odcs::lint(&read(&a.file)?, domain(home, a.domain).as_deref());
    if json {
        print_json(&l)?;
    } else {
        for n in &l.notes {
            say!("note: {n}");
        }
        for e in &l.errors {
            say!("{}: {e}", a.file.display());
        }
    }
    if l.errors.is_empty() {
        if !json {
            say!("{}: no problems", a.file.display());
        }
        Ok(())
    } else {
        anyhow::bail!("{} problem(s) in {}", l.errors.len(), a.file.display())
    }
}

pub(crate) fn convert(a: ContractConvertArgs, json: bool) -> anyhow::Result<()> {
    let c = mesh_contract::odcs::to_v3_1(contract_json(&a.file)?)
        .with_context(|| format!("converting {}", a.file.display()))?;
    let yaml = c.yaml()?;
    let refused = !c.problems.is_empty() && !a.force;
    if let Some(out) = a.output.as_ref().filter(|_| !refused) {
        if out.exists() && !a.force {
            anyhow::bail!("{} exists; give --force to replace it", out.display());
        }
        std::fs::write(out, &yaml).with_context(|| format!("writing {}", out.display()))?;
    }
    if json {
        print_json(&json!({"contract": yaml, "notes": c.notes, "problems": c.problems}))?;
    } else {
        for n in &c.notes {
            say_err!("changed: {n}");
        }
        for p in &c.problems {
            say_err!("{}: {p}", a.file.display());
        }
        match (&a.output, refused) {
            (_, true) => {}
            (Some(out), false) => say!("wrote {} (ODCS v3.1.0)", out.display()),
            (None, false) => say!("{}", yaml.trim_end()),
        }
    }
    if refused {
        anyhow::bail!(
            "{} problem(s) remain under ODCS v3.1.0 in {}; nothing written (fix them, or give --force to write it anyway)",
            c.problems.len(),
            a.file.display()
        );
    }
    Ok(())
}

pub(crate) fn test(home: &Path, a: ContractTestArgs, json: bool) -> anyhow::Result<()> {
    let yaml = read(&a.file)?;
    let imported = mesh_contract::odcs::import(&yaml, domain(home, a.domain).as_deref())
        .with_context(|| format!("reading {}", a.file.display()))?;
    let files = mesh_node::collect_files(&a.dir)?;
    let report = imported
        .draft
        .check_data(&files)
        .with_context(|| format!("reading the data in {}", a.dir.display()))?;
    if json {
        print_json(&json!({
            "kept": report.kept(),
            "missing": report.missing,
            "rows": report.quality.as_ref().map(|q| q.rows),
            "files_checked": report.quality.as_ref().map(|q| q.files_checked),
            "objects": report.quality.as_ref().map(|q| &q.objects),
            "rules": report.rules,
            "violations": report.summary,
            "total_violations": report.total_violations,
            "notes": report.notes,
        }))?;
    } else {
        for n in &report.notes {
            say!("note: {n}");
        }
        if let Some(q) = &report.quality {
            for o in &q.objects {
                let name = if o.name.is_empty() {
                    "schema"
                } else {
                    o.name.as_str()
                };
                say!("object {name}: {} file(s), {} row(s)", o.files, o.rows);
            }
        } else {
            say!(
                "no CSV, JSON-lines, JSON or Parquet file in {} was read",
                a.dir.display()
            );
        }
        for m in &report.missing {
            say!("{m}");
        }
        for r in &report.rules {
            say!("{}", quality::rule_line(r));
        }
        for line in report.summary.iter().map(quality::summary_line) {
            say!("{line}");
        }
        let listed = report.violations.len() as u64;
        for v in &report.violations {
            say!("  {v}");
        }
        if report.total_violations > listed {
            say!(
                "  ... and {} more violation(s)",
                report.total_violations - listed
            );
        }
    }
    let failed = report
        .rules
        .iter()
        .filter(|r| r.state == RuleState::Failed)
        .count();
    if report.kept() {
        if !json {
            say!("the data keeps its contract");
        }
        Ok(())
    } else {
        anyhow::bail!(
            "the data breaks its contract: {} object(s) without data, {} violation(s), {failed} rule(s) failed",
            report.missing.len(),
            report.total_violations
        )
    }
}

pub(crate) fn changelog(home: &Path, a: ChangelogArgs, json: bool) -> anyhow::Result<()> {
    let (old, new) = (contract_json(&a.old)?, contract_json(&a.new)?);
    let log = mesh_contract::changelog::changelog_for(&old, &new, a.perspective.into());
    let (mode, from) = match (a.mode, &a.policy) {
        (Some(m), _) => (m.into(), "--mode".to_owned()),
        (None, Some(p)) => (
            policy_file::read(p)?.value()?.settings.schema_compatibility,
            p.display().to_string(),
        ),
        (None, None) => match mesh_node::ApiClient::for_home(&NodeHome::new(home))
            .ok()
            .and_then(|c| c.policy(None).ok())
        {
            Some(view) => (
                view.policy.settings.schema_compatibility,
                "the node's policy".into(),
            ),
            None => (
                SchemaCompatibility::Backward,
                "the default; no node running".into(),
            ),
        },
    };
    let refused = log.refused_by(mode);
    if json {
        print_json(&json!({"changelog": log, "mode": mode, "refused": refused}))?;
    } else {
        say!(
            "{} -> {} (schema compatibility {}, from {from})",
            log.versions.0,
            log.versions.1,
            mode
        );
        if log.changes.is_empty() {
            say!("no changes");
        }
        for c in &log.changes {
            let tag = match c.severity {
                mesh_contract::changelog::Severity::Breaking => "BREAKING",
                mesh_contract::changelog::Severity::Compatible => "change",
            };
            say!("{tag:<9} {}: {}", c.path, c.change);
        }
    }
    match refused {
        Some(why) => anyhow::bail!("{why}"),
        None => Ok(()),
    }
}

impl From<CompatMode> for SchemaCompatibility {
    fn from(m: CompatMode) -> Self {
        match m {
            CompatMode::None => SchemaCompatibility::None,
            CompatMode::Backward => SchemaCompatibility::Backward,
            CompatMode::Frozen => SchemaCompatibility::Frozen,
        }
    }
}
