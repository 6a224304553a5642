//! What a publish reads ([`Found`]): files on this machine, or objects in a
//! bucket (`ops/publish_objects.rs`) that it reads where they are, with no local
//! copy: the contract checker streams a text object and reads a Parquet one by
//! ranges ([`ObjectFile`]), and the chunker cuts each object as a GET streams it.
//! Every read is conditional on the ETag the listing gave, so the bytes checked,
//! the bytes chunked and the bytes later served are the same object's.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use mesh_contract::quality::{Place, Remote};
use mesh_storage::chunker::{
    chunk_file_in_place, chunk_file_tracked, chunk_object_in_place, chunk_stream_tracked,
    ChunkedFile,
};
use mesh_storage::objects::ObjectSource;
use mesh_storage::{ChunkError, ChunkStore, RemoteError, RemoteSource};

/// An object to publish, as its bucket listed it.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// Its path in the product.
    pub(crate) rel: String,
    /// `mesh_storage::objects::source_of` it: bucket, key and the listed ETag.
    pub(crate) source: String,
    /// Its size in bytes, as listed.
    pub(crate) size: u64,
}

/// What a publish reads.
#[derive(Debug)]
pub(crate) enum Found {
    /// `(relative path, full path)` of each file.
    Files(Vec<(String, PathBuf)>),
    /// Objects in a bucket, and what reads them.
    Objects {
        /// Each object, in path order.
        objects: Vec<Listed>,
        /// Reads them (conditional on each one's ETag).
        reader: Arc<ObjectSource>,
    },
}

impl Found {
    /// `(relative path, place)` of each file, for the contract checker.
    pub(crate) fn places(&self) -> Vec<(String, Place)> {
        match self {
            Found::Files(files) => files
                .iter()
                .map(|(rel, full)| (rel.clone(), Place::Local(full.clone())))
                .collect(),
            Found::Objects { objects, reader } => objects
                .iter()
                .map(|o| {
                    let file = ObjectFile {
                        reader: reader.clone(),
                        source: o.source.clone(),
                        size: o.size,
                    };
                    (o.rel.clone(), Place::Remote(Arc::new(file)))
                })
                .collect(),
        }
    }

    /// Chunks each file into `store` (copied, or in place recorded as ranges of
    /// the file or object) in order, giving each outcome with its relative path
    /// to `each`; every chunk stored is pushed onto `written`.
    pub(crate) fn chunk(
        &self,
        store: &ChunkStore,
        in_place: bool,
        written: &mut Vec<mesh_protocol::Hash>,
        mut each: impl FnMut(&str, ChunkedFile),
    ) -> Result<(), ChunkError> {
        match self {
            Found::Files(files) => {
                for (rel, full) in files {
                    let c = if in_place {
                        chunk_file_in_place(full, store, written)?
                    } else {
                        chunk_file_tracked(full, store, written)?
                    };
                    each(rel, c);
                }
            }
            Found::Objects { objects, reader } => {
                for o in objects {
                    let name = o.source.lines().next().unwrap_or_default();
                    let stream = reader.stream(&o.source).map_err(|e| ChunkError::Io {
                        path: PathBuf::from(name),
                        source: io::Error::other(e.to_string()),
                    })?;
                    let c = if in_place {
                        chunk_object_in_place(stream, &o.source, store, written)?
                    } else {
                        chunk_stream_tracked(stream, name, store, written)?
                    };
                    each(&o.rel, c);
                }
            }
        }
        Ok(())
    }
}

/// An object as the contract checker reads it, where it is.
struct ObjectFile {
    reader: Arc<ObjectSource>,
    source: String,
    size: u64,
}

impl Remote for ObjectFile {
    fn len(&self) -> u64 {
        self.size
    }

    fn stream(&self) -> io::Result<Box<dyn Read + Send>> {
        let stream = self
            .reader
            .stream(&self.source)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Box::new(stream))
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let len = u32::try_from(len).map_err(|_| io::Error::other("a read of 4 GiB or more"))?;
        self.reader
            .read_at(&self.source, offset, len)
            .map_err(|e| match e {
                RemoteError::Changed(why) => io::Error::other(format!(
                    "{} changed while it was being published ({why}); publish it again",
                    self.source.lines().next().unwrap_or_default()
                )),
                RemoteError::Failed(why) => io::Error::other(why),
            })
    }
}
