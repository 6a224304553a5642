//! Reassembling product files, verifying every chunk, and exposing them only when
//! complete (temp file + fsync + rename): from the chunk store ([`write_files`]) or
//! chunk by chunk as a fetch downloads them ([`Output`]), starting each file from an
//! earlier version already on disk where there is one ([`reuse`]), or from what an
//! interrupted fetch had written in place ([`partial`]).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use mesh_protocol::manifest::{is_safe_relative_path, ChunkRef, FileEntry, MAX_CHUNK_LEN};
use mesh_protocol::Hash;

use crate::chunks::{ChunkError, ChunkStore, RefId};

mod partial;
mod reuse;
#[cfg(test)]
mod reuse_tests;

pub use reuse::{Base, Reuse};

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
    /// A file the product would write already exists there with other contents.
    #[error("{0} already exists and is not this product's file; nothing was written. Fetch into another directory, or pass --force to replace it")]
    Exists(PathBuf),
    /// Another fetch is writing the same file (into the same directory) now.
    #[error("{0} is being written by another fetch into the same directory; wait for it to finish, or fetch into another directory")]
    Busy(PathBuf),
    /// A path the product would write is a directory (or other non-file) there.
    #[error("{0} is in the way: the product has a file at that path; nothing was written. Fetch into another directory")]
    InTheWay(PathBuf),
    /// The output could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What.
        source: io::Error,
    },
}

/// How output files are written.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputOptions {
    /// Owner-only files (mode 0600), for confidential and personal data.
    pub private: bool,
    /// Replace files already at the product's paths even when their contents
    /// differ (`--force`). Without it only an identical file is replaced.
    pub overwrite: bool,
}

/// Whether the file at `path` holds exactly the bytes of `f` (its chunks' hashes).
fn holds_same(path: &Path, f: &FileEntry) -> io::Result<bool> {
    let mut file = File::open(path)?;
    if file.metadata()?.len() != f.size {
        return Ok(false);
    }
    let mut buf = Vec::new();
    for c in &f.chunks {
        buf.resize(c.len as usize, 0);
        file.read_exact(&mut buf)?;
        if Hash::from_bytes(*blake3::hash(&buf).as_bytes()) != c.hash {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks, before anything is written, that every file of the product can take its
/// place under `out_dir`: nothing in the way, and no other file replaced unless
/// `overwrite`. So a product appears whole or not at all, and never silently over
/// somebody's file.
fn check_destinations(
    files: &[FileEntry],
    out_dir: &Path,
    overwrite: bool,
    bases: &[Option<Base>],
) -> Result<(), AssembleError> {
    for (i, f) in files.iter().enumerate() {
        if !is_safe_relative_path(&f.path) {
            return Err(AssembleError::UnsafePath(f.path.clone()));
        }
        let dest = out_dir.join(&f.path);
        // Every parent must be a directory (or not exist yet).
        let mut parent = dest.parent();
        while let Some(p) = parent.filter(|p| p.starts_with(out_dir) && *p != out_dir) {
            if p.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                return Err(AssembleError::InTheWay(p.to_owned()));
            }
            parent = p.parent();
        }
        match dest.symlink_metadata() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&dest)(e)),
            Ok(m) if !m.is_file() => return Err(AssembleError::InTheWay(dest)),
            Ok(_) if overwrite => {}
            // The caller vouches that this file is an earlier version it wrote.
            Ok(_)
                if bases
                    .get(i)
                    .and_then(Option::as_ref)
                    .is_some_and(|b| b.path == dest) => {}
            Ok(_) => {
                if !holds_same(&dest, f).map_err(io_at(&dest))? {
                    return Err(AssembleError::Exists(dest));
                }
            }
        }
    }
    Ok(())
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

/// Writes each file under `out_dir` from the store, verifying every chunk; a file
/// appears under its final name only once complete and synced. `bases` are earlier
/// versions of the files on disk, by file index (see [`Output::create_from`]).
pub fn write_files(
    files: &[FileEntry],
    store: &ChunkStore,
    out_dir: &Path,
    options: OutputOptions,
    bases: &[Option<Base>],
) -> Result<Output, AssembleError> {
    let out = Output::create_over(files, out_dir, options, bases, store)?;
    out.fill_from_store(
        store,
        files.iter().flat_map(|f| f.chunks.iter().map(|c| &c.hash)),
    )?;
    out.commit()?;
    Ok(out)
}

/// Checks that `store` holds `hashes` intact (against the CRC-32 recorded at write:
/// these bytes are not written anywhere), on up to 4 threads; the first failure.
fn check_in_parallel(store: &ChunkStore, hashes: &[Hash]) -> Result<(), AssembleError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let per = hashes.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = hashes
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    for hash in part {
                        store
                            .get_checked(hash, u64::from(MAX_CHUNK_LEN))
                            .map_err(|source| AssembleError::Chunk {
                                path: format!("the store's copy of chunk {}", hash.short()),
                                source,
                            })?;
                    }
                    Ok(())
                })
            })
            .collect();
        // Every worker is joined (the scope does), the first failure reported.
        workers.into_iter().try_for_each(|w| {
            w.join().unwrap_or_else(|_| {
                Err(AssembleError::Io {
                    path: PathBuf::from("chunk store"),
                    source: io::Error::other("a verifying thread panicked"),
                })
            })
        })
    })
}

/// Product files being written under an output directory while their chunks arrive,
/// in any order: each chunk is written at every offset where it occurs. The files
/// live under temporary names (`.mesh-partial-N`, N the file's index) until
/// [`Output::commit`] syncs and renames them, so a failed or interrupted fetch never
/// leaves a partial file under its final name. Dropping an uncommitted `Output`
/// removes them, unless it was made by [`Output::create_referenced`]: then the
/// chunk store records each chunk where it lands, and the files stay for the next
/// fetch into the directory to resume from. A temporary file is locked while its
/// `Output` lives: two fetches never write one file.
#[derive(Debug)]
pub struct Output {
    files: Vec<OutFile>,
    /// Where each chunk still to write goes: (file index, byte offset).
    places: HashMap<Hash, Vec<(usize, u64)>>,
    /// What the files' bases provided.
    reuse: Reuse,
    /// Bytes found in place in partial files an interrupted fetch left.
    resumed: u64,
    /// The files are registered with a chunk store, and kept when not committed.
    referenced: bool,
    committed: AtomicBool,
}

#[derive(Debug)]
struct OutFile {
    tmp: PathBuf,
    dest: PathBuf,
    file: File,
    /// The temporary file's registration, in a referenced output.
    reference: Option<RefId>,
    /// Held while writing: one writer per file, waiting in this process rather
    /// than spinning on the file's lock in the kernel.
    writing: Mutex<()>,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AssembleError + '_ {
    move |source| AssembleError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A chunk store failure about the file at `path`.
fn chunk_at(path: &Path) -> impl FnOnce(ChunkError) -> AssembleError + '_ {
    move |source| AssembleError::Chunk {
        path: path.display().to_string(),
        source,
    }
}

impl Output {
    /// Creates the temporary files (pre-sized) for `files` under `out_dir`, after
    /// checking that each can take its place (see [`OutputOptions`]). Keeps one
    /// descriptor per file open, so callers should bound the number of files.
    pub fn create(
        files: &[FileEntry],
        out_dir: &Path,
        options: OutputOptions,
    ) -> Result<Self, AssembleError> {
        Self::create_from(files, out_dir, options, &[])
    }

    /// [`Output::create`], starting file `i` from `bases[i]` when given: an earlier
    /// version on disk that the caller vouches holds exactly its entry's bytes (it
    /// may be the destination itself, which may then be replaced without
    /// `overwrite`). Its bytes are cloned or copied in the kernel (see [`reuse`]),
    /// and only the chunks it lacks are left to write.
    pub fn create_from(
        files: &[FileEntry],
        out_dir: &Path,
        options: OutputOptions,
        bases: &[Option<Base>],
    ) -> Result<Self, AssembleError> {
        Self::build(files, out_dir, options, bases, None, false)
    }

    /// [`Output::create_from`] for a node whose `store` may have recorded chunks
    /// in the temporary files (an interrupted [`Output::create_referenced`] output
    /// into the same directory): those records are dropped before the files are
    /// written over.
    pub fn create_over(
        files: &[FileEntry],
        out_dir: &Path,
        options: OutputOptions,
        bases: &[Option<Base>],
        store: &ChunkStore,
    ) -> Result<Self, AssembleError> {
        Self::build(files, out_dir, options, bases, Some(store), false)
    }

    /// [`Output::create_from`], with the files registered in `store`, so that
    /// [`Output::write_referenced`] records each chunk as a range of the file it
    /// was written to: the output is the only copy, every byte written once. The
    /// temporary files are kept when the output is not committed, and a file an
    /// earlier uncommitted output left (with no base given for it) is resumed: the
    /// chunks recorded in it that still verify where the entry needs them stay,
    /// held in the store, and are not written again (see [`partial`]).
    pub fn create_referenced(
        files: &[FileEntry],
        out_dir: &Path,
        options: OutputOptions,
        bases: &[Option<Base>],
        store: &ChunkStore,
    ) -> Result<Self, AssembleError> {
        Self::build(files, out_dir, options, bases, Some(store), true)
    }

    fn build(
        files: &[FileEntry],
        out_dir: &Path,
        options: OutputOptions,
        bases: &[Option<Base>],
        store: Option<&ChunkStore>,
        referenced: bool,
    ) -> Result<Self, AssembleError> {
        check_destinations(files, out_dir, options.overwrite, bases)?;
        let mut out = Output {
            files: Vec::with_capacity(files.len()),
            places: HashMap::new(),
            reuse: Reuse::default(),
            resumed: 0,
            referenced,
            committed: AtomicBool::new(false),
        };
        for (i, f) in files.iter().enumerate() {
            let base = bases.get(i).and_then(Option::as_ref);
            let in_place = out.open(i, f, out_dir, options, base, store)?;
            let mut offset = 0u64;
            for (j, c) in f.chunks.iter().enumerate() {
                if !in_place.get(j).copied().unwrap_or(false) {
                    out.places.entry(c.hash).or_default().push((i, offset));
                }
                offset += u64::from(c.len);
            }
        }
        Ok(out)
    }

    /// Opens (and locks) file `i`'s temporary file and sizes it, started from its
    /// base or, in a referenced output, from what an earlier attempt left (with a
    /// `store` and not referenced, what the store recorded there is dropped);
    /// returns per chunk whether its bytes are already in place.
    fn open(
        &mut self,
        i: usize,
        f: &FileEntry,
        out_dir: &Path,
        options: OutputOptions,
        base: Option<&Base>,
        store: Option<&ChunkStore>,
    ) -> Result<Vec<bool>, AssembleError> {
        if !is_safe_relative_path(&f.path) {
            return Err(AssembleError::UnsafePath(f.path.clone()));
        }
        let dest = out_dir.join(&f.path);
        let dir = dest.parent().unwrap_or(out_dir);
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        // A short name of its own (the file's index): a name of 250 bytes has no
        // room for a prefix and suffix within the 255 a name may have.
        let tmp = dir.join(format!(".mesh-partial-{i}"));
        let mode = if options.private { 0o600 } else { 0o666 };
        // Not truncated before it is locked: it may be another fetch's file.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode)
            .open(&tmp)
            .map_err(io_at(&tmp))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(AssembleError::Busy(dest)),
            Err(fs::TryLockError::Error(e)) => return Err(io_at(&tmp)(e)),
        }
        if options.private {
            // A leftover temp file keeps its old mode: set it.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io_at(&tmp))?;
        }
        let kept = match store {
            Some(store) => {
                let at = fs::canonicalize(&tmp).map_err(io_at(&tmp))?;
                let keep = self.referenced && base.is_none();
                partial::reclaim(store, &at, &file, f, keep).map_err(chunk_at(&tmp))?
            }
            None => partial::Reclaimed::default(),
        };
        if kept.bytes == 0 {
            file.set_len(0).map_err(io_at(&tmp))?;
        }
        // Registered before sizing, so a failure below still removes it.
        self.files.push(OutFile {
            tmp: tmp.clone(),
            dest,
            file,
            reference: None,
            writing: Mutex::new(()),
        });
        let out = &mut self.files[i];
        let in_place = match base {
            Some(base) => {
                let (done, reuse) = reuse::seed(base, &out.file, f).map_err(io_at(&tmp))?;
                self.reuse.add(reuse);
                done
            }
            None => {
                out.file.set_len(f.size).map_err(io_at(&tmp))?;
                self.resumed += kept.bytes;
                kept.done
            }
        };
        if let Some(store) = store.filter(|_| self.referenced) {
            out.reference = Some(store.reference(&tmp).map_err(chunk_at(&tmp))?);
        }
        Ok(in_place)
    }

    /// Writes a chunk's (already verified) bytes at every offset where it occurs.
    /// A chunk the files do not contain is ignored.
    pub fn write_chunk(&self, hash: &Hash, data: &[u8]) -> Result<(), AssembleError> {
        use std::os::unix::fs::FileExt;
        for &(i, offset) in self.places.get(hash).map(Vec::as_slice).unwrap_or_default() {
            let f = &self.files[i];
            let _one_writer = f
                .writing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f.file.write_all_at(data, offset).map_err(io_at(&f.tmp))?;
        }
        Ok(())
    }

    /// [`Output::write_chunk`], then, in a referenced output, records the chunk in
    /// `store` as the range of the file it was first written to (with its CRC-32):
    /// from then on the store holds it there, and an interrupted fetch keeps it.
    pub fn write_referenced(
        &self,
        store: &ChunkStore,
        c: &ChunkRef,
        data: &[u8],
    ) -> Result<(), AssembleError> {
        self.write_chunk(&c.hash, data)?;
        let Some(&(i, offset)) = self.places.get(&c.hash).and_then(|p| p.first()) else {
            return Ok(());
        };
        let f = &self.files[i];
        if let Some(id) = f.reference {
            store
                .put_ref(&c.hash, id, offset, c.len, Some(crc32fast::hash(data)))
                .map_err(chunk_at(&f.dest))?;
        }
        Ok(())
    }

    /// Reads `chunks` from the store, verifying each, and writes them in place.
    pub fn fill_from_store<'a>(
        &self,
        store: &ChunkStore,
        chunks: impl IntoIterator<Item = &'a Hash>,
    ) -> Result<(), AssembleError> {
        let mut done = HashSet::new();
        let mut in_place = Vec::new();
        for hash in chunks {
            if !done.insert(*hash) {
                continue;
            }
            if !self.places.contains_key(hash) {
                in_place.push(*hash);
                continue;
            }
            let data = store
                .get_verified(hash, u64::from(MAX_CHUNK_LEN))
                .map_err(|source| AssembleError::Chunk {
                    path: self.path_of(hash),
                    source,
                })?;
            self.write_chunk(hash, &data)?;
        }
        // Chunks already in place (from a base) are still read and checked, so the
        // store is never taken as whole unchecked, but not written again: on every
        // core, as nothing else waits on them.
        check_in_parallel(store, &in_place)
    }

    /// What the files' bases provided (nothing without bases).
    pub fn reuse(&self) -> Reuse {
        self.reuse
    }

    /// Bytes an interrupted fetch had already written in place and that were kept
    /// (see [`Output::create_referenced`]).
    pub fn resumed(&self) -> u64 {
        self.resumed
    }

    /// The final paths of the files, in the order of the entries.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|f| f.dest.as_path())
    }

    fn path_of(&self, hash: &Hash) -> String {
        self.places
            .get(hash)
            .and_then(|p| p.first())
            .map(|(i, _)| self.files[*i].dest.display().to_string())
            .unwrap_or_default()
    }

    /// Removes the temporary files now, for a fetch that failed while chunk writes
    /// may still be in flight on other threads (they land in the unlinked files);
    /// a referenced output keeps them, for the next attempt. Nothing can be
    /// committed afterwards.
    pub fn abandon(&self) {
        if !self.committed.swap(true, Ordering::AcqRel) && !self.referenced {
            for f in &self.files {
                let _ = fs::remove_file(&f.tmp);
            }
        }
    }

    /// Starts writing back what was written so far (`sync_file_range`, not
    /// waiting), so that [`Output::commit`]'s sync finds little left; callable
    /// while chunks are still being written from other threads.
    pub fn start_writeback(&self) -> Result<(), AssembleError> {
        for f in &self.files {
            crate::sys::start_writeback(&f.file).map_err(io_at(&f.tmp))?;
        }
        Ok(())
    }

    /// Syncs every file and renames it to its final name; returns the bytes written.
    pub fn commit(&self) -> Result<u64, AssembleError> {
        if self.committed.load(Ordering::Acquire) {
            return Err(AssembleError::Io {
                path: self
                    .files
                    .first()
                    .map(|f| f.dest.clone())
                    .unwrap_or_default(),
                source: io::Error::other("the output was abandoned or committed already"),
            });
        }
        let mut written = 0;
        for f in &self.files {
            f.file.sync_all().map_err(io_at(&f.tmp))?;
            written += f.file.metadata().map_err(io_at(&f.tmp))?.len();
        }
        for f in &self.files {
            fs::rename(&f.tmp, &f.dest).map_err(io_at(&f.dest))?;
        }
        self.committed.store(true, Ordering::Release);
        Ok(written)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.committed.load(Ordering::Acquire) && !self.referenced {
            for f in &self.files {
                let _ = fs::remove_file(&f.tmp);
            }
        }
    }
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
        write_files(&files, &store, &out, OutputOptions::default(), &[]).unwrap();
        assert_eq!(fs::read(out.join("d/out.bin")).unwrap(), data);

        let at = store.locate(&c.chunks[1].hash).unwrap();
        let pack = fs::OpenOptions::new().write(true).open(&at.path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&pack, b"garbage", at.offset).unwrap();
        assert!(verify_files(&files, &store).is_err());
        let out2 = dir.path().join("out2");
        assert!(write_files(&files, &store, &out2, OutputOptions::default(), &[]).is_err());
        assert!(!out2.join("d/out.bin").exists());
        assert!(!out2.join("d/.mesh-partial-0").exists());
    }

    #[test]
    fn a_file_whose_name_takes_250_bytes_is_written_under_a_short_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = vec![7u8; 100];
        let name = format!("{}.csv", "n".repeat(246));
        let files = vec![FileEntry {
            path: format!("d/{name}"),
            size: 100,
            chunks: vec![mesh_protocol::manifest::ChunkRef {
                hash: Hash::of(&a),
                len: 100,
            }],
        }];
        let out = Output::create(&files, dir.path(), OutputOptions::default()).unwrap();
        out.write_chunk(&Hash::of(&a), &a).unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(dir.path().join("d").join(&name)).unwrap(), a);
    }

    #[test]
    fn abandoning_removes_the_partial_file_while_writers_still_hold_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = vec![1u8; 1000];
        let files = vec![FileEntry {
            path: "x.bin".into(),
            size: 1000,
            chunks: vec![mesh_protocol::manifest::ChunkRef {
                hash: Hash::of(&a),
                len: 1000,
            }],
        }];
        let out = std::sync::Arc::new(
            Output::create(&files, dir.path(), OutputOptions::default()).unwrap(),
        );
        let writer = out.clone(); // a batch still in flight elsewhere
        assert!(dir.path().join(".mesh-partial-0").exists());
        out.abandon();
        assert!(!dir.path().join(".mesh-partial-0").exists());
        writer.write_chunk(&Hash::of(&a), &a).unwrap();
        assert!(writer.commit().is_err(), "nothing commits after abandon");
        drop((out, writer));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn output_takes_chunks_in_any_order_and_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(&dir.path().join("chunks")).unwrap();
        let (a, b) = (vec![1u8; 1000], vec![2u8; 500]);
        let (ha, hb) = (Hash::of(&a), Hash::of(&b));
        let r = |hash, len| mesh_protocol::manifest::ChunkRef { hash, len };
        let files = vec![
            FileEntry {
                path: "x.bin".into(),
                size: 2500,
                chunks: vec![r(ha, 1000), r(hb, 500), r(ha, 1000)],
            },
            FileEntry {
                path: "empty".into(),
                size: 0,
                chunks: vec![],
            },
        ];
        let out_dir = dir.path().join("out");
        let out = Output::create(&files, &out_dir, OutputOptions::default()).unwrap();
        assert!(!out_dir.join("x.bin").exists());
        out.write_chunk(&hb, &b).unwrap();
        store.put(&a).unwrap();
        out.fill_from_store(&store, [&ha]).unwrap();
        assert_eq!(out.commit().unwrap(), 2500);
        let expect = [a.clone(), b, a].concat();
        assert_eq!(fs::read(out_dir.join("x.bin")).unwrap(), expect);
        assert_eq!(fs::read(out_dir.join("empty")).unwrap(), b"");

        // Dropped before commit: nothing under a final name, no temp left.
        let out_dir2 = dir.path().join("out2");
        drop(Output::create(&files, &out_dir2, OutputOptions::default()).unwrap());
        assert_eq!(fs::read_dir(&out_dir2).unwrap().count(), 0);
    }

    #[test]
    fn a_referenced_output_is_the_only_copy_and_an_interrupted_one_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let publisher = ChunkStore::open(&dir.path().join("publisher")).unwrap();
        let src = dir.path().join("src.bin");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
        fs::write(&src, &data).unwrap();
        let chunks = chunk_file(&src, &publisher).unwrap().chunks;
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        let bytes = |c: &ChunkRef| publisher.get_verified(&c.hash, 1 << 30).unwrap();
        let files = vec![FileEntry {
            path: "d/out.bin".into(),
            size: data.len() as u64,
            chunks: chunks.clone(),
        }];
        let store = ChunkStore::open(&dir.path().join("consumer")).unwrap();
        let out_dir = dir.path().join("out");
        let open =
            || Output::create_referenced(&files, &out_dir, OutputOptions::default(), &[], &store);
        let partial = out_dir.join("d/.mesh-partial-0");

        // Two chunks land; the store holds them in the partial file, not in a pack.
        let out = open().unwrap();
        assert!(matches!(open(), Err(AssembleError::Busy(_))), "one writer");
        for c in &chunks[..2] {
            out.write_referenced(&store, c, &bytes(c)).unwrap();
        }
        assert!(store.is_referenced(&chunks[0].hash) && store.is_referenced(&chunks[1].hash));
        assert_eq!(
            store.get_verified(&chunks[0].hash, 1 << 30).unwrap(),
            bytes(&chunks[0])
        );
        // Interrupted, with the second chunk's bytes lost (a power loss).
        out.abandon();
        drop(out);
        let at = u64::from(chunks[0].len);
        let f = OpenOptions::new().write(true).open(&partial).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"lost", at).unwrap();

        // Resumed: the first chunk is kept and not written again; the lost one
        // is dropped from the store, to be fetched again.
        let out = open().unwrap();
        assert_eq!(out.resumed(), at);
        assert!(store.has(&chunks[0].hash));
        assert!(!store.has(&chunks[1].hash));
        let kept_place = out.places.get(&chunks[0].hash);
        assert!(
            !kept_place.is_some_and(|p| p.contains(&(0, 0))),
            "not written again"
        );
        out.fill_from_store(&store, [&chunks[0].hash]).unwrap();
        for c in &chunks[1..] {
            out.write_referenced(&store, c, &bytes(c)).unwrap();
        }
        out.commit().unwrap();
        let dest = out_dir.join("d/out.bin");
        assert_eq!(fs::read(&dest).unwrap(), data);
        // The store's records move to the final name.
        store.reference_file(&dest, &chunks).unwrap();
        store.sync().unwrap();
        drop(store);
        let store = ChunkStore::open(&dir.path().join("consumer")).unwrap();
        for c in &chunks {
            assert_eq!(store.get_verified(&c.hash, 1 << 30).unwrap(), bytes(c));
            assert_eq!(
                store.locate(&c.hash).unwrap().path,
                fs::canonicalize(&dest).unwrap()
            );
        }
        let packed: u64 = fs::read_dir(dir.path().join("consumer/packs"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(packed, 0, "every byte written once, into the output");
        assert!(!partial.exists());
    }

    /// Two files of a product, stored.
    fn product(dir: &Path) -> (ChunkStore, Vec<FileEntry>) {
        let store = ChunkStore::open(&dir.join("chunks")).unwrap();
        let mut files = Vec::new();
        for (name, bytes) in [("a.csv", &b"alpha"[..]), ("sub/b.csv", &b"beta"[..])] {
            let (hash, _) = store.put(bytes).unwrap();
            files.push(FileEntry {
                path: name.into(),
                size: bytes.len() as u64,
                chunks: vec![mesh_protocol::manifest::ChunkRef {
                    hash,
                    len: bytes.len() as u32,
                }],
            });
        }
        (store, files)
    }

    #[test]
    fn someone_elses_file_is_never_replaced_silently_and_the_product_lands_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (store, files) = product(dir.path());
        let out = dir.path().join("out");
        fs::create_dir_all(out.join("sub")).unwrap();
        fs::write(out.join("sub/b.csv"), b"mine").unwrap();
        let err = write_files(&files, &store, &out, OutputOptions::default(), &[]).unwrap_err();
        assert!(matches!(err, AssembleError::Exists(_)), "{err}");
        assert!(!out.join("a.csv").exists(), "nothing written");
        assert_eq!(fs::read(out.join("sub/b.csv")).unwrap(), b"mine");
        // A directory where a file goes: refused up front, whatever --force says.
        fs::remove_file(out.join("sub/b.csv")).unwrap();
        fs::create_dir(out.join("sub/b.csv")).unwrap();
        let force = OutputOptions {
            overwrite: true,
            ..OutputOptions::default()
        };
        let err = write_files(&files, &store, &out, force, &[]).unwrap_err();
        assert!(matches!(err, AssembleError::InTheWay(_)), "{err}");
        assert!(!out.join("a.csv").exists(), "nothing written");
        let leftovers: Vec<_> = fs::read_dir(&out).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
        // With the way clear: written; again: an identical file is fine; a changed
        // one needs --force.
        fs::remove_dir(out.join("sub/b.csv")).unwrap();
        write_files(&files, &store, &out, OutputOptions::default(), &[]).unwrap();
        write_files(&files, &store, &out, OutputOptions::default(), &[]).unwrap();
        fs::write(out.join("a.csv"), b"edited").unwrap();
        assert!(write_files(&files, &store, &out, OutputOptions::default(), &[]).is_err());
        write_files(&files, &store, &out, force, &[]).unwrap();
        assert_eq!(fs::read(out.join("a.csv")).unwrap(), b"alpha");
    }

    #[test]
    fn private_output_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (store, files) = product(dir.path());
        let out = dir.path().join("out");
        let private = OutputOptions {
            private: true,
            ..OutputOptions::default()
        };
        write_files(&files, &store, &out, private, &[]).unwrap();
        for f in ["a.csv", "sub/b.csv"] {
            let mode = fs::metadata(out.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{f}: {mode:o}");
        }
        let packs = dir.path().join("chunks/packs");
        for e in fs::read_dir(packs).unwrap() {
            let mode = e.unwrap().metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "pack files are private: {mode:o}");
        }
    }
}
