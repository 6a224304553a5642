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
//! on a complete version; leftovers (`.partial-*`, `.current-*`) are removed when
//! the subscription next runs.

use std::io;
use std::path::{Path, PathBuf};

/// The marker naming the product a directory follows.
pub(super) const MARKER: &str = ".mesh-subscription";
/// The link to the newest complete version.
pub(crate) const CURRENT: &str = "current";
const PARTIAL_PREFIX: &str = ".partial-";
const NEW_LINK_PREFIX: &str = ".current-";

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

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// A subscription's directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout under `dir`.
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Self {
        Layout { dir: dir.into() }
    }

    /// Claims `dir` for `product`: creates it, or accepts it if it is empty or
    /// already follows `product`; writes the marker.
    pub(crate) fn claim(&self, product: &str) -> Result<(), LayoutError> {
        let dir = &self.dir;
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let marker = dir.join(MARKER);
        match std::fs::read_to_string(&marker) {
            Ok(text) if text.trim() == product => return Ok(()),
            Ok(text) => {
                return Err(LayoutError::NotOurs {
                    dir: dir.clone(),
                    why: format!("already follows {}", text.trim()),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("reading", &marker)(e)),
        }
        let mut entries = std::fs::read_dir(dir).map_err(io_err("listing", dir))?;
        if let Some(entry) = entries.next() {
            let entry = entry.map_err(io_err("listing", dir))?;
            return Err(LayoutError::NotOurs {
                dir: dir.clone(),
                why: format!(
                    "is not empty (it holds {})",
                    entry.file_name().to_string_lossy()
                ),
            });
        }
        crate::home::write_atomic(&marker, format!("{product}\n").as_bytes()).map_err(|e| {
            LayoutError::Io {
                what: "writing",
                path: marker.clone(),
                source: io::Error::other(e.to_string()),
            }
        })
    }

    /// Removes what an interrupted run left: `.partial-*` folders and `.current-*`
    /// links. Returns how many.
    pub(crate) fn clean(&self) -> Result<usize, LayoutError> {
        let dir = &self.dir;
        let mut removed = 0;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("listing", dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("listing", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(PARTIAL_PREFIX) {
                std::fs::remove_dir_all(&path).map_err(io_err("removing", &path))?;
                removed += 1;
            } else if name.starts_with(NEW_LINK_PREFIX) {
                std::fs::remove_file(&path).map_err(io_err("removing", &path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Where `version` is fetched to before it is complete (emptied first).
    pub(crate) fn partial(&self, version: &str) -> Result<PathBuf, LayoutError> {
        let path = self.dir.join(format!("{PARTIAL_PREFIX}{version}"));
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &path)(e)),
        }
        Ok(path)
    }

    /// The folder of a complete `version`.
    pub(crate) fn version_dir(&self, version: &str) -> PathBuf {
        self.dir.join(version)
    }

    /// The version `current` names, if the link is there.
    pub(crate) fn current(&self) -> Option<String> {
        let target = std::fs::read_link(self.dir.join(CURRENT)).ok()?;
        Some(target.to_string_lossy().into_owned())
    }

    /// Makes the fetched `version` complete and current: renames its partial folder
    /// into place (replacing a folder of that name a crash left behind, which no
    /// link names), then points `current` at it by renaming a new link over the
    /// old one, and syncs the directory.
    pub(crate) fn commit(&self, version: &str) -> Result<(), LayoutError> {
        let partial = self.dir.join(format!("{PARTIAL_PREFIX}{version}"));
        let target = self.version_dir(version);
        if self.current().as_deref() != Some(version) {
            match std::fs::remove_dir_all(&target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing", &target)(e)),
            }
        } else if target.exists() {
            // Already current (a re-run after a crash past the switch): keep it.
            let _ = std::fs::remove_dir_all(&partial);
            return Ok(());
        }
        std::fs::rename(&partial, &target).map_err(io_err("renaming into place", &partial))?;
        sync_dir(&self.dir)?;
        let link = self.dir.join(format!("{NEW_LINK_PREFIX}{version}"));
        let _ = std::fs::remove_file(&link);
        symlink(Path::new(version), &link).map_err(io_err("linking", &link))?;
        let current = self.dir.join(CURRENT);
        std::fs::rename(&link, &current).map_err(io_err("switching", &current))?;
        sync_dir(&self.dir)
    }

    /// Removes the folder of a version no longer kept (never the current one).
    pub(crate) fn prune(&self, version: &str) -> Result<(), LayoutError> {
        if self.current().as_deref() == Some(version) {
            return Ok(());
        }
        let path = self.version_dir(version);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", &path)(e)),
        }
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::other(
        "subscriptions need symbolic links (a Unix system)",
    ))
}

/// Syncs a directory, so renames in it survive a power loss.
fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(io_err("syncing", dir))?;
    }
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(l: &Layout, v: &str, body: &str) {
        let p = l.partial(v).unwrap();
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("data.csv"), body).unwrap();
    }

    fn read_current(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(CURRENT).join("data.csv")).unwrap()
    }

    #[test]
    fn a_version_becomes_current_whole_and_the_old_one_stays_until_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let l = Layout::new(tmp.path().join("orders"));
        l.claim("sales/orders").unwrap();
        assert_eq!(l.current(), None);
        version(&l, "1.0.0", "one");
        l.commit("1.0.0").unwrap();
        assert_eq!(read_current(&l.dir), "one");
        version(&l, "1.1.0", "two");
        // Until the commit, the partial folder is invisible through `current`.
        assert_eq!(read_current(&l.dir), "one");
        l.commit("1.1.0").unwrap();
        assert_eq!(read_current(&l.dir), "two");
        assert_eq!(l.current().as_deref(), Some("1.1.0"));
        assert!(l.version_dir("1.0.0").join("data.csv").exists());
        l.prune("1.1.0").unwrap();
        assert!(
            l.version_dir("1.1.0").exists(),
            "the current one is never pruned"
        );
        l.prune("1.0.0").unwrap();
        assert!(!l.version_dir("1.0.0").exists());
    }

    #[test]
    fn leftovers_of_a_crash_are_cleaned_and_current_stays_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let l = Layout::new(tmp.path().join("orders"));
        l.claim("sales/orders").unwrap();
        version(&l, "1.0.0", "one");
        l.commit("1.0.0").unwrap();
        // Killed mid-fetch: a half-written partial folder and a stray new link.
        version(&l, "1.1.0", "tw");
        symlink(Path::new("1.1.0"), &l.dir.join(".current-1.1.0")).unwrap();
        // Killed between the rename into place and the switch.
        version(&l, "1.2.0", "three");
        std::fs::rename(l.dir.join(".partial-1.2.0"), l.version_dir("1.2.0")).unwrap();
        assert_eq!(read_current(&l.dir), "one");
        assert_eq!(l.clean().unwrap(), 2);
        let mut names: Vec<String> = std::fs::read_dir(&l.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![MARKER, "1.0.0", "1.2.0", CURRENT]);
        // The re-run replaces the stray folder that no link names.
        version(&l, "1.2.0", "three again");
        l.commit("1.2.0").unwrap();
        assert_eq!(read_current(&l.dir), "three again");
    }

    #[test]
    fn a_directory_of_other_things_or_another_product_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let busy = tmp.path().join("busy");
        std::fs::create_dir_all(&busy).unwrap();
        std::fs::write(busy.join("thesis.tex"), "x").unwrap();
        let err = Layout::new(&busy).claim("sales/orders").unwrap_err();
        assert!(err.to_string().contains("thesis.tex"), "{err}");
        assert!(busy.join("thesis.tex").exists(), "nothing touched");
        let l = Layout::new(tmp.path().join("o"));
        l.claim("sales/orders").unwrap();
        l.claim("sales/orders").unwrap();
        let err = l.claim("finance/ledger").unwrap_err();
        assert!(
            err.to_string().contains("already follows sales/orders"),
            "{err}"
        );
    }
}
