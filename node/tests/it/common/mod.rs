//! Shared by the in-process node tests: a rogue libp2p peer that speaks the mesh
//! protocols as the test tells it to, genesis and node setup, and deadline waits.

#![allow(dead_code, unreachable_pub)] // each test file uses its own subset

pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
pub(crate) use std::sync::Arc;
pub(crate) use std::time::Duration;

pub(crate) use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
pub(crate) use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
pub(crate) use libp2p::request_response::{self, ProtocolSupport};
pub(crate) use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
pub(crate) use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
pub(crate) use mesh_node::testing::{read_frame, TRANSFER_PROTOCOL};
pub(crate) use mesh_node::{install_genesis, unix_now, unix_now_ms};
pub(crate) use mesh_node::{NodeHome, RunOptions, ANNOUNCE_TOPIC, POLICY_TOPIC, USAGE_TOPIC};
pub(crate) use mesh_protocol::announcement::{Summary, ANNOUNCEMENT_FORMAT};
pub(crate) use mesh_protocol::manifest::{Classification, Status};
pub(crate) use mesh_protocol::policy::{Council, DomainEntry};
pub(crate) use mesh_protocol::wire::{self, Request, Response};
pub(crate) use mesh_protocol::{Announcement, Hash, KeyPair, Policy, Signed};
pub(crate) use tokio::sync::{mpsc, oneshot};

pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// Writes raw request bytes as given; reads frames with the node's own reader, or,
/// when `deaf`, never reads a response at all.
#[derive(Clone, Default)]
pub(crate) struct RawCodec {
    deaf: bool,
}

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
        if self.deaf {
            std::future::pending::<()>().await;
        }
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
pub(crate) struct Rogue {
    gossipsub: gossipsub::Behaviour,
    transfer: request_response::Behaviour<RawCodec>,
}

pub(crate) enum Cmd {
    Publish(Vec<u8>, oneshot::Sender<Result<(), String>>),
    PublishPolicy(Vec<u8>, oneshot::Sender<Result<(), String>>),
    PublishUsage(Vec<u8>, oneshot::Sender<Result<(), String>>),
    /// Dial the target again, even though a connection exists.
    DialAgain,
    Raw(PeerId, Vec<u8>, oneshot::Sender<Result<Vec<u8>, String>>),
}

#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) subscribed: AtomicBool,
    pub(crate) catalog_requests: AtomicUsize,
    pub(crate) policy_requests: AtomicUsize,
    /// Connections to the target opened, and closed, so far.
    pub(crate) opened: AtomicUsize,
    pub(crate) closed: AtomicUsize,
    /// Dials that failed or connections the target refused.
    pub(crate) refused: AtomicUsize,
}

pub(crate) fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

pub(crate) fn announcement(product: &str, key: &KeyPair, publisher: &KeyPair) -> Vec<u8> {
    announcement_at(product, key, publisher, unix_now_ms())
}

/// Like [`announcement`], issued at `issued_at_ms`.
pub(crate) fn announcement_at(
    product: &str,
    key: &KeyPair,
    publisher: &KeyPair,
    issued_at_ms: u64,
) -> Vec<u8> {
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
        issued_at_ms,
        publisher: publisher.public(),
    };
    // Signed by `key`, claiming `publisher`.
    Signed::sign(&a, key).to_bytes()
}

/// How the rogue answers each request: returns the framed response bytes.
pub(crate) type Responder = Arc<dyn Fn(Request) -> Vec<u8> + Send + Sync>;

/// Spawns the rogue peer, dialing `target`; `respond` answers inbound requests.
pub(crate) fn spawn_rogue(
    target: Multiaddr,
    respond: Responder,
    seen: Arc<Seen>,
) -> mpsc::Sender<Cmd> {
    spawn_rogue_with(target, respond, seen, false)
}

/// A rogue dialling `addr` that answers every request `NotFound`; with what it saw.
pub(crate) fn spawn_idle_rogue(addr: &str, deaf: bool) -> (mpsc::Sender<Cmd>, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let nothing: Responder = Arc::new(|_| framed(&wire::encode_response(&Response::NotFound)));
    let rogue = spawn_rogue_with(addr.parse().unwrap(), nothing, seen.clone(), deaf);
    (rogue, seen)
}

/// Like [`spawn_rogue`]; a `deaf` rogue sends requests and never reads a response
/// (its own request timeout is two minutes, so it holds the streams open).
pub(crate) fn spawn_rogue_with(
    target: Multiaddr,
    respond: Responder,
    seen: Arc<Seen>,
    deaf: bool,
) -> mpsc::Sender<Cmd> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_key| {
            // Unsigned envelopes, as nodes send them (the payloads carry the
            // signatures), so the rogue's gossip reaches the node's validator.
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Anonymous)
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
                })
                .max_transmit_size(1024 * 1024)
                .build()
                .unwrap();
            Rogue {
                gossipsub: gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)
                    .unwrap(),
                transfer: request_response::Behaviour::with_codec(
                    RawCodec { deaf },
                    [(TRANSFER_PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(if deaf { 120 } else { 10 })),
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
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new(USAGE_TOPIC))
        .unwrap();
    swarm.dial(target.clone()).unwrap();
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
                    Some(Cmd::PublishUsage(data, reply)) => {
                        let r = swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(USAGE_TOPIC), data);
                        let _ = reply.send(r.map(|_| ()).map_err(|e| e.to_string()));
                    }
                    Some(Cmd::DialAgain) => {
                        let opts = libp2p::swarm::dial_opts::DialOpts::unknown_peer_id()
                            .address(target.clone())
                            .build();
                        if swarm.dial(opts).is_err() {
                            seen.refused.fetch_add(1, Ordering::SeqCst);
                        }
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
                    SwarmEvent::ConnectionEstablished { .. } => {
                        seen.opened.fetch_add(1, Ordering::SeqCst);
                    }
                    SwarmEvent::ConnectionClosed { .. } => {
                        seen.closed.fetch_add(1, Ordering::SeqCst);
                    }
                    SwarmEvent::OutgoingConnectionError { .. } => {
                        seen.refused.fetch_add(1, Ordering::SeqCst);
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

/// A 1-of-1 council and the publisher keys of two domains, sales and finance,
/// registered by the genesis policy.
pub(crate) struct Keys {
    pub(crate) council: KeyPair,
    pub(crate) sales: KeyPair,
    pub(crate) finance: KeyPair,
    pub(crate) genesis: Signed<Policy>,
}

impl Keys {
    pub(crate) fn new() -> Self {
        let (council, sales, finance) = (
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
        );
        let genesis = genesis(&council, &[("sales", &sales), ("finance", &finance)]);
        Keys {
            council,
            sales,
            finance,
            genesis,
        }
    }
}

/// A genesis policy (1-of-1 council, no rules) registering `domains`' publisher keys.
pub(crate) fn genesis(council: &KeyPair, domains: &[(&str, &KeyPair)]) -> Signed<Policy> {
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
    let council_of_one = Council {
        members: [council.public()].into(),
        threshold: 1,
    };
    let policy = Policy::genesis(council_of_one, domains, unix_now(), 86_400).unwrap();
    Signed::sign(&policy, council)
}

pub(crate) async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    wait_for_async(what, || std::future::ready(check())).await;
}

/// Polls an async `check` every 50 ms until it holds; panics after [`DEADLINE`].
pub(crate) async fn wait_for_async<F: std::future::Future<Output = bool>>(
    what: &str,
    check: impl FnMut() -> F,
) {
    wait_for_async_within(what, DEADLINE, check).await;
}

/// Like [`wait_for_async`], with its own deadline (for conditions that wait on a
/// protocol timeout).
pub(crate) async fn wait_for_async_within<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a scripted provider answers: `manifest` for manifests, `chunk(hash)` for
/// each chunk asked (singly or in a batch), `catalog` and no policies or records for
/// sync.
pub(crate) fn provider_answer(
    r: Request,
    manifest: &[u8],
    catalog: &[Vec<u8>],
    chunk: impl Fn(&Hash) -> Vec<u8>,
) -> Vec<u8> {
    framed(&wire::encode_response(&match r {
        Request::Manifest(_) => Response::Manifest(manifest.to_vec()),
        Request::Chunk { chunk: c, .. } => Response::Chunk(chunk(&c)),
        Request::Chunks { chunks, .. } => {
            Response::Chunks(chunks.iter().map(|c| wire::ChunkData(chunk(c))).collect())
        }
        Request::Policies { .. } => Response::Policies {
            entries: vec![],
            more: false,
        },
        Request::Catalog { .. } => Response::Catalog {
            entries: catalog.to_vec(),
            more: false,
        },
        Request::Records { .. } => Response::Records {
            entries: vec![],
            more: false,
        },
        Request::Digest => Response::Busy,
    }))
}

/// Starts an in-process node for `domain` with `key`, trusting `genesis`.
pub(crate) async fn start_node(
    dir: &std::path::Path,
    name: &str,
    domain: &str,
    key: &KeyPair,
    genesis: &Signed<Policy>,
    bootstrap: Vec<String>,
) -> mesh_node::RunningNode {
    start_node_with(dir, name, domain, key, genesis, bootstrap, |_| {}).await
}

/// Like [`start_node`], with `configure` editing the node's config.toml first.
pub(crate) async fn start_node_with(
    dir: &std::path::Path,
    name: &str,
    domain: &str,
    key: &KeyPair,
    genesis: &Signed<Policy>,
    bootstrap: Vec<String>,
    configure: impl FnOnce(&mut mesh_node::home::config::NodeConfig),
) -> mesh_node::RunningNode {
    let home = NodeHome::new(dir.join(name));
    home.create(
        &domain.parse().unwrap(),
        Some(KeyPair::from_secret(key.secret_bytes())),
    )
    .unwrap();
    let mut config = home.load_config().unwrap();
    configure(&mut config);
    std::fs::write(home.config_path(), config.to_toml().unwrap()).unwrap();
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

/// Starts consumer node "c" (domain finance) with `bootstrap`, has a scripted peer
/// answering with `respond` dial it, and waits until C lists one product and has at
/// least `min_peers` peers. Keep the returned sender alive as long as the peer should.
pub(crate) async fn start_consumer(
    dir: &std::path::Path,
    key: &KeyPair,
    genesis: &Signed<Policy>,
    bootstrap: Vec<String>,
    respond: Responder,
    min_peers: usize,
) -> (mesh_node::RunningNode, mpsc::Sender<Cmd>) {
    let c = start_node(dir, "c", "finance", key, genesis, bootstrap).await;
    let addr: Multiaddr = c.node.status().await.unwrap().listen[0].parse().unwrap();
    let peer = spawn_rogue(addr, respond, Arc::new(Seen::default()));
    let node = c.node.clone();
    wait_for("C to learn the product", || node.probe().catalog_len() == 1).await;
    let net = c.node.clone();
    wait_for_async(&format!("C to reach {min_peers} peers"), || {
        let net = net.clone();
        async move { net.peers().await.is_ok_and(|p| p.len() >= min_peers) }
    })
    .await;
    (c, peer)
}

/// Starts the node whose home is `home` again (after a shutdown or a crash),
/// listening on a fresh loopback port.
pub(crate) async fn restart_node(
    home: impl Into<std::path::PathBuf>,
) -> Result<mesh_node::RunningNode, mesh_node::NodeError> {
    mesh_node::start(
        NodeHome::new(home),
        RunOptions {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            ..Default::default()
        },
    )
    .await
}

/// Node A (sales) that published `toml` from `data`, and node B (finance),
/// bootstrapped to A, once it has learned of the product.
pub(crate) async fn publisher_and_consumer(
    dir: &std::path::Path,
    data: std::path::PathBuf,
    toml: &str,
) -> (mesh_node::RunningNode, mesh_node::RunningNode) {
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    let a = start_node(dir, "a", "sales", &sales, &genesis, vec![]).await;
    a.node.publish(data, toml.into()).await.unwrap();
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let b = start_node(dir, "b", "finance", &finance, &genesis, vec![a_addr]).await;
    let probe = b.node.probe();
    wait_for("B to learn the product", || probe.catalog_len() == 1).await;
    (a, b)
}

/// The draft of `sales/big@1.0.0`, the product most node tests publish.
pub(crate) const BIG_TOML: &str =
    "id = \"sales/big\"\nversion = \"1.0.0\"\ntitle = \"Big\"\n[owner]\nteam = \"t\"\n";

/// Writes `bytes` as `DIR/data/NAME`; returns `DIR/data`, ready to publish.
pub(crate) fn data_dir(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join(name), bytes).unwrap();
    data
}

/// `n` pseudo-random bytes that FastCDC will not deduplicate within the file.
pub(crate) fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    mesh_testkit::SeededRng::new(seed).bytes(n)
}
