//! Reassembling product files from the chunk store, verifying every chunk, and
//! exposing them only when complete (temp file + fsync + rename).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use mesh_protocol::manifest::{is_safe_relative_path, FileEntry, MAX_CHUNK_LEN};

use crate::chunks::{ChunkError, ChunkStore};

/// Why a product could not be reassembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssembleError {
    /// A chunk is missing or corrupt.
    #[error("{path}: {source}")]
    Chunk {
        /// The file being written.
        path: String,
        /// The chunk failure.
        source: ChunkError,
    },
    /// A manifest path would escape the output directory.
    #[error("refusing unsafe path {0:?} from the manifest")]
    UnsafePath(String),
    /// The output could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What.
        source: io::Error,
    },
}

/// Checks that every chunk of every file is present and hashes correctly.
pub fn verify_files(files: &[FileEntry], store: &ChunkStore) -> Result<(), AssembleError> {
    for f in files {
        for c in &f.chunks {
            store
                .get_verified(&c.hash, u64::from(MAX_CHUNK_LEN))
                .map_err(|source| AssembleError::Chunk {
                    path: f.path.clone(),
                    source,
                })?;
        }
    }
    Ok(())
}

/// Writes each file under `out_dir`, verifying every chunk; a file appears under its
/// final name only once complete and synced.
pub fn write_files(
    files: &[FileEntry],
    store: &ChunkStore,
    out_dir: &Path,
) -> Result<u64, AssembleError> {
    let mut written = 0;
    for f in files {
        if !is_safe_relative_path(&f.path) {
            return Err(AssembleError::UnsafePath(f.path.clone()));
        }
        let dest = out_dir.join(&f.path);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| AssembleError::Io { path, source }
        };
        let dir = dest.parent().unwrap_or(out_dir);
        fs::create_dir_all(dir).map_err(io(dir))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.mesh-partial"));
        let result = (|| {
            let mut out = File::create(&tmp).map_err(io(&tmp))?;
            for c in &f.chunks {
                let data = store
                    .get_verified(&c.hash, u64::from(MAX_CHUNK_LEN))
                    .map_err(|source| AssembleError::Chunk {
                        path: f.path.clone(),
                        source,
                    })?;
                out.write_all(&data).map_err(io(&tmp))?;
            }
            out.sync_all().map_err(io(&tmp))?;
            fs::rename(&tmp, &dest).map_err(io(&dest))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        written += f.size;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunker::chunk_file;

    #[test]
    fn round_trip_and_no_partial_on_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(&dir.path().join("chunks")).unwrap();
        let src = dir.path().join("src.bin");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(&src, &data).unwrap();
        let c = chunk_file(&src, &store).unwrap();
        let files = vec![FileEntry {
            path: "d/out.bin".into(),
            size: c.size,
            chunks: c.chunks.clone(),
        }];
        let out = dir.path().join("out");
        verify_files(&files, &store).unwrap();
        write_files(&files, &store, &out).unwrap();
        assert_eq!(fs::read(out.join("d/out.bin")).unwrap(), data);

        fs::write(store.path_of(&c.chunks[1].hash), b"garbage").unwrap();
        assert!(verify_files(&files, &store).is_err());
        let out2 = dir.path().join("out2");
        assert!(write_files(&files, &store, &out2).is_err());
        assert!(!out2.join("d/out.bin").exists());
        assert!(!out2.join("d/.out.bin.mesh-partial").exists());
    }
}
