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

/// An object streamed for publishing is read at the ETag it was listed with:
/// its exact bytes, and once it is replaced an error saying so (never the new
/// bytes); ranged reads likewise.
#[test]
fn streams_read_the_listed_object_or_fail() {
    use mesh_storage::objects::object_store::{ObjectStoreExt, PutPayload};
    use mesh_storage::objects::{source_of, ObjectSource};
    use mesh_storage::RemoteSource;
    use std::io::Read;

    let dir = tempfile::tempdir().expect("tmp");
    let Some(s) = server(dir.path()) else { return };
    s.make_bucket("lake").expect("bucket");
    // ObjectSource takes its credentials from the environment, as the node does.
    for (k, v) in s.env() {
        std::env::set_var(k, v);
    }
    let bucket = open(&s, "s3://lake", seaweed::SECRET);
    let key = bucket.key("orders/a.bin").expect("key");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let etag = rt.block_on(async {
        let put = bucket.store().put(&key, PutPayload::from(data.clone()));
        put.await.expect("put").e_tag.expect("etag")
    });
    let source = source_of("lake", key.as_ref(), &etag);
    let reader = ObjectSource::new(ObjectSettings::default()).expect("source");
    let mut got = Vec::new();
    reader
        .stream(&source)
        .expect("stream")
        .read_to_end(&mut got)
        .expect("read");
    assert!(got == data, "the streamed bytes are the object's");
    assert_eq!(
        reader.read_at(&source, 1_000_000, 10).expect("range"),
        data[1_000_000..1_000_010]
    );

    rt.block_on(async {
        let put = bucket
            .store()
            .put(&key, PutPayload::from(b"other".to_vec()));
        put.await.expect("replace");
    });
    let e = reader
        .stream(&source)
        .expect("stream")
        .read_to_end(&mut Vec::new())
        .expect_err("a replaced object is not read");
    assert!(e.to_string().contains("changed since it was listed"), "{e}");
    assert!(e.to_string().contains("s3://lake/orders/a.bin"), "{e}");
    assert!(matches!(
        reader.read_at(&source, 0, 5),
        Err(mesh_storage::RemoteError::Changed(_))
    ));
}
