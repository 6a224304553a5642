//! `mesh token`: the consumer tokens of the node's output ports, made, listed and
//! revoked through the daemon (which keeps only their hashes); `mesh share
//! profile`: a Delta Sharing profile file carrying a new one.

use std::path::Path;

use anyhow::Context;

use mesh_node::api::types::{TokenCreateBody, TokenRevokeBody, TokenView};

use crate::access::until_ms;
use crate::args::{ShareArgs, ShareCommand, TokenArgs, TokenCommand};
use crate::output::{date, say};

/// `mesh token ...`.
pub(crate) fn run(home: &Path, a: TokenArgs, json: bool) -> anyhow::Result<()> {
    let api = crate::client(home)?;
    match a.command {
        TokenCommand::Create {
            domain,
            until,
            label,
        } => {
            let created = api.token_create(&TokenCreateBody {
                domain,
                expires_ms: until_ms(&until)?,
                label,
            })?;
            if json {
                say!("{}", serde_json::to_string(&created)?);
            } else {
                say!("{}", created.token);
                say!(
                    "token {} for domain {}, until {}: shown this once; give it to the consumer (Authorization: Bearer <token>)",
                    created.view.id,
                    created.view.domain,
                    date(created.view.expires_ms / 1000)
                );
            }
        }
        TokenCommand::List => {
            let tokens = api.tokens()?;
            if json {
                say!("{}", serde_json::to_string(&tokens)?);
            } else if tokens.is_empty() {
                say!("no tokens (make one with `mesh token create --domain DOMAIN`)");
            } else {
                for t in &tokens {
                    say!("{}", line(t));
                }
            }
        }
        TokenCommand::Revoke { id, purge } => {
            let r = api.token_revoke(&TokenRevokeBody { id, purge })?;
            if json {
                say!("{}", serde_json::to_string(&r)?);
            } else {
                if let Some(t) = &r.revoked {
                    say!("revoked token {} of domain {}", t.id, t.domain);
                }
                if purge {
                    say!("removed {} revoked or expired tokens", r.purged);
                }
            }
        }
    }
    Ok(())
}

/// One line per token: id, state, domain, expiry, label.
fn line(t: &TokenView) -> String {
    format!(
        "{}  {:<8} {:<16} until {}  {}",
        t.id,
        t.state,
        t.domain,
        date(t.expires_ms / 1000),
        t.label.as_deref().unwrap_or("")
    )
}

/// `mesh share profile`: makes a consumer token for the domain and writes the
/// Delta Sharing profile (`shareCredentialsVersion`, `endpoint`, `bearerToken`,
/// `expirationTime`) that carries it, readable by the user only.
pub(crate) fn share(home: &Path, a: ShareArgs, json: bool) -> anyhow::Result<()> {
    let ShareCommand::Profile {
        domain,
        out,
        until,
        endpoint,
        force,
    } = a.command;
    let api = crate::client(home)?;
    let endpoint = match endpoint {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => api.status()?.delta_sharing.ok_or_else(|| {
            anyhow::anyhow!(
                "the node serves no Delta Sharing port: set `[delta_sharing] enabled = true` in config.toml and restart it"
            )
        })?,
    };
    if out.exists() && !force {
        anyhow::bail!(
            "{} exists: choose another --out, or --force to replace it",
            out.display()
        );
    }
    let created = api.token_create(&TokenCreateBody {
        domain,
        expires_ms: until_ms(&until)?,
        label: Some(format!("delta sharing profile {}", out.display())),
    })?;
    let expires = time::OffsetDateTime::from_unix_timestamp(
        i64::try_from(created.view.expires_ms / 1000).unwrap_or(i64::MAX),
    )
    .ok()
    .and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    let mut profile = serde_json::json!({
        "shareCredentialsVersion": 1,
        "endpoint": endpoint,
        "bearerToken": created.token,
    });
    if let Some(e) = expires {
        profile["expirationTime"] = serde_json::Value::String(e);
    }
    // Owner-only, written whole or not at all (also over an old file, --force).
    mesh_node::home::write_atomic(&out, serde_json::to_string_pretty(&profile)?.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    if json {
        say!(
            "{}",
            serde_json::json!({"profile": out, "endpoint": endpoint, "token": created.view})
        );
    } else {
        say!(
            "wrote {} for domain {} (token {}, until {}): it holds a secret; give it to the recipient. Share {:?}: tables are <product domain>.<product>",
            out.display(),
            created.view.domain,
            created.view.id,
            date(created.view.expires_ms / 1000),
            created.view.domain.to_string(),
        );
    }
    Ok(())
}
