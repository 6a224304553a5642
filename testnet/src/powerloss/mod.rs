//! A disk that loses power: a FUSE file system, served from this process, that
//! forgets at a simulated power loss every write not yet made durable by `fsync`
//! (the idea of LazyFS and of redb's crash-consistency tests).
//!
//! A `kill -9` keeps everything a process wrote, because the kernel's page cache
//! outlives the process. A power loss keeps only what was synced. Node homes on this
//! file system show which: [`Disk::power_loss`] turns every file's content back to
//! what its last `fsync` made durable, after the nodes using it were killed.
//!
//! The model, and what it leaves out:
//! - each file has its current content (what reads see) and its durable content
//!   (what `fsync` or `fdatasync` on any descriptor of it last saved). Writes,
//!   truncations and `fallocate` change only the current content;
//! - names (create, rename, unlink, mkdir) are durable at once. So a file renamed
//!   into place without an `fsync` of its data is found empty after a power loss,
//!   the classic lost write; a lost rename is not modelled (it leaves the old file,
//!   which every caller here already survives);
//! - `syncfs(2)` and `sync_file_range(2)` do not reach a FUSE file system, so they
//!   save nothing here. On ext4 `sync_file_range` does not save a file's new size
//!   either, so neither promises durability;
//! - files are opened with direct I/O and no attribute is cached by the kernel, so
//!   after a power loss every reader sees the durable content.
//!
//! Mounting needs root (or `fusermount3`) and `/dev/fuse`; [`unavailable`] says what
//! is missing.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;

mod fs;
mod tree;

pub use tree::Stats;

/// Why this machine cannot mount a power-loss disk, or `None` if it can.
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing (no FUSE in this kernel or container)".into());
    }
    if !crate::process::is_root() && which("fusermount3").is_none() && which("fusermount").is_none()
    {
        return Some("mounting FUSE needs root, or fusermount3 (Debian's fuse3 package)".into());
    }
    None
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    })
}

/// A mounted power-loss disk; unmounted when dropped.
pub struct Disk {
    tree: Arc<Mutex<tree::Tree>>,
    session: Option<fuser::BackgroundSession>,
    path: PathBuf,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk").field("path", &self.path).finish()
    }
}

impl Disk {
    /// Mounts an empty disk on the directory `at` (created if missing).
    pub fn mount(at: &Path) -> anyhow::Result<Disk> {
        if let Some(why) = unavailable() {
            anyhow::bail!("cannot mount a power-loss disk: {why}");
        }
        std::fs::create_dir_all(at).with_context(|| format!("creating {}", at.display()))?;
        // The disk's root belongs to whoever owns the mount point.
        let owner = std::fs::metadata(at).with_context(|| format!("reading {}", at.display()))?;
        let (uid, gid) = (owner.uid(), owner.gid());
        let tree = Arc::new(Mutex::new(tree::Tree::new(uid, gid)));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("mesh-powerloss".into()),
            fuser::MountOption::Subtype("powerloss".into()),
        ];
        config.n_threads = Some(2);
        let filesystem = fs::PowerLossFs { tree: tree.clone() };
        let session = fuser::spawn_mount(filesystem, at, &config)
            .with_context(|| format!("mounting a power-loss disk on {}", at.display()))?;
        Ok(Disk {
            tree,
            session: Some(session),
            path: at.to_owned(),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The power loss: every file goes back to its content at its last `fsync`.
    /// Kill every process writing here first: one still running would see its
    /// files change under it, which no real power loss does.
    pub fn power_loss(&self) -> Stats {
        let mut tree = fs::lock(&self.tree);
        tree.power_loss();
        tree.stats
    }

    /// What the disk has seen so far.
    pub fn stats(&self) -> Stats {
        fs::lock(&self.tree).stats
    }

    /// Unmounts, reporting a failure (dropping unmounts too, silently). Waits first
    /// (up to 10 s) for the kernel to release every closed file: a release may
    /// arrive just after `close` returns, and the unmount is refused (`EBUSY`)
    /// while any file is open.
    pub fn unmount(mut self) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fs::lock(&self.tree).open_files > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        match self.session.take() {
            Some(s) => s
                .umount_and_join()
                .with_context(|| format!("unmounting {}", self.path.display())),
            None => Ok(()),
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}
