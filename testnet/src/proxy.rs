//! A TCP fault proxy for testnet links, needing no root: every link from node A to
//! node B is its own loopback listener that forwards to B, so each direction of each
//! link can be blackholed (partition), delayed with jitter, made lossy, or throttled
//! while the mesh runs.
//!
//! TCP never loses bytes, so loss is modelled as what TCP makes of it: a lost segment
//! holds up everything behind it for a retransmission timeout (200 ms, Linux's
//! minimum RTO). A blackhole closes the link's connections and refuses new ones, which
//! is what a long partition ends in once keepalives give up; nodes redial when the
//! link heals. Bytes keep their order; a bounded queue per direction gives
//! backpressure.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// What a link does to the bytes crossing it, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Fault {
    /// Close connections and refuse new ones.
    pub blackhole: bool,
    /// Added one-way delay.
    pub delay: Duration,
    /// Uniform jitter added on top of `delay` (bytes still arrive in order).
    pub jitter: Duration,
    /// Probability that a forwarded segment is lost and retransmitted 200 ms later.
    pub loss: f64,
    /// Bytes per second each way; 0 is unlimited.
    pub rate: u64,
    /// An HTTP status (such as 503) every request on a new connection is answered
    /// with, then the connection closed, instead of forwarding; open connections
    /// are closed. 0 forwards (for links to HTTP servers such as an S3 store).
    pub http_status: u16,
}

impl Fault {
    /// Whether connections are cut (a blackhole, or answered by the proxy).
    fn cuts(&self) -> bool {
        self.blackhole || self.http_status != 0
    }
}

/// The retransmission delay a lost segment costs.
const RTO: Duration = Duration::from_millis(200);
/// Segments queued per direction before reading stops (each at most 64 KiB).
const QUEUE: usize = 64;

/// The proxy: one listener per link, all run on the proxy's own runtime.
#[derive(Debug)]
pub struct FaultProxy {
    runtime: tokio::runtime::Runtime,
    links: Mutex<BTreeMap<(usize, usize), Link>>,
}

#[derive(Debug)]
struct Link {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bytes read from either side so far.
    carried: Arc<AtomicU64>,
}

impl FaultProxy {
    /// Starts a proxy with no links.
    pub fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .context("starting the fault proxy runtime")?;
        Ok(FaultProxy {
            runtime,
            links: Mutex::new(BTreeMap::new()),
        })
    }

    fn links(&self) -> std::sync::MutexGuard<'_, BTreeMap<(usize, usize), Link>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the link from node `from` to node `to`, whose node listens at `target`;
    /// returns the address `from` should dial. Opening an existing link returns it.
    pub fn link(&self, from: usize, to: usize, target: SocketAddr) -> anyhow::Result<SocketAddr> {
        if let Some(l) = self.links().get(&(from, to)) {
            return Ok(l.addr);
        }
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding a proxy listener")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (fault, rx) = watch::channel(Fault::default());
        let _guard = self.runtime.enter();
        let listener = TcpListener::from_std(std_listener)?;
        let carried = Arc::new(AtomicU64::new(0));
        self.runtime
            .spawn(serve(listener, target, rx, carried.clone()));
        let link = Link {
            addr,
            fault,
            carried,
        };
        self.links().insert((from, to), link);
        Ok(addr)
    }

    /// The bytes the link `from` -> `to` has carried so far, both directions.
    pub fn carried(&self, from: usize, to: usize) -> u64 {
        self.links()
            .get(&(from, to))
            .map_or(0, |l| l.carried.load(Ordering::Relaxed))
    }

    /// Every link, as (from, to).
    pub fn link_ids(&self) -> Vec<(usize, usize)> {
        self.links().keys().copied().collect()
    }

    /// Sets the fault of the link `from` -> `to` (both directions of its connections).
    pub fn set(&self, from: usize, to: usize, fault: Fault) {
        if let Some(l) = self.links().get(&(from, to)) {
            l.fault.send_replace(fault);
        }
    }

    /// Sets the same fault on every link.
    pub fn set_all(&self, fault: Fault) {
        for l in self.links().values() {
            l.fault.send_replace(fault);
        }
    }

    /// Blackholes every link between `side` and the other nodes.
    pub fn partition(&self, side: &[usize]) {
        for ((from, to), l) in self.links().iter() {
            if side.contains(from) != side.contains(to) {
                l.fault.send_replace(Fault {
                    blackhole: true,
                    ..Fault::default()
                });
            }
        }
    }

    /// Clears every fault.
    pub fn heal(&self) {
        self.set_all(Fault::default());
    }
}

async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    fault: watch::Receiver<Fault>,
    carried: Arc<AtomicU64>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        let f = *fault.borrow();
        if f.blackhole {
            drop(inbound);
            continue;
        }
        if f.http_status != 0 {
            tokio::spawn(answer(inbound, f.http_status));
            continue;
        }
        let (fault, carried) = (fault.clone(), carried.clone());
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            let seed = u64::from(target.port()) ^ 0x9E37_79B9_7F4A_7C15;
            tokio::select! {
                _ = pump(ri, wo, fault.clone(), seed, &carried) => {}
                _ = pump(ro, wi, fault, seed.rotate_left(17), &carried) => {}
            }
        });
    }
}

/// Reads a request's head and answers it with `status` and no body, then closes.
async fn answer(mut inbound: TcpStream, status: u16) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match tokio::time::timeout(Duration::from_secs(5), inbound.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let reply = format!(
        "HTTP/1.1 {status} Injected Fault\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = inbound.write_all(reply.as_bytes()).await;
    let _ = inbound.shutdown().await;
}

/// Forwards one direction until either side closes or the link is blackholed.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
    seed: u64,
    carried: &AtomicU64,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let mut writer_fault = fault.clone();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if writer_fault.borrow_and_update().cuts() || to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    // Returns whether the link was blackholed (drop everything) or just closed
    // (deliver what is queued first).
    let reader = async move {
        let mut rng = mesh_testkit::SeededRng::new(seed);
        let mut last = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::select! {
                r = from.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => n,
                },
                changed = fault.changed() => {
                    if changed.is_err() || fault.borrow().cuts() {
                        return true;
                    }
                    continue;
                }
            };
            carried.fetch_add(n as u64, Ordering::Relaxed);
            let f = *fault.borrow();
            if f.cuts() {
                return true;
            }
            let mut at = Instant::now() + f.delay;
            if !f.jitter.is_zero() {
                at += f.jitter.mul_f64(rng.unit());
            }
            if f.loss > 0.0 && rng.unit() < f.loss {
                at += RTO;
            }
            if f.rate > 0 {
                // The segment leaves no sooner than the rate allows after the last.
                let spacing = Duration::from_secs_f64(n as f64 / f.rate as f64);
                at = at.max(last + spacing);
            }
            at = at.max(last);
            last = at;
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                return false;
            }
        }
    };
    if reader.await {
        writer.abort();
    } else {
        let _ = writer.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn echo_server() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn round_trip(addr: SocketAddr) -> std::io::Result<Duration> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let t = std::time::Instant::now();
        s.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf)?;
        assert_eq!(&buf, b"ping");
        Ok(t.elapsed())
    }

    #[test]
    fn forwards_delays_blackholes_and_heals() {
        let proxy = FaultProxy::new().unwrap();
        let addr = proxy.link(0, 1, echo_server()).unwrap();
        round_trip(addr).unwrap();

        // 100 ms each way: a round trip takes at least 200 ms (a lower bound only).
        proxy.set(
            0,
            1,
            Fault {
                delay: Duration::from_millis(100),
                ..Fault::default()
            },
        );
        assert!(round_trip(addr).unwrap() >= Duration::from_millis(200));

        // A blackhole closes the link's open connections and refuses new ones.
        let mut open = std::net::TcpStream::connect(addr).unwrap();
        open.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        open.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).unwrap();
        proxy.partition(&[0]);
        assert_eq!(
            open.read(&mut buf).unwrap_or(0),
            0,
            "closed by the blackhole"
        );
        assert!(round_trip(addr).is_err());
        proxy.heal();
        round_trip(addr).unwrap();
    }
}
