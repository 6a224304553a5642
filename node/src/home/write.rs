//! Crash-safe file writes: private files created once with mode 0600, and
//! replacements written to a private temp file, synced, renamed into place and the
//! directory synced.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::HomeError;

/// Creates `path` with mode 0600 and writes `bytes`; refuses to overwrite.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir).map_err(HomeError::io(dir))?;
        }
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                HomeError::Invalid(format!(
                    "{} already exists; refusing to overwrite a key (choose another path)",
                    path.display()
                ))
            } else {
                HomeError::io(path)(e)
            }
        })?;
    f.write_all(bytes).map_err(HomeError::io(path))?;
    f.sync_all().map_err(HomeError::io(path))
}

/// Writes `bytes` to `path` via a temp file (owner-only, like everything in a
/// home), fsync, rename and an fsync of the directory, so the new name survives a
/// power loss too. A failed write leaves no temp file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    let tmp = path.with_extension("tmp-write");
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(HomeError::io(&tmp)(e));
    }
    fs::rename(&tmp, path).map_err(HomeError::io(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(HomeError::io(dir))?;
    }
    Ok(())
}
