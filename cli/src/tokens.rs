//! `mesh token`: the consumer tokens of the node's output ports, made, listed and
//! revoked through the daemon (which keeps only their hashes).

use std::path::Path;

use mesh_node::api::types::{TokenCreateBody, TokenRevokeBody, TokenView};

use crate::access::until_ms;
use crate::args::{TokenArgs, TokenCommand};
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
