//! A small disk for one node of the soak: a tmpfs of a few MiB mounted on its home,
//! filled to the last byte by a ballast file when the schedule says the disk is
//! full, and given back when it heals. The node sees the kernel's own `ENOSPC`.
//!
//! Mounting needs root; without it the soak runs without this fault and says so.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Size of the small disk: room for the node's database and a few hundred of the
/// soak's products.
const SIZE_MIB: u64 = 128;

/// A mounted tmpfs; unmounted when dropped.
#[derive(Debug)]
pub(super) struct SmallDisk {
    path: PathBuf,
    ballast: PathBuf,
}

impl SmallDisk {
    /// Mounts an empty small disk on `path` (created if missing).
    pub(super) fn mount(path: &Path) -> anyhow::Result<SmallDisk> {
        std::fs::create_dir_all(path)?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={SIZE_MIB}m,mode=0700")])
            .arg("mesh-chaos-disk")
            .arg(path)
            .status()
            .context("running mount")?;
        if !status.success() {
            bail!("mount -t tmpfs on {} failed: {status}", path.display());
        }
        Ok(SmallDisk {
            path: path.to_owned(),
            // A dot file: the node never reads its home's listing.
            ballast: path.join(".chaos-ballast"),
        })
    }

    /// Fills the disk: writes the ballast until the kernel says `ENOSPC`.
    pub(super) fn fill(&self) -> anyhow::Result<u64> {
        let mut f = File::create(&self.ballast)
            .with_context(|| format!("creating {}", self.ballast.display()))?;
        let block = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => return Err(e).context("filling the small disk"),
            }
            if written > (SIZE_MIB + 1) << 20 {
                bail!("the small disk took more than its size; is it mounted?");
            }
        }
        Ok(written)
    }

    /// Gives the space back.
    pub(super) fn free(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.ballast) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).context("removing the ballast"),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a node process still holding files does not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
