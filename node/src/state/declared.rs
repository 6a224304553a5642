//! Who declares whom upstream: the `[[lineage]]` of every manifest this node knows,
//! reversed (upstream id -> each downstream id and version that names it), kept in
//! memory so a lineage walk finds a product's downstreams without reading every
//! manifest (at 100,000 products that read took seconds per `mesh lineage`).
//!
//! Loaded from the stored manifests on first use; the catalog adds every manifest
//! it records afterwards (its one write path of manifests, `Catalog::record_manifest`,
//! stores first and then adds). Manifests are never removed, so neither are edges.

use std::collections::{BTreeMap, BTreeSet};

use mesh_protocol::Manifest;

use super::loaded::LoadedOnUse;

/// Upstream id -> `(downstream id, downstream version)` of every manifest that
/// declares it.
pub(crate) type Downstreams = BTreeMap<String, BTreeSet<(String, semver::Version)>>;

/// Adds what `m` declares upstream to `map`.
pub(crate) fn add(map: &mut Downstreams, m: &Manifest) {
    for u in &m.lineage {
        map.entry(u.id.to_string())
            .or_default()
            .insert((m.id.to_string(), m.version.clone()));
    }
}

/// The index, or nothing until it is loaded.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeclaredIndex {
    inner: LoadedOnUse<Downstreams>,
}

impl DeclaredIndex {
    /// `f` over the reversed lineage, loading it with `load` (which [`add`]s every
    /// stored manifest) first if it is not yet.
    pub(crate) fn read<R, E>(
        &self,
        load: impl FnOnce(&mut Downstreams) -> Result<(), E>,
        f: impl FnOnce(&Downstreams) -> R,
    ) -> Result<R, E> {
        self.inner.read(
            || {
                let mut map = Downstreams::new();
                load(&mut map)?;
                Ok(map)
            },
            f,
        )
    }

    /// Records a stored manifest (if the index is loaded; else the load will read it
    /// from the store).
    pub(crate) fn insert(&self, m: &Manifest) {
        self.inner.update(|map| add(map, m));
    }
}
