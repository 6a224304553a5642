//! A real node (in-process, on loopback) against a rogue libp2p peer that speaks the
//! mesh protocols with hostile intent: garbage, forged and oversized gossip, malformed
//! and oversized transfer frames, and a catalog page full of forgeries that claims
//! there is always more. The node must reject every forgery, stay responsive, and
//! keep accepting honest data. Every wait has a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
use mesh_node::codec::{read_frame, TRANSFER_PROTOCOL};
use mesh_node::governance::{install_genesis, unix_now, unix_now_ms};
use mesh_node::{NodeHome, RunOptions, ANNOUNCE_TOPIC, POLICY_TOPIC};
use mesh_protocol::announcement::{Summary, ANNOUNCEMENT_FORMAT};
use mesh_protocol::manifest::{Classification, Status};
use mesh_protocol::policy::{Council, DomainEntry, Settings, POLICY_FORMAT};
use mesh_protocol::wire::{self, Request, Response};
use mesh_protocol::{Announcement, Hash, KeyPair, Policy, Signed};
use tokio::sync::{mpsc, oneshot};

const DEADLINE: Duration = Duration::from_secs(30);

/// Writes raw request bytes as given; reads frames with the node's own reader.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io, wire::MAX_REQUEST_BYTES).await
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io, wire::MAX_RESPONSE_BYTES).await
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        raw: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&raw).await?;
        io.close().await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        raw: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&raw).await?;
        io.close().await
    }
}

#[derive(NetworkBehaviour)]
struct Rogue {
    gossipsub: gossipsub::Behaviour,
    transfer: request_response::Behaviour<RawCodec>,
}

enum Cmd {
    Publish(Vec<u8>, oneshot::Sender<Result<(), String>>),
    PublishPolicy(Vec<u8>, oneshot::Sender<Result<(), String>>),
    Raw(PeerId, Vec<u8>, oneshot::Sender<Result<Vec<u8>, String>>),
}

#[derive(Default)]
struct Seen {
    subscribed: AtomicBool,
    catalog_requests: AtomicUsize,
    policy_requests: AtomicUsize,
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn announcement(product: &str, key: &KeyPair, publisher: &KeyPair) -> Vec<u8> {
    let a = Announcement {
        format: ANNOUNCEMENT_FORMAT,
        product: product.parse().unwrap(),
        version: semver::Version::new(1, 0, 0),
        manifest: Hash::of(product.as_bytes()),
        summary: Summary {
            title: product.into(),
            status: Status::Active,
            classification: Classification::Public,
            tags: vec![],
            owner_team: "t".into(),
            size: 1,
            files: 1,
        },
        providers: vec![PeerId::random().to_string()],
        issued_at_ms: unix_now_ms(),
        publisher: publisher.public(),
    };
    // Signed by `key`, claiming `publisher`.
    Signed::sign(&a, key).to_bytes()
}

/// How the rogue answers each request: returns the framed response bytes.
type Responder = Arc<dyn Fn(Request) -> Vec<u8> + Send + Sync>;

/// Spawns the rogue peer, dialing `target`; `respond` answers inbound requests.
fn spawn_rogue(target: Multiaddr, respond: Responder, seen: Arc<Seen>) -> mpsc::Sender<Cmd> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .max_transmit_size(1024 * 1024)
                .build()
                .unwrap();
            Rogue {
                gossipsub: gossipsub::Behaviour::new(
                    MessageAuthenticity::Signed(key.clone()),
                    config,
                )
                .unwrap(),
                transfer: request_response::Behaviour::with_codec(
                    RawCodec,
                    [(TRANSFER_PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(10)),
                ),
            }
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new(ANNOUNCE_TOPIC))
        .unwrap();
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new(POLICY_TOPIC))
        .unwrap();
    swarm.dial(target).unwrap();
    let (tx, mut rx) = mpsc::channel::<Cmd>(16);
    tokio::spawn(async move {
        let mut pending = std::collections::HashMap::new();
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Cmd::Publish(data, reply)) => {
                        let r = swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(ANNOUNCE_TOPIC), data);
                        let _ = reply.send(r.map(|_| ()).map_err(|e| e.to_string()));
                    }
                    Some(Cmd::PublishPolicy(data, reply)) => {
                        let r = swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(POLICY_TOPIC), data);
                        let _ = reply.send(r.map(|_| ()).map_err(|e| e.to_string()));
                    }
                    Some(Cmd::Raw(peer, raw, reply)) => {
                        let id = swarm.behaviour_mut().transfer.send_request(&peer, raw);
                        pending.insert(id, reply);
                    }
                },
                event = swarm.select_next_some() => match event {
                    SwarmEvent::Behaviour(RogueEvent::Gossipsub(gossipsub::Event::Subscribed { .. })) => {
                        seen.subscribed.store(true, Ordering::SeqCst);
                    }
                    SwarmEvent::Behaviour(RogueEvent::Transfer(request_response::Event::Message { message, .. })) => match message {
                        request_response::Message::Request { request, channel, .. } => {
                            let page = match wire::decode_request(&request) {
                                Ok(r) => {
                                    match &r {
                                        Request::Policies { .. } => seen.policy_requests.fetch_add(1, Ordering::SeqCst),
                                        Request::Catalog { .. } => seen.catalog_requests.fetch_add(1, Ordering::SeqCst),
                                        _ => 0,
                                    };
                                    respond(r)
                                }
                                Err(_) => framed(&wire::encode_response(&Response::Invalid("?".into()))),
                            };
                            let _ = swarm.behaviour_mut().transfer.send_response(channel, page);
                        }
                        request_response::Message::Response { request_id, response } => {
                            if let Some(reply) = pending.remove(&request_id) {
                                let _ = reply.send(Ok(response));
                            }
                        }
                    },
                    SwarmEvent::Behaviour(RogueEvent::Transfer(request_response::Event::OutboundFailure { request_id, error, .. })) => {
                        if let Some(reply) = pending.remove(&request_id) {
                            let _ = reply.send(Err(error.to_string()));
                        }
                    }
                    _ => {}
                },
            }
        }
    });
    tx
}

/// A genesis policy (1-of-1 council, no rules) registering `domains`' publisher keys.
fn genesis(council: &KeyPair, domains: &[(&str, &KeyPair)]) -> Signed<Policy> {
    let domains = domains
        .iter()
        .map(|(name, key)| {
            let entry = DomainEntry {
                publisher_keys: [key.public()].into(),
                ..Default::default()
            };
            (name.parse().unwrap(), entry)
        })
        .collect();
    let policy = Policy {
        format: POLICY_FORMAT,
        version: 1,
        issued_at: unix_now(),
        expires_at: unix_now() + 86_400,
        council: Council {
            members: [council.public()].into(),
            threshold: 1,
        },
        domains,
        rules: String::new(),
        settings: Settings::default(),
    };
    Signed::sign(&policy, council)
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peer_cannot_forge_crash_or_stall_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let council = KeyPair::generate();
    let sales = KeyPair::generate();
    let finance = KeyPair::generate();
    let stranger = KeyPair::generate();
    let genesis = genesis(&council, &[("sales", &sales), ("finance", &finance)]);
    let running = start_node(dir.path(), "node", "finance", &finance, &genesis, vec![]).await;
    let node = running.node.clone();
    let status = node.status().await.unwrap();
    let target: Multiaddr = status.listen[0].parse().unwrap();
    let catalog = node.shared().catalog.clone();
    let knows = |p: &str| {
        catalog
            .list(&Default::default())
            .unwrap()
            .iter()
            .any(|e| e.announcement.product.to_string() == p)
    };

    // Catalog sync: a page of garbage, a forgery by an unregistered key, an
    // impersonation of the sales key, and one honest entry; it claims more pages
    // forever without advancing.
    let page = wire::encode_response(&Response::Catalog {
        entries: vec![
            vec![0xFF; 300],
            announcement("sales/forged-sync", &stranger, &stranger),
            announcement("sales/impersonated-sync", &stranger, &sales),
            announcement("sales/honest-sync", &sales, &sales),
        ],
        more: true,
    });
    // Policy sync: a v2 signed only by a stranger (not the council), claiming more.
    let mut forged_policy = genesis.value().unwrap();
    forged_policy.version = 2;
    forged_policy
        .domains
        .get_mut(&"sales".parse().unwrap())
        .unwrap()
        .publisher_keys
        .insert(stranger.public());
    let forged_policy = Signed::sign(&forged_policy, &stranger);
    let policy_page = wire::encode_response(&Response::Policies {
        entries: vec![vec![0xAA; 100], forged_policy.to_bytes()],
        more: true,
    });
    let seen = Arc::new(Seen::default());
    let (catalog_page, policy_page) = (framed(&page), framed(&policy_page));
    let respond: Responder = Arc::new(move |r| match r {
        Request::Policies { .. } => policy_page.clone(),
        Request::Catalog { .. } => catalog_page.clone(),
        _ => framed(&wire::encode_response(&Response::NotFound)),
    });
    let rogue = spawn_rogue(target, respond, seen.clone());
    wait_for("catalog sync to deliver the honest entry", || {
        knows("sales/honest-sync")
    })
    .await;
    assert_eq!(
        node.status().await.unwrap().policy_version,
        1,
        "a forged policy is never accepted"
    );
    assert!(!knows("sales/forged-sync"));
    assert!(!knows("sales/impersonated-sync"));

    // Gossip: garbage, forgery, impersonation, then an honest canary. Messages from
    // one peer arrive in order, so once the canary is in, the rest were judged.
    wait_for("the node's gossip subscription", || {
        seen.subscribed.load(Ordering::SeqCst)
    })
    .await;
    let publish = |data: Vec<u8>| {
        let rogue = rogue.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            rogue.send(Cmd::Publish(data, tx)).await.unwrap();
            rx.await.unwrap()
        }
    };
    // A forged policy on the policy topic is rejected too.
    {
        let (tx, rx) = oneshot::channel();
        rogue
            .send(Cmd::PublishPolicy(forged_policy.to_bytes(), tx))
            .await
            .unwrap();
        rx.await.unwrap().unwrap();
    }
    for data in [
        vec![0x00; 50],
        announcement("sales/forged-gossip", &stranger, &stranger),
        announcement("sales/impersonated-gossip", &stranger, &sales),
        announcement("sales/canary-gossip", &sales, &sales),
    ] {
        publish(data).await.unwrap();
    }
    wait_for("the honest gossip canary", || knows("sales/canary-gossip")).await;
    assert!(!knows("sales/forged-gossip"));
    assert!(!knows("sales/impersonated-gossip"));
    // An oversized gossip message (200 KiB, over the 64 KiB cap) is dropped.
    publish(vec![7u8; 200 * 1024]).await.unwrap();

    // Transfer: garbage body, an oversized length prefix, a truncated frame.
    let peer = node.peer_id();
    let raw = |bytes: Vec<u8>| {
        let rogue = rogue.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            rogue.send(Cmd::Raw(peer, bytes, tx)).await.unwrap();
            rx.await.unwrap()
        }
    };
    assert!(
        raw(framed(&[0xEE; 64])).await.is_err(),
        "garbage request gets no answer"
    );
    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.extend_from_slice(&[0u8; 1024]);
    assert!(raw(huge).await.is_err(), "oversized frame is refused");
    assert!(
        raw(vec![0, 0, 0, 100, 1, 2, 3]).await.is_err(),
        "truncated frame is refused"
    );
    let too_many = wire::encode_request(&Request::Catalog {
        after: None,
        limit: u16::MAX,
    });
    let body = raw(framed(&too_many)).await.expect("the node still serves");
    let Response::Catalog { entries, .. } = wire::decode_response(&body).unwrap() else {
        panic!("expected a catalog page")
    };
    assert_eq!(entries.len(), 2, "only the two honest entries are served");

    // The node is still responsive, and the endless catalog was not followed forever.
    assert_eq!(node.status().await.unwrap().catalog, 2);
    assert!(
        seen.catalog_requests.load(Ordering::SeqCst) <= 2,
        "a non-advancing cursor stops the sync"
    );
    assert_eq!(
        seen.policy_requests.load(Ordering::SeqCst),
        2,
        "a policy page whose versions do not advance is not followed"
    );
    assert_eq!(node.status().await.unwrap().policy_version, 1);
    running.shutdown().await.unwrap();
}

/// Starts an in-process node for `domain` with `key`, trusting `genesis`.
async fn start_node(
    dir: &std::path::Path,
    name: &str,
    domain: &str,
    key: &KeyPair,
    genesis: &Signed<Policy>,
    bootstrap: Vec<String>,
) -> mesh_node::RunningNode {
    let home = NodeHome::new(dir.join(name));
    home.create(
        &domain.parse().unwrap(),
        Some(KeyPair::from_secret(key.secret_bytes())),
    )
    .unwrap();
    install_genesis(
        &mesh_storage::SledStore::open(&home.db_path()).unwrap(),
        genesis,
        unix_now(),
    )
    .unwrap();
    mesh_node::start(
        home,
        RunOptions {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            bootstrap,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_serving_corrupt_chunks_is_banned_and_the_fetch_completes_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let council = KeyPair::generate();
    let (sales, finance) = (KeyPair::generate(), KeyPair::generate());
    let genesis = genesis(&council, &[("sales", &sales), ("finance", &finance)]);
    // A publishes; B fetches it and so becomes a second honest provider.
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let b = start_node(
        dir.path(),
        "b",
        "finance",
        &finance,
        &genesis,
        vec![a_addr.clone()],
    )
    .await;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..8_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(data.join("big.bin"), &bytes).unwrap();
    let toml = "id = \"sales/big\"\nversion = \"1.0.0\"\ntitle = \"Big\"\n[owner]\nteam = \"t\"\n";
    let published = a.node.publish(data.clone(), toml.into()).await.unwrap();
    let target: mesh_protocol::ProductRef = "sales/big".parse().unwrap();
    let bn = b.node.clone();
    wait_for("B to learn the product", || {
        bn.shared().catalog.len().unwrap_or(0) == 1
    })
    .await;
    b.node.fetch(&target, None, None).await.unwrap();

    // The rogue serves the genuine manifest, but every chunk it sends is garbage of
    // the right length.
    let hash: Hash = published.manifest.parse().unwrap();
    let (signed, manifest) = a.node.shared().catalog.manifest(&hash).unwrap().unwrap();
    let lens: std::collections::HashMap<Hash, u32> = manifest
        .files
        .iter()
        .flat_map(|f| f.chunks.iter().map(|c| (c.hash, c.len)))
        .collect();
    let manifest_bytes = signed.to_bytes();
    let rogue_lens = lens.clone();
    let respond: Responder = Arc::new(move |r| {
        framed(&wire::encode_response(&match r {
            Request::Manifest(_) => Response::Manifest(manifest_bytes.clone()),
            Request::Chunk { chunk, .. } => Response::Chunk(vec![
                0x5A;
                rogue_lens.get(&chunk).copied().unwrap_or(1)
                    as usize
            ]),
            Request::Policies { .. } => Response::Policies {
                entries: vec![],
                more: false,
            },
            Request::Catalog { .. } => Response::Catalog {
                entries: vec![],
                more: false,
            },
        }))
    });

    // C knows A and B; the rogue dials C.
    let b_addr = b.node.status().await.unwrap().listen[0].clone();
    let c = start_node(
        dir.path(),
        "c",
        "finance",
        &finance,
        &genesis,
        vec![a_addr, b_addr],
    )
    .await;
    let c_addr: Multiaddr = c.node.status().await.unwrap().listen[0].parse().unwrap();
    let _rogue = spawn_rogue(c_addr, respond, Arc::new(Seen::default()));
    let cn = c.node.clone();
    wait_for("C to learn the product", || {
        cn.shared().catalog.len().unwrap_or(0) == 1
    })
    .await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while c.node.network().peers().await.unwrap().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "C never connected to A, B and the rogue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let out = dir.path().join("out");
    let outcome = c
        .node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        bytes,
        "byte-identical despite the rogue"
    );
    let honest = [a.node.peer_id().to_string(), b.node.peer_id().to_string()];
    assert_eq!(
        outcome.banned.len(),
        1,
        "the corrupting provider is banned: {outcome:?}"
    );
    assert!(!honest.contains(&outcome.banned[0]));
    assert!(
        outcome.providers.iter().all(|p| honest.contains(p)),
        "{outcome:?}"
    );
    let unique: u64 = lens.values().map(|l| u64::from(*l)).sum();
    assert_eq!(
        outcome.transferred_bytes, unique,
        "only verified bytes count"
    );
    for n in [c, b, a] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_provider_is_retried_not_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let council = KeyPair::generate();
    let (sales, finance) = (KeyPair::generate(), KeyPair::generate());
    let genesis = genesis(&council, &[("sales", &sales), ("finance", &finance)]);
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let bytes: Vec<u8> = (0..3_000_000u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9) >> 7) as u8 ^ (i >> 12) as u8)
        .collect();
    std::fs::write(data.join("f.bin"), &bytes).unwrap();
    let toml = "id = \"sales/f\"\nversion = \"1.0.0\"\ntitle = \"F\"\n[owner]\nteam = \"t\"\n";
    let published = a.node.publish(data, toml.into()).await.unwrap();

    // The only provider C can reach: answers Busy to the first request for each chunk,
    // then serves the genuine bytes (read from A's store).
    let hash: Hash = published.manifest.parse().unwrap();
    let (signed, _) = a.node.shared().catalog.manifest(&hash).unwrap().unwrap();
    let (catalog_page, _) = a.node.shared().catalog.page(None, 16).unwrap();
    let chunks = a.node.shared().chunks.clone();
    let manifest_bytes = signed.to_bytes();
    let asked = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let busy_answers = Arc::new(AtomicUsize::new(0));
    let busy = busy_answers.clone();
    let respond: Responder = Arc::new(move |r| {
        framed(&wire::encode_response(&match r {
            Request::Manifest(_) => Response::Manifest(manifest_bytes.clone()),
            Request::Chunk { chunk, .. } => {
                if asked.lock().unwrap().insert(chunk) {
                    busy.fetch_add(1, Ordering::SeqCst);
                    Response::Busy
                } else {
                    Response::Chunk(chunks.get_verified(&chunk, 4 << 20).unwrap())
                }
            }
            Request::Policies { .. } => Response::Policies {
                entries: vec![],
                more: false,
            },
            Request::Catalog { .. } => Response::Catalog {
                entries: catalog_page.clone(),
                more: false,
            },
        }))
    });
    let c = start_node(dir.path(), "c", "finance", &finance, &genesis, vec![]).await;
    let c_addr: Multiaddr = c.node.status().await.unwrap().listen[0].parse().unwrap();
    let _rogue = spawn_rogue(c_addr, respond, Arc::new(Seen::default()));
    let cn = c.node.clone();
    wait_for("C to learn the product", || {
        cn.shared().catalog.len().unwrap_or(0) == 1
    })
    .await;

    let out = dir.path().join("out");
    let target: mesh_protocol::ProductRef = "sales/f".parse().unwrap();
    let outcome = c
        .node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(out.join("f.bin")).unwrap(), bytes);
    assert!(
        busy_answers.load(Ordering::SeqCst) >= published.chunks.min(2),
        "the provider was busy"
    );
    assert_eq!(outcome.banned.len(), 0, "busy is not misbehaviour");
    for n in [c, a] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_provider_gets_less_work() {
    let dir = tempfile::tempdir().unwrap();
    let council = KeyPair::generate();
    let (sales, finance) = (KeyPair::generate(), KeyPair::generate());
    let genesis = genesis(&council, &[("sales", &sales), ("finance", &finance)]);
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let bytes: Vec<u8> = (0..40_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(data.join("f.bin"), &bytes).unwrap();
    let toml = "id = \"sales/f\"\nversion = \"1.0.0\"\ntitle = \"F\"\n[owner]\nteam = \"t\"\n";
    let published = a.node.publish(data, toml.into()).await.unwrap();

    // A second provider with the genuine chunks, but 40 ms slow on every chunk.
    let hash: Hash = published.manifest.parse().unwrap();
    let (signed, _) = a.node.shared().catalog.manifest(&hash).unwrap().unwrap();
    let chunks = a.node.shared().chunks.clone();
    let manifest_bytes = signed.to_bytes();
    let respond: Responder = Arc::new(move |r| {
        framed(&wire::encode_response(&match r {
            Request::Manifest(_) => Response::Manifest(manifest_bytes.clone()),
            Request::Chunk { chunk, .. } => {
                std::thread::sleep(Duration::from_millis(40));
                Response::Chunk(chunks.get_verified(&chunk, 4 << 20).unwrap())
            }
            Request::Policies { .. } => Response::Policies {
                entries: vec![],
                more: false,
            },
            Request::Catalog { .. } => Response::Catalog {
                entries: vec![],
                more: false,
            },
        }))
    });
    let c = start_node(dir.path(), "c", "finance", &finance, &genesis, vec![a_addr]).await;
    let c_addr: Multiaddr = c.node.status().await.unwrap().listen[0].parse().unwrap();
    let _slow = spawn_rogue(c_addr, respond, Arc::new(Seen::default()));
    let cn = c.node.clone();
    wait_for("C to learn the product", || {
        cn.shared().catalog.len().unwrap_or(0) == 1
    })
    .await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while c.node.network().peers().await.unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "C never connected to both providers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let target: mesh_protocol::ProductRef = "sales/f".parse().unwrap();
    let outcome = c
        .node
        .fetch(&target, Some(dir.path().join("out")), None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("out/f.bin")).unwrap(), bytes);
    let fast = outcome
        .served
        .get(&a.node.peer_id().to_string())
        .copied()
        .unwrap_or(0);
    let slow: u64 = outcome.served.values().sum::<u64>() - fast;
    assert!(
        fast > 2 * slow,
        "the fast provider served more: fast {fast}, slow {slow}"
    );
    for n in [c, a] {
        n.shutdown().await.unwrap();
    }
}
