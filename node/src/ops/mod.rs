//! The node's operations: what a user asks of it, built on `state/` and, where
//! peers are needed, the `net/` handle.
//!
//! Map: [`publish`] turns files and a draft into a signed, announced product
//! ([`publish_objects`]: from object storage, in place or copied);
//! [`fetch`] resolves, downloads from several providers and verifies (its
//! scheduler in `fetch/schedule.rs`); [`discover`] lists the catalog with each
//! product's SLA and lineage health; [`submit`] takes a signed policy; [`access`]
//! signs access requests and the owner's decisions; [`subscribe`] follows
//! products into directories (each new version fetched and switched in whole);
//! [`query`] runs SQL over the products a query names, fetching them first;
//! [`derive`] computes derived products from such queries and publishes them;
//! [`lineage`] emits an OpenLineage event per publish; [`deliver`] puts a held
//! version into object storage (`-o s3://...`);
//! [`share`] serves products as Delta Sharing tables (versions as a history,
//! each as one Parquet file of the contract's types);
//! `background` runs the daemon's long tasks
//! (manifest prefetch, usage reports). Nothing here names the API or the daemon.

pub(crate) mod access;
pub(crate) mod background;
pub(crate) mod deliver;
pub(crate) mod derive;
pub(crate) mod discover;
pub(crate) mod fetch;
pub(crate) mod found;
pub(crate) mod lineage;
pub(crate) mod publish;
pub(crate) mod publish_objects;
pub(crate) mod query;
pub(crate) mod share;
pub(crate) mod submit;
pub(crate) mod subscribe;
