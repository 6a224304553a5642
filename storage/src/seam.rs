//! The storage seam: what the chunk store needs from storage that is not its
//! local disk (see [`RemoteSource`]), implemented over S3 by
//! `objects::ObjectSource` and over another directory by
//! [`crate::dir_packs::DirPacks`].

use std::path::Path;

/// The storage seam below the chunk store's local disk: where chunks referenced
/// outside it are read from (objects published in place), and, for a store that
/// keeps its sealed packs elsewhere ([`crate::ChunkStore::offload_packs`]), where those
/// packs go. Implemented over S3 by `mesh_storage::objects::ObjectSource` and over
/// a local directory by [`crate::dir_packs::DirPacks`] (another disk, and the tests). A source is
/// the text an implementation hands out (it starts with [`REMOTE_PREFIX`] or
/// [`DIR_PREFIX`]) and is handed back on every read.
pub trait RemoteSource: Send + Sync + std::fmt::Debug {
    /// `len` bytes at `offset` of the object `source` names, as it was when
    /// recorded. [`RemoteError::Changed`] when it is no longer that object.
    fn read_at(&self, source: &str, offset: u64, len: u32) -> Result<Vec<u8>, RemoteError>;

    /// Whether sealed packs go here.
    fn stores_packs(&self) -> bool {
        false
    }

    /// Stores the local pack `file` as `name` (whole, or not at all); returns
    /// its source.
    fn upload_pack(&self, _file: &Path, name: &str) -> Result<String, RemoteError> {
        Err(RemoteError::Failed(format!(
            "no pack store to upload {name} to"
        )))
    }

    /// Deletes the pack stored as `name` (absent already is no error).
    fn delete_pack(&self, _name: &str) -> Result<(), RemoteError> {
        Ok(())
    }

    /// The name of every pack stored.
    fn list_packs(&self) -> Result<Vec<String>, RemoteError> {
        Ok(Vec::new())
    }
}

/// A failed read of a remote reference.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The object changed or went since it was referenced.
    #[error("changed since it was published: {0}")]
    Changed(String),
    /// The store could not be read (unreachable, refused): try again later.
    #[error("{0}")]
    Failed(String),
}

/// How an object storage source begins.
pub const REMOTE_PREFIX: &str = "s3://";
/// How a [`crate::dir_packs::DirPacks`] source begins.
pub const DIR_PREFIX: &str = "dir://";

/// Whether `path` (a referenced file's or a pack's recorded place) names a
/// remote source rather than a local file.
pub(crate) fn is_remote(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let b = path.as_os_str().as_bytes();
    b.starts_with(REMOTE_PREFIX.as_bytes()) || b.starts_with(DIR_PREFIX.as_bytes())
}
