//! An object's bytes as a GET streams them, read by a blocking thread: what
//! publishing from a bucket cuts into chunks and checks against the contract
//! without a local copy. The GET runs on the object source's runtime and hands
//! its pieces over a bounded queue, so memory stays at a few pieces whatever the
//! object's size.

use std::io::{self, Read};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Pieces the GET may get ahead of the reader.
pub(crate) const AHEAD: usize = 16;

/// What the GET hands the reader.
#[derive(Debug)]
pub(crate) enum Piece {
    /// The next bytes.
    Data(Bytes),
    /// The object's last byte was handed over.
    End,
    /// The read failed.
    Failed(io::Error),
}

/// A blocking reader of an object as a GET streams it (see
/// `ObjectSource::stream`). An object that ends before the GET says it did, or a
/// GET that stops, is an error, never a short read taken for the whole object.
/// Read it from a thread outside any async runtime's workers (a blocking thread).
#[derive(Debug)]
pub struct ObjectStream {
    pieces: mpsc::Receiver<Piece>,
    current: Bytes,
    ended: bool,
    /// What errors call the object (`s3://bucket/key`).
    name: String,
}

impl ObjectStream {
    /// A reader of what is sent on the other end of `pieces`.
    pub(crate) fn new(pieces: mpsc::Receiver<Piece>, name: String) -> Self {
        ObjectStream {
            pieces,
            current: Bytes::new(),
            ended: false,
            name,
        }
    }
}

impl Read for ObjectStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() && !self.ended {
            match self.pieces.blocking_recv() {
                Some(Piece::Data(b)) => self.current = b,
                Some(Piece::End) => self.ended = true,
                Some(Piece::Failed(e)) => return Err(e),
                None => {
                    return Err(io::Error::other(format!(
                        "reading {}: the transfer stopped before the object's end",
                        self.name
                    )))
                }
            }
        }
        let n = self.current.len().min(buf.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}
