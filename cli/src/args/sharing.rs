//! Flags of the commands between domains: asking for and granting access
//! (`mesh access`), following products (`mesh subscribe`, `unsubscribe`,
//! `subscribers`), the consumer tokens of the output ports (`mesh token`) and
//! Delta Sharing profiles (`mesh share`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub(crate) struct AccessArgs {
    #[command(subcommand)]
    pub(crate) command: AccessCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccessCommand {
    /// Ask the owner of a product for access for this node's domain.
    Request {
        /// domain/name.
        product: String,
        /// Why your domain needs the data; the owner reads it.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Grant a consumer domain access to a product this node's domain owns.
    Grant {
        /// The consumer domain (e.g. finance).
        consumer: String,
        /// domain/name.
        product: String,
        /// When the grant ends: a date (2027-06-30, midnight UTC), a time
        /// (2027-06-30T12:00:00Z) or a duration from now (90d). Default: until revoked.
        #[arg(long)]
        until: Option<String>,
        /// What the consumer may use the data for.
        #[arg(long, default_value = "")]
        purpose: String,
        /// The terms of the agreement (retention, sharing, ...).
        #[arg(long, default_value = "")]
        terms: String,
    },
    /// Refuse a consumer domain's request.
    Deny {
        /// The consumer domain.
        consumer: String,
        /// domain/name.
        product: String,
        /// Why; the consumer reads it.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Withdraw a grant; every provider refuses the domain within seconds.
    Revoke {
        /// The consumer domain.
        consumer: String,
        /// domain/name.
        product: String,
        /// Why; the consumer reads it.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List access requests and decisions this node knows, pending ones first.
    Requests {
        /// Only this product (domain/name).
        #[arg(long)]
        product: Option<String>,
        /// Only products of this owner domain.
        #[arg(long)]
        owner: Option<String>,
        /// Only requests by, and decisions on, this consumer domain.
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Show one agreement: the request, the decision, its purpose, terms and end.
    Show {
        /// domain/name.
        product: String,
        /// The consumer domain.
        consumer: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SubscribeArgs {
    /// The product, `domain/name`.
    pub(crate) product: String,
    /// The directory (new or empty, or this subscription's own) on the node's machine.
    /// Or `s3://BUCKET/PREFIX` (empty, or this product's): each version is
    /// delivered there as `PREFIX/VERSION/...` and `PREFIX/current` switched last
    /// (see `mesh fetch --help` for the credentials the node needs).
    #[arg(short, long)]
    pub(crate) out: PathBuf,
    /// How many versions stay materialized (older folders, or prefixes, are removed).
    #[arg(long, default_value_t = 2)]
    pub(crate) keep: usize,
    /// Wait until the newest version is materialized (or the subscription is denied
    /// or failing), printing its state.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Pass over versions the policy flags (published in warn mode with broken
    /// data or failed rules, or breaking a rule): `current` stays on the newest
    /// unflagged version.
    #[arg(long)]
    pub(crate) skip_flagged: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UnsubscribeArgs {
    /// The product, `domain/name`.
    pub(crate) product: String,
}

#[derive(Debug, Args)]
pub(crate) struct SubscribersArgs {
    /// The product, `domain/name`.
    pub(crate) product: String,
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    pub(crate) command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token for a consumer domain; it is printed this once (the node keeps
    /// only its hash). Whoever presents it (`Authorization: Bearer <token>` on the
    /// Flight SQL port, or in a Delta Sharing profile) reads exactly what the rules
    /// and grants let that domain fetch.
    Create {
        /// The consumer domain the token reads as (e.g. finance).
        #[arg(long)]
        domain: String,
        /// When it stops working: a date (2027-06-30, midnight UTC), a time
        /// (2027-06-30T12:00:00Z) or a duration from now (30d).
        #[arg(long, default_value = "90d")]
        until: String,
        /// What it is for, shown by `mesh token list`.
        #[arg(long)]
        label: Option<String>,
    },
    /// List this node's tokens (id, domain, state, expiry); never their secrets.
    List,
    /// Revoke a token: it opens nothing from the next request on.
    Revoke {
        /// The token's id, from `mesh token list`.
        #[arg(required_unless_present = "purge")]
        id: Option<String>,
        /// Also remove every revoked and expired token from the list.
        #[arg(long)]
        purge: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ShareArgs {
    #[command(subcommand)]
    pub(crate) command: ShareCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ShareCommand {
    /// Write a Delta Sharing profile file for a consumer domain: the node's
    /// Delta Sharing endpoint and a new consumer token (listed, revoked and
    /// expiring as `mesh token` shows). With it, pandas or Spark read every
    /// product the rules and grants let that domain fetch, e.g.
    /// `delta_sharing.load_as_pandas("finance.share#finance.sales.orders")`
    /// (share = the consumer domain, schema = the product's domain, table = the
    /// product).
    Profile {
        /// The consumer domain the profile reads as (e.g. finance).
        #[arg(long)]
        domain: String,
        /// Where to write the profile (it holds a secret: written readable by you
        /// only).
        #[arg(long)]
        out: PathBuf,
        /// When its token stops working: a date, a time or a duration (30d).
        #[arg(long, default_value = "90d")]
        until: String,
        /// The endpoint recipients reach the port by, if not the address it listens
        /// on (behind a proxy or a DNS name), e.g. https://sharing.example.com/delta-sharing.
        #[arg(long)]
        endpoint: Option<String>,
        /// Replace an existing file at --out.
        #[arg(long)]
        force: bool,
    },
}
