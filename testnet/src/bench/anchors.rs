//! The programs the transfer benchmark measures mesh against, run side by side on
//! the same file: nginx serving it to curl, sendme (iroh) sending it, and timing
//! any command.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Runs `cmd` to completion with its output discarded; how long it took.
pub(crate) fn timed(cmd: &mut Command) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(t.elapsed())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Serves `dir` with nginx on two free loopback ports, plain HTTP and HTTPS
/// (TLS 1.3 only, a self-signed certificate for 127.0.0.1 made with `openssl`),
/// one worker process; stopped when dropped.
pub(crate) struct Nginx {
    prefix: PathBuf,
    pub(crate) port: u16,
    pub(crate) tls_port: u16,
    /// The certificate, for `curl --cacert`.
    pub(crate) cert: PathBuf,
}

impl Nginx {
    pub(crate) fn start(dir: &Path, work: &Path) -> anyhow::Result<Self> {
        let (port, tls_port) = (free_port()?, free_port()?);
        let prefix = work.join("nginx");
        std::fs::create_dir_all(prefix.join("logs"))?;
        let (cert, key) = (prefix.join("cert.pem"), prefix.join("key.pem"));
        timed(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
                .args(["-subj", "/CN=127.0.0.1", "-addext"])
                .arg("subjectAltName=IP:127.0.0.1")
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        )
        .context("making a certificate with openssl (apt-get install openssl)")?;
        let conf = format!(
            "worker_processes 1; daemon on; pid {p}/nginx.pid; error_log {p}/logs/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on;\n\
               client_body_temp_path {p}/tmp; proxy_temp_path {p}/tmp; fastcgi_temp_path {p}/tmp;\n\
               uwsgi_temp_path {p}/tmp; scgi_temp_path {p}/tmp;\n\
               server {{ listen 127.0.0.1:{port}; root {root}; }}\n\
               server {{ listen 127.0.0.1:{tls_port} ssl; root {root};\n\
                 ssl_protocols TLSv1.3; ssl_certificate {cert}; ssl_certificate_key {key}; }} }}\n",
            p = prefix.display(),
            root = dir.display(),
            cert = cert.display(),
            key = key.display(),
        );
        std::fs::write(prefix.join("nginx.conf"), conf)?;
        timed(
            Command::new("nginx")
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(prefix.join("nginx.conf")),
        )
        .context("starting nginx (install it, or run bench/transfer which does)")?;
        Ok(Nginx {
            prefix,
            port,
            tls_port,
            cert,
        })
    }

    /// CPU seconds nginx's worker processes have used so far.
    pub(crate) fn worker_cpu_secs(&self) -> f64 {
        let master = std::fs::read_to_string(self.prefix.join("nginx.pid")).unwrap_or_default();
        let master = master.trim();
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default();
        children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .map(super::measure::cpu_secs)
            .sum()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx")
            .arg("-p")
            .arg(&self.prefix)
            .arg("-c")
            .arg(self.prefix.join("nginx.conf"))
            .args(["-s", "stop"])
            .status();
    }
}

/// `sendme send` of one file on loopback (relays off), running until dropped.
pub(crate) struct Sendme {
    child: Child,
    dir: PathBuf,
    ticket: String,
    /// From start to the ticket: sendme imports (hashes) the file first.
    pub(crate) import: Duration,
}

impl Sendme {
    /// Starts sending `file`, working in `work/sendme-send`; waits for its ticket.
    pub(crate) fn send(file: &Path, work: &Path, deadline: Duration) -> anyhow::Result<Self> {
        let dir = work.join("sendme-send");
        std::fs::create_dir_all(&dir)?;
        let started = Instant::now();
        let mut child = Command::new("sendme")
            .args(["send", "--relay", "disabled", "--ticket-type", "addresses"])
            .args(["--no-progress", "--magic-ipv4-addr", "127.0.0.1:0"])
            .arg(file)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("running sendme (cargo install --locked sendme@0.37.1, or run bench/transfer which does)")?;
        let stdout = child.stdout.take().context("sendme's stdout")?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let ticket = std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("sendme receive ")
                        .map(|t| t.trim().to_owned())
                });
            let _ = tx.send(ticket);
        });
        let mut me = Sendme {
            child,
            dir,
            ticket: String::new(),
            import: Duration::ZERO,
        };
        match rx.recv_timeout(deadline) {
            Ok(Some(ticket)) => {
                me.import = started.elapsed();
                me.ticket = ticket;
                Ok(me)
            }
            Ok(None) => bail!("sendme send exited without printing a ticket"),
            Err(_) => bail!("sendme send printed no ticket within {deadline:?}"),
        }
    }

    /// The sending process's id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Receives the file into `into` (created, removed afterwards); how long it took.
    pub(crate) fn receive(&self, into: &Path) -> anyhow::Result<Duration> {
        std::fs::create_dir_all(into)?;
        let took = timed(
            Command::new("sendme")
                .args(["receive", "--relay", "disabled", "--no-progress"])
                .arg(&self.ticket)
                .current_dir(into),
        );
        let _ = std::fs::remove_dir_all(into);
        took
    }
}

impl Drop for Sendme {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
