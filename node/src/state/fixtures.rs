//! Fixtures for the state layer's unit tests.

/// A fresh in-memory store holding a one-domain genesis (`sales`), and the
/// governance over it, for unit tests.
pub(crate) fn test_governance() -> (
    std::sync::Arc<dyn mesh_storage::MetaStore>,
    super::governance::Governance,
) {
    governance_with_publisher(&mesh_protocol::KeyPair::generate())
}

/// A catalog over [`test_governance`]'s genesis whose `sales` publisher key is the
/// one returned.
pub(crate) fn test_catalog() -> (super::catalog::Catalog, mesh_protocol::KeyPair) {
    let publisher = mesh_protocol::KeyPair::generate();
    let (store, governance) = governance_with_publisher(&publisher);
    (super::catalog::Catalog::new(store, governance), publisher)
}

fn governance_with_publisher(
    publisher: &mesh_protocol::KeyPair,
) -> (
    std::sync::Arc<dyn mesh_storage::MetaStore>,
    super::governance::Governance,
) {
    use mesh_protocol::policy::{Council, DomainEntry};
    use mesh_protocol::{KeyPair, Policy, Signed};
    let council = KeyPair::generate();
    let domains = [(
        "sales".parse().expect("domain name"),
        DomainEntry {
            publisher_keys: [publisher.public()].into(),
            ..DomainEntry::default()
        },
    )]
    .into();
    let genesis = Policy::genesis(
        Council {
            members: [council.public()].into(),
            threshold: 1,
        },
        domains,
        crate::clock::unix_now(),
        86_400,
    )
    .expect("genesis");
    let store: std::sync::Arc<dyn mesh_storage::MetaStore> =
        std::sync::Arc::new(mesh_storage::MemStore::default());
    super::governance::install_genesis(
        store.as_ref(),
        &Signed::sign(&genesis, &council),
        crate::clock::unix_now(),
    )
    .expect("install genesis");
    let governance = super::governance::Governance::load(store.clone()).expect("governance");
    (store, governance)
}
