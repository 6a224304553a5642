//! The policy seal: the highest policy version this node has accepted, kept in a
//! small file beside the metadata database (`HOME/policy.seal`).
//!
//! sled recovers a damaged log by dropping what it cannot read, silently; a home
//! restored from an old backup looks just as healthy. Either would roll the node back
//! to an older policy (or to none) without a word. The seal makes that loud: at start,
//! a database holding an older policy than the seal, or none, is refused as corrupt.
//! The seal is written after the database is flushed, atomically (write, fsync,
//! rename), so a crash can leave it behind the database but never ahead of it.

use std::path::{Path, PathBuf};

use super::error::HomeError;
use super::write::write_atomic;

const HEADER: &str = "mesh policy seal v1";

/// The seal file of a node home.
#[derive(Debug, Clone)]
pub(crate) struct Seal {
    path: PathBuf,
}

impl Seal {
    /// The seal at `path`.
    pub(crate) fn new(path: PathBuf) -> Self {
        Seal { path }
    }

    /// The sealed version; `None` if there is no seal yet.
    pub(crate) fn read(&self) -> Result<Option<u64>, HomeError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.unreadable(e)),
        };
        let mut lines = text.lines();
        let version = match (
            lines.next(),
            lines.next().and_then(|l| l.strip_prefix("version ")),
        ) {
            (Some(HEADER), Some(v)) => v.trim().parse::<u64>().ok(),
            _ => None,
        };
        version
            .map(Some)
            .ok_or_else(|| self.unreadable("not a policy seal"))
    }

    fn unreadable(&self, e: impl std::fmt::Display) -> HomeError {
        HomeError::Corrupt(format!(
            "policy seal {}: {e}; if you are sure the database is intact, delete the file and start again",
            self.path.display()
        ))
    }

    /// Records that `version` is accepted and flushed, unless the seal already says
    /// as much.
    pub(crate) fn advance(&self, version: u64) -> Result<(), HomeError> {
        if self.read()?.is_some_and(|v| v >= version) {
            return Ok(());
        }
        // A failed write (a full disk, say) is an I/O error, not damage: the seal
        // keeps its older version, which the database is at least at.
        write_atomic(
            &self.path,
            format!("{HEADER}\nversion {version}\n").as_bytes(),
        )
    }

    /// Checks a database holding policy `held` (`None`: no policy at all) against
    /// the seal.
    pub(crate) fn check(&self, held: Option<u64>, db: &Path) -> Result<(), HomeError> {
        let Some(sealed) = self.read()? else {
            return Ok(());
        };
        if held.is_some_and(|v| v >= sealed) {
            return Ok(());
        }
        let holds = held.map_or("no policy at all".to_string(), |v| format!("policy v{v}"));
        Err(HomeError::Corrupt(format!(
            "the metadata database {} holds {holds}, but this node had accepted policy v{sealed} ({}): the database is corrupt or was restored from an older copy. Restore a newer backup, or move this home aside and `mesh init` a new one (peers re-sync the catalog and policies)",
            db.display(),
            self.path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seal_only_moves_forward_and_catches_a_rollback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seal = Seal::new(dir.path().join("policy.seal"));
        let db = dir.path().join("db");
        seal.check(None, &db)
            .expect("no seal yet: nothing to check");
        seal.advance(3).expect("advance");
        seal.advance(2).expect("never back");
        assert_eq!(seal.read().expect("read"), Some(3));
        seal.check(Some(3), &db).expect("in step");
        seal.check(Some(4), &db)
            .expect("ahead (crash before the seal) is fine");
        let err = seal.check(Some(2), &db).expect_err("rollback").to_string();
        assert!(
            err.contains("holds policy v2") && err.contains("v3"),
            "{err}"
        );
        let err = seal.check(None, &db).expect_err("emptied").to_string();
        assert!(err.contains("no policy at all"), "{err}");
        std::fs::write(dir.path().join("policy.seal"), "garbage").expect("write");
        assert!(seal.read().is_err());
    }
}
