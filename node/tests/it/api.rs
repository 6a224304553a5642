//! The control API as a browser or a careless client would meet it: requests for
//! another host (DNS rebinding) are refused, and every error, also an oversized or
//! malformed body, comes back in the API's JSON form.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::io::{Read, Write};

use common::*;

/// Sends one raw HTTP/1.1 request; returns the status code and the body.
fn raw(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before it has read the whole body.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, headers.to_lowercase(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_foreign_hosts_and_answers_every_error_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let Keys { sales, genesis, .. } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let addr = a.api_addr;
    let results = tokio::task::spawn_blocking(move || {
        let get = |host: &str| {
            raw(
                addr,
                &format!("GET /v1/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
                b"",
            )
        };
        let big = vec![b'x'; 2 << 20];
        let too_large = raw(
            addr,
            &format!(
                "POST /v1/policy/check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                big.len()
            ),
            &big,
        );
        let malformed = raw(
            addr,
            "POST /v1/policy/check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n",
            b"{not json",
        );
        (
            get("evil.example"),
            get("127.0.0.1.evil.example:80"),
            get(&addr.to_string()),
            get("localhost"),
            too_large,
            malformed,
        )
    })
    .await
    .unwrap();
    let (evil, tricky, by_addr, by_name, too_large, malformed) = results;
    for (status, _, body) in [&evil, &tricky] {
        assert_eq!(*status, 403, "{body}");
        let err: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(err["kind"], "bad_host", "{body}");
    }
    assert_eq!(by_addr.0, 200, "{}", by_addr.2);
    assert_eq!(by_name.0, 200, "{}", by_name.2);
    let (status, headers, body) = too_large;
    assert_eq!(status, 413);
    assert!(
        headers.contains("content-type: application/json"),
        "{headers}"
    );
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["kind"], "too_large", "{body}");
    let (status, headers, body) = malformed;
    assert!((400..500).contains(&status), "{status}");
    assert!(
        headers.contains("content-type: application/json"),
        "{headers}"
    );
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["kind"], "usage", "{body}");
    a.shutdown().await.unwrap();
}

/// `GET path` with `Host: 127.0.0.1`.
fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        b"",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_catalog_escapes_hostile_text_and_sends_a_strict_csp() {
    let dir = tempfile::tempdir().unwrap();
    let Keys { sales, genesis, .. } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    // A publisher (or a peer's announcement) may carry any text: a title and a
    // description that try to break out of the HTML, a tag that tries a link.
    let toml = "id = \"sales/evil\"\nversion = \"1.0.0\"\n\
        title = \"<script>alert('title')</script>\"\n\
        description = \"\\\"><img src=x onerror=alert(1)> <b>bold</b>\"\n\
        tags = [\"javascript:alert(2)\"]\n\
        [owner]\nteam = \"<iframe>\"\ncontact = \"mailto:x\\\" onclick=\\\"alert(3)\"\n";
    let data = data_dir(dir.path(), "evil.csv", b"a,b\n1,<script>\n");
    a.node.publish(data, toml.into()).await.unwrap();
    let addr = a.api_addr;
    let pages = tokio::task::spawn_blocking(move || {
        [
            "/",
            "/products",
            "/products?q=%3Cscript%3E&tag=%22%3E%3Cb%3E",
            "/products/sales/evil",
            "/domains/sales",
            "/governance",
            "/node",
            "/no/such/page",
            "/v1/no-such-route",
            "/products/sales/evil/contract.yaml",
            "/products?page=999999999999999999999&sort=%00",
            "/products?page=2&page=3&q=%FF%FE",
        ]
        .map(|p| (p, get(addr, p)))
    })
    .await
    .unwrap();
    for (path, (status, headers, body)) in &pages {
        let html = headers.contains("content-type: text/html");
        match *path {
            "/no/such/page" => assert_eq!(*status, 404, "{path}: {body}"),
            // A duplicated field does not read: an HTML page says so.
            "/products?page=2&page=3&q=%FF%FE" => {
                assert_eq!(*status, 400, "{body}");
                assert!(html && body.contains("does not read"), "{headers}{body}");
            }
            "/v1/no-such-route" => {
                assert_eq!(*status, 404, "{body}");
                let err: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!(err["kind"], "not_found", "{body}");
            }
            "/products/sales/evil/contract.yaml" => {
                assert_eq!(*status, 200, "{body}");
                assert!(
                    headers.contains("content-type: application/yaml"),
                    "{headers}"
                );
                assert!(body.contains("apiVersion"), "{body}");
            }
            _ => assert_eq!(*status, 200, "{path}: {body}"),
        }
        assert!(
            headers.contains("content-security-policy: default-src 'none'"),
            "{path} lacks the CSP: {headers}"
        );
        assert!(
            headers.contains("x-content-type-options: nosniff"),
            "{path}"
        );
        if html {
            // No tag of the hostile text survives as markup; only the escaped
            // forms do. (The pages carry no script of their own at all.)
            for raw_tag in ["<script", "<img", "<iframe", "<b>bold", "onclick=\""] {
                assert!(
                    !body.contains(raw_tag),
                    "{path} lets {raw_tag} through:\n{body}"
                );
            }
            assert!(!body.contains("href=\"javascript:"), "{path}: {body}");
        }
    }
    let product = &pages[3].1 .2;
    assert!(
        product.contains("&lt;script&gt;alert('title')&lt;/script&gt;"),
        "{product}"
    );
    assert!(product.contains("&lt;iframe&gt;"), "{product}");
    // A page from another host (DNS rebinding) is refused like the API.
    let foreign = tokio::task::spawn_blocking(move || {
        raw(
            addr,
            "GET /products HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            b"",
        )
    })
    .await
    .unwrap();
    assert_eq!(foreign.0, 403, "{}", foreign.2);
    a.shutdown().await.unwrap();
}

/// `sales/<name>@<version>` as a publisher would sign it (no files).
fn listed_manifest(name: &str, version: &str, key: &KeyPair) -> mesh_protocol::Manifest {
    mesh_protocol::Manifest {
        format: mesh_protocol::manifest::MANIFEST_FORMAT,
        id: format!("sales/{name}").parse().unwrap(),
        version: version.parse().unwrap(),
        status: Status::Active,
        title: format!("{name} ü \"quoted\""),
        description: String::new(),
        owner: mesh_protocol::manifest::Owner {
            team: "sales".into(),
            contact: "sales@example.com".into(),
        },
        tags: vec!["listed".into()],
        classification: Classification::Internal,
        consumers: vec![],
        schema: vec![],
        null_values: Default::default(),
        sla: mesh_protocol::manifest::Sla {
            freshness_secs: Some(3600),
            ..Default::default()
        },
        lineage: vec![],
        files: vec![],
        quality: None,
        created_at: 1_000,
        publisher: key.public(),
        contract: None,
        derivation: None,
        odps: None,
    }
}

/// `GET /v1/products` over a catalog of 2,400 versions (more than two of the
/// listing's pages of 1,000) is, byte for byte, the JSON of the whole listing,
/// in the listing's order (product id, then semantic version: 1.9.0 before
/// 1.10.0, which a byte order of the keys would invert), with each product's
/// newest version judged and the older ones not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_listing_streams_the_whole_listings_bytes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let Keys { sales, genesis, .. } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let probe = a.node.probe();
    for n in 0..1_200 {
        for version in ["1.10.0", "1.9.0"] {
            let m = listed_manifest(&format!("p{n}"), version, &sales);
            let signed = Signed::sign(&m, &sales);
            let ann = Announcement::of(
                &m,
                signed.hash(),
                vec![PeerId::random().to_string()],
                unix_now_ms(),
                sales.public(),
            );
            probe
                .learn(&Signed::sign(&ann, &sales).to_bytes(), &signed)
                .unwrap();
        }
    }
    let now = unix_now();
    let addr = a.api_addr;
    let body = tokio::task::spawn_blocking(move || {
        let mut body = Vec::new();
        ureq::get(&format!("http://{addr}/v1/products?at={now}"))
            .call()
            .unwrap()
            .into_reader()
            .read_to_end(&mut body)
            .unwrap();
        body
    })
    .await
    .unwrap();
    let listed = a.node.products(Default::default(), now).await.unwrap();
    assert_eq!(listed.len(), 2_400);
    assert!(
        body == serde_json::to_vec(&listed).unwrap(),
        "the same bytes"
    );
    let mut sorted = listed.clone();
    sorted.sort_by(|x, y| {
        (&x.announcement.product, &x.announcement.version)
            .cmp(&(&y.announcement.product, &y.announcement.version))
    });
    let order = |v: &[mesh_node::api::CatalogEntry]| -> Vec<String> {
        v.iter()
            .map(|e| format!("{}@{}", e.announcement.product, e.announcement.version))
            .collect()
    };
    assert_eq!(order(&listed), order(&sorted));
    assert_eq!(order(&listed)[..2], ["sales/p0@1.9.0", "sales/p0@1.10.0"]);
    for e in &listed {
        let newest = e.announcement.version.to_string() == "1.10.0";
        assert_eq!(e.health.is_some(), newest, "{}", e.announcement.version);
    }
}
