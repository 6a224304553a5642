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

/// `sales/orders@version`, announced at `at` by `publisher` (unsigned).
pub(crate) fn orders_announcement(
    publisher: &mesh_protocol::KeyPair,
    version: &str,
    at: u64,
) -> mesh_protocol::Announcement {
    use mesh_protocol::announcement::{Summary, ANNOUNCEMENT_FORMAT};
    use mesh_protocol::manifest::{Classification, Status};
    mesh_protocol::Announcement {
        format: ANNOUNCEMENT_FORMAT,
        product: "sales/orders".parse().expect("product"),
        version: version.parse().expect("version"),
        manifest: mesh_protocol::ManifestHash::of(version.as_bytes()),
        summary: Summary {
            title: "Orders".into(),
            status: Status::Active,
            classification: Classification::Internal,
            tags: vec![],
            owner_team: "sales".into(),
            size: 1,
            files: 1,
        },
        providers: vec![libp2p::PeerId::random().to_string()],
        issued_at_ms: at,
        publisher: publisher.public(),
    }
}
