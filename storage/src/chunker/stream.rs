//! Cutting a stream (an object as a GET returns it) into chunks on one thread,
//! with FastCDC's own streaming cutter: the boundaries are those of cutting a
//! file of the same bytes ([`super::segments`] cuts exactly as one stream does),
//! so a product published from a bucket shares its chunks with the same data
//! published from a disk.

use std::io::{self, Read};

use mesh_protocol::Hash;

use super::segments::{Cut, AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};

/// Cuts the bytes `reader` gives into chunks and hashes them (and takes their
/// CRC-32 if `with_crc`), calling `take` with each chunk's bytes in order;
/// returns how many bytes there were. Stops at the first error, of reading
/// (given to `io`) or from `take`.
pub(super) fn cut_stream<E>(
    reader: impl Read,
    with_crc: bool,
    io: impl Fn(io::Error) -> E,
    mut take: impl FnMut(&[u8], &Cut) -> Result<(), E>,
) -> Result<u64, E> {
    let mut size = 0u64;
    for chunk in fastcdc::v2020::StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
        let chunk = chunk.map_err(|e| {
            io(match e {
                fastcdc::v2020::Error::IoError(e) => e,
                other => io::Error::other(other.to_string()),
            })
        })?;
        let data = &chunk.data;
        let cut = Cut {
            offset: chunk.offset,
            len: data.len() as u32,
            hash: Hash::of(data),
            crc: with_crc.then(|| crc32fast::hash(data)),
        };
        take(data, &cut)?;
        size += data.len() as u64;
    }
    Ok(size)
}
