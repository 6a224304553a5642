//! Object storage against a real S3 server (SeaweedFS, started on loopback by
//! `mesh_testkit::seaweed`): the errors a user meets name the endpoint, the bucket
//! and what to do.

use mesh_storage::objects::{Bucket, ObjectError, ObjectSettings, ObjectUrl};
use mesh_testkit::seaweed::{self, Seaweed};

/// A server, or `None` (said loudly) where `weed` is missing outside CI.
fn server(dir: &std::path::Path) -> Option<Seaweed> {
    let Some(weed) = Seaweed::binary() else {
        if std::env::var_os("CI").is_some() {
            panic!("the object storage tests must run in CI: install weed with `scripts/py-clients s3`");
        }
        eprintln!("\n!!! SKIPPED: no weed binary (run scripts/py-clients s3)\n");
        return None;
    };
    Some(Seaweed::start(&weed, dir).expect("start SeaweedFS"))
}

fn open(s: &Seaweed, url: &str, secret: &str) -> Bucket {
    let env = s.lookup();
    let lookup = move |k: &str| match k {
        "AWS_SECRET_ACCESS_KEY" => Some(secret.to_string()),
        _ => env(k),
    };
    let url: ObjectUrl = url.parse().expect("url");
    let settings = ObjectSettings {
        retries: Some(1),
        ..ObjectSettings::default()
    };
    Bucket::open_with_env(&url, &settings, &lookup).expect("open")
}

#[test]
fn wrong_credentials_and_missing_buckets_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let Some(s) = server(dir.path()) else { return };
    s.make_bucket("lake").expect("bucket");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let good = open(&s, "s3://lake/products", seaweed::SECRET);
        good.check()
            .await
            .expect("the right key reaches the bucket");
        let key = good.key("none/here").expect("key");
        assert!(good.head(&key).await.expect("head").is_none());

        let wrong = open(&s, "s3://lake/products", "not-the-secret");
        let e = wrong.check().await.expect_err("a wrong secret is refused");
        assert!(matches!(e, ObjectError::Denied { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains(&s.endpoint) && text.contains("lake"),
            "{text}"
        );
        assert!(text.contains(seaweed::KEY_ID), "{text}");
        assert!(!text.contains("not-the-secret"), "{text}");

        let missing = open(&s, "s3://no-such-lake/x", seaweed::SECRET);
        let e = missing.check().await.expect_err("no such bucket");
        assert!(matches!(e, ObjectError::NoBucket { .. }), "{e:?}");
        assert!(e.to_string().contains("no-such-lake"), "{e}");
    });
}
