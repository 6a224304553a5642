//! Unit tests of how the catalog takes offered announcements.

use super::*;
use mesh_protocol::policy::{Council, DomainEntry};
use mesh_protocol::{DomainName, KeyPair, Policy};

/// A catalog over a genesis whose domain `sales` has the publisher keys `current`
/// and `old`; the council's key signs later policies.
struct Setup {
    council: KeyPair,
    current: KeyPair,
    old: KeyPair,
    governance: Governance,
    catalog: Catalog,
}

fn setup() -> Setup {
    setup_with(
        KeyPair::generate(),
        KeyPair::generate(),
        KeyPair::generate(),
    )
}

/// A [`Setup`] of these keys (two catalogs that judge alike).
fn setup_with(council: KeyPair, current: KeyPair, old: KeyPair) -> Setup {
    let genesis = Policy::genesis(
        Council {
            members: [council.public()].into(),
            threshold: 1,
        },
        [(
            "sales".parse().expect("domain"),
            DomainEntry {
                publisher_keys: [current.public(), old.public()].into(),
                ..DomainEntry::default()
            },
        )]
        .into(),
        crate::clock::unix_now(),
        86_400,
    )
    .expect("genesis");
    let store: Arc<dyn MetaStore> = Arc::new(mesh_storage::MemStore::default());
    super::super::governance::install_genesis(
        store.as_ref(),
        &Signed::sign(&genesis, &council),
        crate::clock::unix_now(),
    )
    .expect("install genesis");
    let governance = Governance::load(store.clone()).expect("governance");
    let catalog = Catalog::new(store, governance.clone());
    Setup {
        council,
        current,
        old,
        governance,
        catalog,
    }
}

/// `sales/orders@version`, announced at `at` and signed by `key`.
fn announcement(key: &KeyPair, version: &str, at: u64) -> Vec<u8> {
    let a = crate::state::fixtures::orders_announcement(key, version, at);
    Signed::sign(&a, key).to_bytes()
}

fn invalid(outcome: Result<Offer, OfferError>) -> String {
    match outcome {
        Err(OfferError::Invalid(e)) => e.to_string(),
        other => panic!("expected an invalid offer, got {other:?}"),
    }
}

#[test]
fn a_page_checked_on_several_threads_ends_as_the_same_offers_one_by_one() {
    // More than PARALLEL_FROM entries: new versions, a tampered one, an unsigned
    // key's, a version twice (the second a refresh), and one offered again.
    let s = setup();
    let stranger = KeyPair::generate();
    let mut page: Vec<Vec<u8>> = (0..100)
        .map(|i| announcement(&s.current, &format!("1.{i}.0"), 1_000 + i))
        .collect();
    page[10][40] ^= 1;
    page[20] = announcement(&stranger, "9.0.0", 1_000);
    page[30] = announcement(&s.current, "1.29.0", 5_000);
    page[40] = page[5].clone();
    page[50] = announcement(&s.current, "1.49.0", 500);
    let copy = |k: &KeyPair| KeyPair::from_secret(k.secret_bytes());
    let one_by_one = setup_with(copy(&s.council), copy(&s.current), copy(&s.old));
    let paged = s;
    let expected: Vec<String> = page
        .iter()
        .map(|b| format!("{:?}", one_by_one.catalog.offer(b)))
        .collect();
    let got = paged.catalog.offer_page(&page);
    let outcomes: Vec<String> = got.iter().map(|(o, _)| format!("{o:?}")).collect();
    assert_eq!(outcomes, expected);
    assert_eq!(outcomes[30], "Ok(Refreshed)");
    assert_eq!(outcomes[40], "Ok(Known)");
    assert_eq!(outcomes[50], "Ok(Known)");
    assert!(outcomes[10].starts_with("Err(Invalid"), "{}", outcomes[10]);
    assert!(outcomes[20].contains("not registered"), "{}", outcomes[20]);
    // Every outcome but the tampered one names its announcement (for the cursor).
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (_, a))| a.is_some() || i == 10));
    assert_eq!(paged.catalog.len().expect("len"), 95);
    assert_eq!(
        paged.catalog.digest().expect("digest").versions,
        one_by_one.catalog.digest().expect("digest").versions
    );
}

#[test]
fn offers_of_one_version_checked_before_either_is_kept_count_it_once() {
    // Gossip (on the network loop) and a sync (on its worker) check and keep at
    // the same time: both may check a version before either keeps it. Run with
    // the announcement index not loaded (the store is read) and loaded (the index
    // answers for versions it lacks).
    for load_index in [false, true] {
        let s = setup();
        if load_index {
            s.catalog.with_index(|_| ()).expect("index");
        }
        let first = announcement(&s.current, "1.0.0", 1_000);
        let (a, b) = (s.catalog.check(&first), s.catalog.check(&first));
        let (a, b) = (a.expect("checked"), b.expect("checked"));
        assert_eq!(s.catalog.keep(&first, &a).expect("keep"), Offer::New);
        assert_eq!(s.catalog.keep(&first, &b).expect("keep"), Offer::Known);

        // A refresh and the envelope it replaces, checked together, kept newest first.
        let newer = announcement(&s.current, "2.0.0", 2_000);
        let older = announcement(&s.current, "2.0.0", 1_000);
        let (n, o) = (s.catalog.check(&newer), s.catalog.check(&older));
        let (n, o) = (n.expect("checked"), o.expect("checked"));
        assert_eq!(s.catalog.keep(&newer, &n).expect("keep"), Offer::New);
        assert_eq!(s.catalog.keep(&older, &o).expect("keep"), Offer::Known);

        // Another manifest for a version kept since the check is refused.
        let mut other = crate::state::fixtures::orders_announcement(&s.current, "3.0.0", 1_000);
        let kept = announcement(&s.current, "3.0.0", 1_000);
        other.manifest = ManifestHash::of(b"another manifest");
        let other = Signed::sign(&other, &s.current).to_bytes();
        let (k, c) = (s.catalog.check(&kept), s.catalog.check(&other));
        let (k, c) = (k.expect("checked"), c.expect("checked"));
        assert_eq!(s.catalog.keep(&kept, &k).expect("keep"), Offer::New);
        assert!(invalid(s.catalog.keep(&other, &c)).contains("already announced"));

        assert_eq!(
            s.catalog.len().expect("len"),
            3,
            "index loaded: {load_index}"
        );
    }
}

#[test]
fn one_version_offered_on_two_threads_at_once_is_new_once() {
    let s = setup();
    for minor in 0..40 {
        let bytes = announcement(&s.current, &format!("1.{minor}.0"), 1_000);
        let start = std::sync::Barrier::new(2);
        let offer = || {
            start.wait();
            s.catalog.offer(&bytes).expect("offer")
        };
        let outcomes = std::thread::scope(|scope| {
            let (a, b) = (scope.spawn(offer), scope.spawn(offer));
            [a.join().expect("thread"), b.join().expect("thread")]
        });
        let new = outcomes.iter().filter(|o| **o == Offer::New).count();
        assert_eq!(new, 1, "1.{minor}.0: {outcomes:?}");
    }
    assert_eq!(s.catalog.len().expect("len"), 40);
}

#[test]
fn an_envelope_already_kept_is_known_even_after_its_key_is_removed() {
    let s = setup();
    let kept = announcement(&s.old, "1.0.0", 1_000);
    assert_eq!(s.catalog.offer(&kept).expect("offer"), Offer::New);
    assert_eq!(s.catalog.offer(&kept).expect("again"), Offer::Known);

    // The council removes the old key from sales.
    let mut next = s.governance.policy();
    next.version += 1;
    next.domains
        .get_mut(&"sales".parse::<DomainName>().expect("domain"))
        .expect("sales")
        .publisher_keys
        .remove(&s.old.public());
    let offered = s
        .governance
        .offer(&[Signed::sign(&next, &s.council)], crate::clock::unix_now())
        .expect("offer policy");
    assert_eq!(offered.accepted.len(), 1, "{:?}", offered.error);

    // A peer sending back exactly what was kept (anti-entropy) is not refused:
    // refusing would cost an honest peer its gossip score.
    assert_eq!(s.catalog.offer(&kept).expect("kept"), Offer::Known);
    // Anything new the removed key signs is refused: a re-announcement ...
    let refreshed = announcement(&s.old, "1.0.0", 2_000);
    assert!(invalid(s.catalog.offer(&refreshed)).contains("not registered"));
    // ... or another version.
    let other = announcement(&s.old, "1.1.0", 2_000);
    assert!(invalid(s.catalog.offer(&other)).contains("not registered"));
    // A tampered copy of the kept envelope is checked, not taken for it.
    let mut tampered = kept.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(s.catalog.offer(&tampered).is_err());
    // The current key still announces.
    let current = announcement(&s.current, "1.1.0", 3_000);
    assert_eq!(s.catalog.offer(&current).expect("current"), Offer::New);
}

#[test]
fn a_domain_over_its_policy_limits_is_not_kept_and_the_peer_keeps_its_score() {
    let s = setup();
    // The council sets limits: 4 versions a domain, 2 in any hour.
    let mut next = s.governance.policy();
    next.version += 1;
    next.format = mesh_protocol::policy::POLICY_FORMAT;
    next.settings.domain_limits = mesh_protocol::policy::DomainLimits {
        max_versions: 4,
        max_versions_per_hour: 2,
    };
    let offered = s
        .governance
        .offer(&[Signed::sign(&next, &s.council)], crate::clock::unix_now())
        .expect("offer policy");
    assert_eq!(offered.accepted.len(), 1, "{:?}", offered.error);
    let hour = 3_600_000;
    let offer = |v: &str, at: u64| s.catalog.offer(&announcement(&s.current, v, at));
    assert_eq!(offer("1.0.0", hour).expect("1"), Offer::New);
    assert_eq!(offer("1.1.0", hour + 1).expect("2"), Offer::New);
    // A third in the same hour: over the rate, and not the sender's fault.
    match offer("1.2.0", hour + 2) {
        Err(OfferError::OverLimit(e)) => assert!(e.contains("per_hour = 2"), "{e}"),
        other => panic!("expected over the limit, got {other:?}"),
    }
    assert_eq!(offer("1.2.0", 3 * hour).expect("3"), Offer::New);
    assert_eq!(offer("1.3.0", 5 * hour).expect("4"), Offer::New);
    match offer("1.4.0", 9 * hour) {
        Err(OfferError::OverLimit(e)) => assert!(e.contains("has 4 versions"), "{e}"),
        other => panic!("expected over the quota, got {other:?}"),
    }
    assert_eq!(s.catalog.len().expect("len"), 4);
    // A refresh of a kept version is no new version: still taken.
    assert_eq!(offer("1.3.0", 9 * hour).expect("refresh"), Offer::Refreshed);
    assert_eq!(
        s.catalog
            .within_domain_limits(&"finance".parse().expect("domain"), 9 * hour)
            .map_err(|e| e.to_string()),
        Ok(())
    );
}
