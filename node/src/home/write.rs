//! Crash-safe file writes: private files created once with mode 0600, and
//! replacements written to a temp file, synced and renamed into place.

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

/// Writes `bytes` to `path` via a temp file, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    let tmp = path.with_extension("tmp-write");
    {
        let mut f = fs::File::create(&tmp).map_err(HomeError::io(&tmp))?;
        f.write_all(bytes).map_err(HomeError::io(&tmp))?;
        f.sync_all().map_err(HomeError::io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(HomeError::io(path))
}
