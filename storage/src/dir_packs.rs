//! [`DirPacks`]: sealed packs kept in another local directory (a larger or
//! slower disk, a network mount), through the same seam as object storage; the
//! store's tests of offloading use it too.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::seam::{RemoteError, RemoteSource, DIR_PREFIX};

/// Packs kept in a directory.
#[derive(Debug)]
pub struct DirPacks {
    dir: PathBuf,
}

impl DirPacks {
    /// Packs in `dir` (created if missing).
    pub fn new(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(DirPacks {
            dir: fs::canonicalize(dir)?,
        })
    }

    fn path_of(&self, source: &str) -> Result<PathBuf, RemoteError> {
        let name = source
            .strip_prefix(DIR_PREFIX)
            .and_then(|s| s.lines().next())
            .filter(|n| !n.contains('/') && !n.is_empty())
            .ok_or_else(|| {
                RemoteError::Failed(format!("not a pack of this directory: {source:?}"))
            })?;
        Ok(self.dir.join(name))
    }
}

fn failed(e: io::Error) -> RemoteError {
    RemoteError::Failed(e.to_string())
}

impl RemoteSource for DirPacks {
    fn read_at(&self, source: &str, offset: u64, len: u32) -> Result<Vec<u8>, RemoteError> {
        let path = self.path_of(source)?;
        let f = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RemoteError::Changed(format!("{} is gone", path.display())))
            }
            Err(e) => return Err(failed(e)),
        };
        match crate::sys::read_exact_at(&f, len as usize, offset) {
            Ok(data) => Ok(data),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Vec::new()),
            Err(e) => Err(failed(e)),
        }
    }

    fn stores_packs(&self) -> bool {
        true
    }

    fn upload_pack(&self, file: &Path, name: &str) -> Result<String, RemoteError> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        fs::copy(file, &tmp).map_err(failed)?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(failed)?;
        fs::rename(&tmp, self.dir.join(name)).map_err(failed)?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(failed)?;
        Ok(format!("{DIR_PREFIX}{name}\n-"))
    }

    fn delete_pack(&self, name: &str) -> Result<(), RemoteError> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(failed(e)),
            _ => Ok(()),
        }
    }

    fn list_packs(&self) -> Result<Vec<String>, RemoteError> {
        Ok(fs::read_dir(&self.dir)
            .map_err(failed)?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".pack"))
            .collect())
    }
}
