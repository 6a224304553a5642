//! A subscription's directory on disk, and the atomic switch to a new version.
//!
//! ```text
//! DIR/
//!   .mesh-subscription      the product this directory follows (a marker)
//!   1.4.0/                  a complete version, never written to again
//!   1.5.0/
//!   current -> 1.5.0        a relative symlink, replaced last (rename(2))
//!   .partial-1.6.0/         a version being fetched: hidden, never `current`
//! ```
//!
//! A consumer's job reads `DIR/current/...`: the link names a complete folder
//! before and after every switch, since a version is fetched into a hidden
//! `.partial-*` folder, renamed into place whole, and only then is `current`
//! swapped by renaming a new link over it. A crash at any point leaves `current`
//! on a complete version; leftovers are removed when the subscription next runs.
//!
//! The directory is the one claimed, not whatever its path names later: a
//! [`Layout`] holds it open (opened without following a symbolic link) and does
//! every rename, link and removal relative to that handle (`*at` system calls,
//! never following a link), and a version is fetched into the partial folder
//! through `/proc/self/fd`, so a directory renamed away and replaced by a link
//! mid-fetch receives nothing. Before every write or removal [`Layout::check`]
//! confirms the path still names the held directory and its marker still names
//! the product; otherwise the error is [`LayoutError::Moved`] and the
//! subscription stops. Folders are removed only when they are known by inode as
//! this subscription's own ([`Made`]): a folder of the same name that somebody
//! else put there is never deleted.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};

pub(crate) use crate::state::subscriptions::{DirId, Made};

/// The marker naming the product a directory follows.
pub(super) const MARKER: &str = ".mesh-subscription";
/// The link to the newest complete version.
pub(crate) const CURRENT: &str = "current";
const PARTIAL_PREFIX: &str = ".partial-";
const NEW_LINK_PREFIX: &str = ".current-";
/// How deep a folder being removed may nest (a product's paths are far shallower).
const MAX_DEPTH: usize = 128;
/// The longest marker read (a product id and a newline).
const MAX_MARKER: u64 = 256;

/// What can go wrong with a subscription's directory.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LayoutError {
    /// The directory holds other things, or follows another product.
    #[error("{dir} {why}; give an empty or new directory (or the one this product's subscription already uses)")]
    NotOurs {
        /// The directory.
        dir: PathBuf,
        /// What is in the way.
        why: String,
    },
    /// The claimed directory is no longer at its path (moved, replaced, its marker
    /// gone): nothing more is written or removed there.
    #[error("{dir} {why}; the subscription stopped and wrote nothing more; `mesh subscribe` again (to an empty or new directory) to resume")]
    Moved {
        /// The directory's path.
        dir: PathBuf,
        /// What changed.
        why: String,
    },
    /// The file system refused.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// A version's folder while it is being fetched, held open.
#[derive(Debug)]
pub(crate) struct Partial {
    fd: OwnedFd,
    made: Made,
}

impl Partial {
    /// Where the fetch writes: the held folder itself, whatever its path names.
    pub(crate) fn path(&self) -> PathBuf {
        fd_path(self.fd.as_fd())
    }

    /// The record of this folder, kept before anything is written into it.
    pub(crate) fn made(&self) -> Made {
        self.made.clone()
    }
}

/// The path through which the kernel resolves an open directory itself.
fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

/// Opens the directory at `path` without following a link at its last component.
fn open_dir_at(parent: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, rustix::io::Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// A subscription's directory, held open.
#[derive(Debug)]
pub(crate) struct Layout {
    dir: PathBuf,
    product: String,
    fd: OwnedFd,
    id: DirId,
}

impl Layout {
    /// Claims `dir` for `product`: creates it, or accepts it if it is empty or
    /// already follows `product`; writes the marker. The directory itself must not
    /// be a symbolic link.
    pub(crate) fn claim(dir: &Path, product: &str) -> Result<Layout, LayoutError> {
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let layout = Layout::hold(dir, product)?;
        match layout.marker()? {
            Some(text) if text == product => return Ok(layout),
            Some(text) => {
                return Err(LayoutError::NotOurs {
                    dir: dir.to_owned(),
                    why: format!("already follows {text}"),
                })
            }
            None => {}
        }
        if let Some(name) = layout.names()?.into_iter().next() {
            return Err(LayoutError::NotOurs {
                dir: dir.to_owned(),
                why: format!("is not empty (it holds {})", name.to_string_lossy()),
            });
        }
        layout.write_marker()?;
        Ok(layout)
    }

    /// Opens the directory a subscription claimed: it must still be a directory
    /// (not a link) at `dir`, be the same one (`expected`, when known) and carry
    /// the marker of `product`; anything else is [`LayoutError::Moved`].
    pub(crate) fn open(
        dir: &Path,
        product: &str,
        expected: Option<DirId>,
    ) -> Result<Layout, LayoutError> {
        let layout = Layout::hold(dir, product).map_err(|e| match e {
            LayoutError::NotOurs { dir, why } => LayoutError::Moved { dir, why },
            LayoutError::Io { source, .. } => LayoutError::Moved {
                dir: dir.to_owned(),
                why: match source.kind() {
                    io::ErrorKind::NotFound => "is gone".to_string(),
                    _ => format!("cannot be opened as the claimed directory ({source})"),
                },
            },
            other => other,
        })?;
        if expected.is_some_and(|id| id != layout.id) {
            return Err(
                layout.moved("is another directory now (the claimed one was moved or replaced)")
            );
        }
        layout.check_marker()?;
        Ok(layout)
    }

    /// Opens `dir` itself, refusing a symbolic link.
    fn hold(dir: &Path, product: &str) -> Result<Layout, LayoutError> {
        let (parent, name) = match (dir.parent(), dir.file_name()) {
            (Some(p), Some(n)) => (p, n),
            _ => {
                return Err(LayoutError::NotOurs {
                    dir: dir.to_owned(),
                    why: "is not a directory a subscription can claim".to_string(),
                })
            }
        };
        let parent_fd = rustix::fs::open(
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("opening", parent)(errno(e)))?;
        let fd = open_dir_at(parent_fd.as_fd(), name).map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => LayoutError::NotOurs {
                dir: dir.to_owned(),
                why: "is a symbolic link or not a directory (give the directory itself)"
                    .to_string(),
            },
            e => io_err("opening", dir)(errno(e)),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| io_err("reading", dir)(errno(e)))?;
        Ok(Layout {
            dir: dir.to_owned(),
            product: product.to_owned(),
            fd,
            id: DirId {
                dev: st.st_dev,
                ino: st.st_ino,
            },
        })
    }

    /// The held directory's identity.
    pub(crate) fn id(&self) -> DirId {
        self.id
    }

    /// The directory's path (as claimed).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes a partial folder whose fetch failed (it is this subscription's own,
    /// wherever its directory is now).
    pub(crate) fn discard(&self, partial: Partial) -> Result<(), LayoutError> {
        self.remove_made(&partial.made).map(|_| ())
    }

    fn moved(&self, why: &str) -> LayoutError {
        LayoutError::Moved {
            dir: self.dir.clone(),
            why: why.to_string(),
        }
    }

    /// Confirms, before a write or removal, that the path still names the held
    /// directory (not a link, not another one) and that its marker names the
    /// product.
    pub(crate) fn check(&self) -> Result<(), LayoutError> {
        match rustix::fs::lstat(&self.dir) {
            Ok(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory
                    && st.st_dev == self.id.dev
                    && st.st_ino == self.id.ino => {}
            Ok(_) => {
                return Err(self.moved(
                    "is another directory or a link now (the claimed one was moved or replaced)",
                ))
            }
            Err(rustix::io::Errno::NOENT) => return Err(self.moved("is gone (moved or removed)")),
            Err(e) => return Err(io_err("checking", &self.dir)(errno(e))),
        }
        self.check_marker()
    }

    fn check_marker(&self) -> Result<(), LayoutError> {
        match self.marker()? {
            Some(text) if text == self.product => Ok(()),
            Some(text) => Err(self.moved(&format!("is marked for {text} now"))),
            None => Err(self.moved(&format!("no longer holds its marker {MARKER}"))),
        }
    }

    /// The product the marker names, if there is a marker (a regular file).
    fn marker(&self) -> Result<Option<String>, LayoutError> {
        let path = self.dir.join(MARKER);
        let fd = match rustix::fs::openat(
            &self.fd,
            MARKER,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP) => return Ok(Some("(a link)".to_string())),
            Err(e) => return Err(io_err("reading", &path)(errno(e))),
        };
        let mut text = String::new();
        use std::io::Read;
        std::fs::File::from(fd)
            .take(MAX_MARKER)
            .read_to_string(&mut text)
            .map_err(io_err("reading", &path))?;
        Ok(Some(text.trim().to_string()))
    }

    fn write_marker(&self) -> Result<(), LayoutError> {
        let tmp = format!("{MARKER}.tmp");
        let path = self.dir.join(MARKER);
        let fd = rustix::fs::openat(
            &self.fd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| io_err("writing", &path)(errno(e)))?;
        let mut file = std::fs::File::from(fd);
        use std::io::Write;
        file.write_all(format!("{}\n", self.product).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_err("writing", &path))?;
        rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, MARKER)
            .map_err(|e| io_err("writing", &path)(errno(e)))?;
        self.sync()
    }

    /// The names in the directory (without `.` and `..`).
    fn names(&self) -> Result<Vec<std::ffi::OsString>, LayoutError> {
        let mut dir = rustix::fs::Dir::read_from(&self.fd)
            .map_err(|e| io_err("listing", &self.dir)(errno(e)))?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| io_err("listing", &self.dir)(errno(e)))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// The folder `name` in the directory as found (its identity), if it is a
    /// folder (not a link).
    pub(crate) fn folder(&self, name: &str) -> Result<Option<Made>, LayoutError> {
        let wanted = StatxFlags::TYPE | StatxFlags::INO | StatxFlags::BTIME;
        match rustix::fs::statx(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW, wanted) {
            Ok(st) if FileType::from_raw_mode(st.stx_mode.into()) == FileType::Directory => {
                let born = StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::BTIME);
                Ok(Some(Made {
                    name: name.to_string(),
                    ino: st.stx_ino,
                    born_ns: born.then(|| {
                        i128::from(st.stx_btime.tv_sec) * 1_000_000_000
                            + i128::from(st.stx_btime.tv_nsec)
                    }),
                }))
            }
            Ok(_) | Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(io_err("reading", &self.dir.join(name))(errno(e))),
        }
    }

    /// The folder `name` if it is one this subscription made (`made`).
    fn made_folder(&self, name: &str, made: &[Made]) -> Result<Option<Made>, LayoutError> {
        Ok(self
            .folder(name)?
            .filter(|found| made.iter().any(|m| m.is(found))))
    }

    /// Removes what an interrupted run left: `.partial-*` folders this
    /// subscription made (by inode, in `made`) and `.current-*` links. Returns how
    /// many.
    pub(crate) fn clean(&self, made: &[Made]) -> Result<usize, LayoutError> {
        self.check()?;
        let mut removed = 0;
        for name in self.names()? {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(PARTIAL_PREFIX) {
                if let Some(ours) = self.made_folder(name, made)? {
                    if self.remove_made(&ours)? {
                        removed += 1;
                    }
                }
            } else if name.starts_with(NEW_LINK_PREFIX) && self.is_link(name)? {
                rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())
                    .map_err(|e| io_err("removing", &self.dir.join(name))(errno(e)))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn is_link(&self, name: &str) -> Result<bool, LayoutError> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(FileType::from_raw_mode(st.st_mode) == FileType::Symlink),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(io_err("reading", &self.dir.join(name))(errno(e))),
        }
    }

    /// Makes a fresh hidden folder for `version` to be fetched into, held open. A
    /// folder of that name already there is refused unless `made` records it (a
    /// leftover of this subscription's own, which is replaced).
    pub(crate) fn partial(&self, version: &str, made: &[Made]) -> Result<Partial, LayoutError> {
        self.check()?;
        let name = format!("{PARTIAL_PREFIX}{version}");
        if self.folder(&name)?.is_some() {
            let Some(ours) = self.made_folder(&name, made)? else {
                return Err(self.not_made(&name));
            };
            self.remove_made(&ours)?;
        }
        let path = self.dir.join(&name);
        rustix::fs::mkdirat(&self.fd, name.as_str(), Mode::from_raw_mode(0o755))
            .map_err(|e| io_err("creating", &path)(errno(e)))?;
        let fd = open_dir_at(self.fd.as_fd(), OsStr::new(&name))
            .map_err(|e| io_err("opening", &path)(errno(e)))?;
        let made = self
            .folder(&name)?
            .ok_or_else(|| io_err("creating", &path)(io::ErrorKind::NotFound.into()))?;
        Ok(Partial { fd, made })
    }

    fn not_made(&self, name: &str) -> LayoutError {
        LayoutError::NotOurs {
            dir: self.dir.clone(),
            why: format!("holds {name}, which this subscription did not make (move it away)"),
        }
    }

    /// The version `current` names, if the link is there.
    pub(crate) fn current(&self) -> Option<String> {
        let target = rustix::fs::readlinkat(&self.fd, CURRENT, Vec::new()).ok()?;
        Some(target.to_string_lossy().into_owned())
    }

    /// Makes the fetched `version` complete and current: renames its partial folder
    /// into place, then points `current` at it by renaming a new link over the old
    /// one, and syncs the directory. A folder already named `version` is replaced
    /// only if this subscription made it (a crash's leftover that no link names),
    /// kept if it is already current, and refused otherwise. Returns the record of
    /// the version's folder.
    pub(crate) fn commit(
        &self,
        partial: Partial,
        version: &str,
        made: &[Made],
    ) -> Result<Made, LayoutError> {
        if let Err(e) = self.check() {
            // The folder is this subscription's own, wherever the directory went.
            let _ = self.remove_made(&partial.made);
            return Err(e);
        }
        if self.folder(version)?.is_some() {
            let Some(ours) = self.made_folder(version, made)? else {
                return Err(self.not_made(version));
            };
            if self.current().as_deref() == Some(version) {
                // Already current (a re-run after a crash past the switch): keep it.
                self.remove_made(&partial.made)?;
                return Ok(ours);
            }
            self.remove_made(&ours)?;
        }
        let target = self.dir.join(version);
        rustix::fs::renameat(&self.fd, partial.made.name.as_str(), &self.fd, version)
            .map_err(|e| io_err("renaming into place", &target)(errno(e)))?;
        self.sync()?;
        let link = format!("{NEW_LINK_PREFIX}{version}");
        if self.is_link(&link)? {
            let _ = rustix::fs::unlinkat(&self.fd, link.as_str(), AtFlags::empty());
        }
        rustix::fs::symlinkat(version, &self.fd, link.as_str())
            .map_err(|e| io_err("linking", &self.dir.join(&link))(errno(e)))?;
        self.check()?;
        rustix::fs::renameat(&self.fd, link.as_str(), &self.fd, CURRENT)
            .map_err(|e| io_err("switching", &self.dir.join(CURRENT))(errno(e)))?;
        self.sync()?;
        Ok(Made {
            name: version.to_string(),
            ..partial.made
        })
    }

    /// Removes the folder of a version no longer kept, if it is the one this
    /// subscription made (never the current one, never a folder somebody put in
    /// its place). Returns whether it was removed.
    pub(crate) fn prune(&self, made: &Made) -> Result<bool, LayoutError> {
        self.check()?;
        if self.current().as_deref() == Some(made.name.as_str()) {
            return Ok(false);
        }
        self.remove_made(made)
    }

    /// Removes the folder `made` names if it is still that folder, without
    /// following links.
    fn remove_made(&self, made: &Made) -> Result<bool, LayoutError> {
        if !self
            .folder(&made.name)?
            .is_some_and(|found| made.is(&found))
        {
            return Ok(false);
        }
        let path = self.dir.join(&made.name);
        remove_tree_at(self.fd.as_fd(), OsStr::new(&made.name), 0)
            .map_err(io_err("removing", &path))?;
        Ok(true)
    }

    /// Syncs the directory, so renames in it survive a power loss.
    fn sync(&self) -> Result<(), LayoutError> {
        rustix::fs::fsync(&self.fd).map_err(|e| io_err("syncing", &self.dir)(errno(e)))
    }
}

/// Removes `name` under `parent` and everything in it, never following a link (a
/// link is removed, not what it names).
fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "folders nested deeper than {MAX_DEPTH}; not removed"
        )));
    }
    let fd = match open_dir_at(parent, name) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
            return rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(errno)
        }
        Err(e) => return Err(errno(e)),
    };
    let mut children = Vec::new();
    let mut dir = rustix::fs::Dir::read_from(&fd).map_err(errno)?;
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(errno)?;
        let child = OsStr::from_bytes(entry.file_name().to_bytes());
        if child != "." && child != ".." {
            children.push((child.to_owned(), entry.file_type()));
        }
    }
    for (child, kind) in children {
        match kind {
            FileType::Directory | FileType::Unknown => {
                remove_tree_at(fd.as_fd(), &child, depth + 1)?
            }
            _ => rustix::fs::unlinkat(&fd, child.as_os_str(), AtFlags::empty()).map_err(errno)?,
        }
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fetches `body` as version `v` (as the follower does, through the held
    /// folder) and commits it; returns its record.
    fn version(l: &Layout, made: &mut Vec<Made>, v: &str, body: &str) -> Made {
        let p = l.partial(v, made).unwrap();
        made.push(p.made());
        std::fs::write(p.path().join("data.csv"), body).unwrap();
        let m = l.commit(p, v, made).unwrap();
        made.retain(|x| !x.is(&m));
        made.push(m.clone());
        m
    }

    fn read_current(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(CURRENT).join("data.csv")).unwrap()
    }

    #[test]
    fn a_version_becomes_current_whole_and_the_old_one_stays_until_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("orders");
        let l = Layout::claim(&dir, "sales/orders").unwrap();
        let mut made = Vec::new();
        assert_eq!(l.current(), None);
        let one = version(&l, &mut made, "1.0.0", "one");
        assert_eq!(read_current(&dir), "one");
        let p = l.partial("1.1.0", &made).unwrap();
        made.push(p.made());
        std::fs::write(p.path().join("data.csv"), "two").unwrap();
        // Until the commit, the partial folder is invisible through `current`.
        assert_eq!(read_current(&dir), "one");
        let two = l.commit(p, "1.1.0", &made).unwrap();
        assert_eq!(read_current(&dir), "two");
        assert_eq!(l.current().as_deref(), Some("1.1.0"));
        assert!(dir.join("1.0.0").join("data.csv").exists());
        assert!(!l.prune(&two).unwrap(), "the current one is never pruned");
        assert!(dir.join("1.1.0").exists());
        assert!(l.prune(&one).unwrap());
        assert!(!dir.join("1.0.0").exists());
    }

    #[test]
    fn leftovers_of_a_crash_are_cleaned_and_current_stays_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("orders");
        let l = Layout::claim(&dir, "sales/orders").unwrap();
        let mut made = Vec::new();
        version(&l, &mut made, "1.0.0", "one");
        // Killed mid-fetch: a half-written partial folder and a stray new link.
        let p = l.partial("1.1.0", &made).unwrap();
        made.push(p.made());
        std::fs::write(p.path().join("data.csv"), "tw").unwrap();
        drop(p);
        std::os::unix::fs::symlink("1.1.0", dir.join(".current-1.1.0")).unwrap();
        // Killed between the rename into place and the switch.
        let p = l.partial("1.2.0", &made).unwrap();
        made.push(p.made());
        std::fs::write(p.path().join("data.csv"), "three").unwrap();
        std::fs::rename(dir.join(".partial-1.2.0"), dir.join("1.2.0")).unwrap();
        // A partial folder somebody else made is not this subscription's.
        std::fs::create_dir(dir.join(".partial-9.9.9")).unwrap();
        assert_eq!(read_current(&dir), "one");
        assert_eq!(l.clean(&made).unwrap(), 2);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                ".mesh-subscription",
                ".partial-9.9.9",
                "1.0.0",
                "1.2.0",
                CURRENT
            ]
        );
        // The re-run replaces the stray folder it made, which no link names.
        version(&l, &mut made, "1.2.0", "three again");
        assert_eq!(read_current(&dir), "three again");
    }

    #[test]
    fn a_folder_somebody_else_put_in_place_is_never_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("orders");
        let l = Layout::claim(&dir, "sales/orders").unwrap();
        let mut made = Vec::new();
        let one = version(&l, &mut made, "1.0.0", "one");
        version(&l, &mut made, "1.1.0", "two");
        // The user replaces 1.0.0 with a folder of their own.
        std::fs::create_dir(dir.join("theirs")).unwrap();
        std::fs::write(dir.join("theirs/precious.txt"), "mine").unwrap();
        std::fs::remove_dir_all(dir.join("1.0.0")).unwrap();
        std::fs::rename(dir.join("theirs"), dir.join("1.0.0")).unwrap();
        assert!(!l.prune(&one).unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.join("1.0.0/precious.txt")).unwrap(),
            "mine"
        );
        // Nor is a version folder of theirs replaced by a new version.
        std::fs::create_dir(dir.join("2.0.0")).unwrap();
        let p = l.partial("2.0.0", &made).unwrap();
        let err = l.commit(p, "2.0.0", &made).unwrap_err();
        assert!(err.to_string().contains("did not make"), "{err}");
    }

    #[test]
    fn a_directory_moved_and_replaced_by_a_link_is_never_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("orders");
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::create_dir(elsewhere.join("1.0.0")).unwrap();
        std::fs::write(elsewhere.join("1.0.0/precious.txt"), "mine").unwrap();
        let l = Layout::claim(&dir, "sales/orders").unwrap();
        let id = l.id();
        let mut made = Vec::new();
        version(&l, &mut made, "1.0.0", "one");
        // Mid-fetch, the directory is renamed away and a link put at its path.
        let p = l.partial("1.1.0", &made).unwrap();
        made.push(p.made());
        std::fs::rename(&dir, tmp.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
        // The fetch still writes into the folder it made (now under `moved`).
        std::fs::write(p.path().join("data.csv"), "two").unwrap();
        let err = l.commit(p, "1.1.0", &made).unwrap_err();
        assert!(matches!(err, LayoutError::Moved { .. }), "{err}");
        let one = made.iter().find(|m| m.name == "1.0.0").unwrap();
        assert!(matches!(l.prune(one), Err(LayoutError::Moved { .. })));
        // Opening it again by path is refused too, link or not.
        let err = Layout::open(&dir, "sales/orders", Some(id)).unwrap_err();
        assert!(matches!(err, LayoutError::Moved { .. }), "{err}");
        std::fs::remove_file(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(MARKER), "sales/orders\n").unwrap();
        let err = Layout::open(&dir, "sales/orders", Some(id)).unwrap_err();
        assert!(err.to_string().contains("another directory"), "{err}");
        // The link's target was never touched.
        let mut names: Vec<_> = std::fs::read_dir(&elsewhere)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec!["1.0.0"]);
        assert_eq!(
            std::fs::read_to_string(elsewhere.join("1.0.0/precious.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn a_directory_of_other_things_or_another_product_or_a_link_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let busy = tmp.path().join("busy");
        std::fs::create_dir_all(&busy).unwrap();
        std::fs::write(busy.join("thesis.tex"), "x").unwrap();
        let err = Layout::claim(&busy, "sales/orders").unwrap_err();
        assert!(err.to_string().contains("thesis.tex"), "{err}");
        assert!(busy.join("thesis.tex").exists(), "nothing touched");
        let o = tmp.path().join("o");
        Layout::claim(&o, "sales/orders").unwrap();
        Layout::claim(&o, "sales/orders").unwrap();
        let err = Layout::claim(&o, "finance/ledger").unwrap_err();
        assert!(
            err.to_string().contains("already follows sales/orders"),
            "{err}"
        );
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&o, &link).unwrap();
        let err = Layout::claim(&link, "sales/orders").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}
