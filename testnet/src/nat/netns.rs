//! Network namespaces, veth links, bridges and nftables NAT, made with Debian's
//! `ip` (iproute2) and `nft`, and torn down on drop: every namespace this harness
//! made is deleted (with the processes in it killed first by their owners), and the
//! per-namespace `/etc/netns/NAME/` files removed, even when a test fails.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

/// Runs `ip ARGS`, failing with its stderr.
pub(crate) fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (install iproute2 and nftables)"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether the tools this needs are installed.
pub fn missing_tools() -> Vec<&'static str> {
    ["ip", "nft", "dnsmasq"]
        .into_iter()
        .filter(|t| {
            !["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .any(|d| std::path::Path::new(d).join(t).exists())
        })
        .collect()
}

/// How a site's router translates addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Endpoint-independent mapping (Linux masquerade keeps the source port), with
    /// address-and-port-dependent filtering: a "port-restricted cone". Hole punching
    /// works through it.
    Cone,
    /// Address-and-port-dependent mapping (`masquerade random`: a new random port for
    /// every destination): a "symmetric" NAT. Hole punching fails; only a relay helps.
    Symmetric,
}

/// The namespaces of one lab, deleted on drop.
#[derive(Debug)]
pub struct Namespaces {
    prefix: String,
    made: Vec<String>,
    etc: Vec<PathBuf>,
}

impl Namespaces {
    /// A set whose namespaces are named `PREFIX-name`; `prefix` should be unique to
    /// this process (the pid) so parallel runs never meet.
    pub fn new(prefix: &str) -> Self {
        Namespaces {
            prefix: prefix.to_owned(),
            made: Vec::new(),
            etc: Vec::new(),
        }
    }

    /// The full name of namespace `name`.
    pub fn name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Makes namespace `name` with its loopback up.
    pub fn add(&mut self, name: &str) -> anyhow::Result<String> {
        let ns = self.name(name);
        ip(&["netns", "add", &ns])?;
        self.made.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A veth pair between namespaces: `a_if` in `a`, `b_if` in `b`.
    pub fn veth(&self, a: &str, a_if: &str, b: &str, b_if: &str) -> anyhow::Result<()> {
        ip(&[
            "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b,
        ])?;
        ip(&["-n", a, "link", "set", a_if, "up"])?;
        ip(&["-n", b, "link", "set", b_if, "up"])
    }

    /// A bridge `br` in namespace `ns`, up.
    pub fn bridge(&self, ns: &str, br: &str) -> anyhow::Result<()> {
        ip(&["-n", ns, "link", "add", br, "type", "bridge"])?;
        ip(&["-n", ns, "link", "set", br, "up"])
    }

    /// Attaches interface `dev` of `ns` to bridge `br` there.
    pub fn attach(&self, ns: &str, dev: &str, br: &str) -> anyhow::Result<()> {
        ip(&["-n", ns, "link", "set", dev, "master", br])
    }

    /// Gives `dev` in `ns` the address `cidr` (e.g. `10.1.0.1/24`).
    pub fn addr(&self, ns: &str, dev: &str, cidr: &str) -> anyhow::Result<()> {
        ip(&["-n", ns, "addr", "add", cidr, "dev", dev])
    }

    /// A default route in `ns` via `gateway`.
    pub fn default_route(&self, ns: &str, gateway: &str) -> anyhow::Result<()> {
        ip(&["-n", ns, "route", "add", "default", "via", gateway])
    }

    /// Makes `ns` a router translating what leaves through `wan` as `nat` says.
    pub fn router(&self, ns: &str, wan: &str, nat: Nat) -> anyhow::Result<()> {
        // /proc/sys/net is the namespace's own (no sysctl binary needed).
        run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sh",
                "-c",
                "echo 1 > /proc/sys/net/ipv4/ip_forward",
            ],
        )?;
        let masquerade = match nat {
            Nat::Cone => "masquerade",
            Nat::Symmetric => "masquerade random",
        };
        // Unsolicited packets from outside are dropped before conntrack confirms
        // them, so they leave no entry behind (and draw no ICMP error): a later
        // outbound packet to that sender keeps its mapping, as a NAT that filters by
        // address and port should. Linux's default would record the inbound packet
        // and move the outbound one to another port, breaking endpoint independence.
        let rules = format!(
            "table ip nat {{\n  chain post {{\n    type nat hook postrouting priority 100; policy accept;\n    oifname \"{wan}\" {masquerade}\n  }}\n}}\n\
             table ip filter {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    iifname \"{wan}\" ct state new drop\n  }}\n\
               chain forward {{\n    type filter hook forward priority 0; policy accept;\n    iifname \"{wan}\" ct state new drop\n  }}\n}}\n"
        );
        let file = std::env::temp_dir().join(format!("{ns}.nft"));
        std::fs::write(&file, rules)?;
        let result = run(
            "ip",
            &["netns", "exec", ns, "nft", "-f", &file.to_string_lossy()],
        );
        let _ = std::fs::remove_file(&file);
        result
    }

    /// Writes `/etc/netns/NS/FILE`, which `ip netns exec NS` shows its processes as
    /// `/etc/FILE` (a resolv.conf naming the lab's DNS server, say).
    pub fn etc_file(&mut self, ns: &str, file: &str, text: &str) -> anyhow::Result<()> {
        let dir = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join(file), text)?;
        if !self.etc.contains(&dir) {
            self.etc.push(dir);
        }
        Ok(())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
        for dir in &self.etc {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
