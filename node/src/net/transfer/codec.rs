//! The `/mesh/transfer/1` stream codec: one request and one response per stream, each
//! a 4-byte big-endian length then a canonical frame body. The length is checked
//! against the cap for its direction before anything is allocated, so a hostile peer
//! cannot make us buffer more than the cap.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use super::buffers::CHUNK_BUFFERS;
use mesh_protocol::wire::{
    self, ChunkData, Request, Response, MAX_BATCH_CHUNKS, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES,
};

/// The transfer protocol name.
pub(crate) const TRANSFER_PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/transfer/1");

/// Frames up to this size are allocated in full before reading: a chunk batch.
const EXACT_READ_LIMIT: usize = mesh_protocol::wire::MAX_BATCH_BYTES as usize + 64 * 1024;

/// The request-response codec for [`TRANSFER_PROTOCOL`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TransferCodec;

/// Reads one length-prefixed frame of at most `cap` bytes.
pub(crate) async fn read_frame<T: AsyncRead + Unpin>(
    io: &mut T,
    cap: usize,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the cap of {cap}"),
        ));
    }
    // Chunk-sized frames are allocated in full and read in one go (regrowing cost
    // copies that showed in profiles); larger ones (manifests) grow as bytes arrive,
    // so a peer that claims a big frame and sends nothing costs us little.
    let mut buf = if len <= EXACT_READ_LIMIT {
        let mut buf = vec![0u8; len];
        match io.read_exact(&mut buf).await {
            Ok(()) => return Ok(buf),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Vec::new(),
            Err(e) => return Err(e),
        }
    } else {
        let mut buf = Vec::with_capacity(64 * 1024);
        io.take(len as u64).read_to_end(&mut buf).await?;
        buf
    };
    if buf.len() != len {
        buf.clear();
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame truncated: fewer than {len} bytes"),
        ));
    }
    Ok(buf)
}

/// Writes one length-prefixed frame.
pub(crate) async fn write_frame<T: AsyncWrite + Unpin>(io: &mut T, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(body).await?;
    io.flush().await
}

/// The body prefix of a `Response::Chunks` frame.
static CHUNKS_PREFIX: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(wire::chunks_prefix);

/// Writes a `Response::Chunks` frame straight from the chunk buffers (the bytes are
/// exactly `write_frame(encode_response(..))`'s, without building the frame first).
async fn write_chunks<T: AsyncWrite + Unpin>(io: &mut T, data: &[ChunkData]) -> io::Result<()> {
    let mut head = CHUNKS_PREFIX.clone();
    wire::put_varint(data.len() as u64, &mut head);
    let mut lens = Vec::with_capacity(data.len());
    let mut total = head.len();
    for d in data {
        let mut l = Vec::with_capacity(9);
        wire::put_varint(d.0.len() as u64, &mut l);
        total += l.len() + d.0.len();
        lens.push(l);
    }
    let total = u32::try_from(total)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&total.to_be_bytes()).await?;
    io.write_all(&head).await?;
    for (l, d) in lens.iter().zip(data) {
        io.write_all(l).await?;
        io.write_all(&d.0).await?;
    }
    io.flush().await
}

/// Reads a response frame. `Response::Chunks`, the bulk of all traffic, is decoded as
/// it streams in, each chunk read straight into its own buffer; anything else is read
/// whole and decoded. Every length is checked against what remains of the frame
/// before anything is allocated.
pub(crate) async fn read_response<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Response> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_RESPONSE_BYTES {
        return Err(invalid(format!(
            "frame of {len} bytes exceeds the cap of {MAX_RESPONSE_BYTES}"
        )));
    }
    let prefix = CHUNKS_PREFIX.as_slice();
    let mut head = vec![0u8; prefix.len().min(len)];
    io.read_exact(&mut head).await?;
    if head != prefix {
        let mut rest = io.take((len - head.len()) as u64);
        let mut body = head;
        rest.read_to_end(&mut body).await?;
        if body.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("frame truncated: fewer than {len} bytes"),
            ));
        }
        return wire::decode_response(&body).map_err(invalid);
    }
    let mut left = len - head.len();
    let count = read_varint(io, &mut left).await?;
    if count > MAX_BATCH_CHUNKS as u64 {
        return Err(invalid(format!(
            "a chunk batch of {count} chunks exceeds the limit of {MAX_BATCH_CHUNKS}"
        )));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let n = read_varint(io, &mut left).await?;
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= left)
            .ok_or_else(|| invalid("a chunk is longer than the rest of its frame"))?;
        // Every byte is read into (or the batch fails): earlier contents never pass.
        let mut buf = CHUNK_BUFFERS.take(n);
        io.read_exact(&mut buf).await?;
        left -= n;
        out.push(ChunkData(buf));
    }
    if left != 0 {
        return Err(invalid(format!(
            "{left} trailing bytes after a chunk batch"
        )));
    }
    Ok(Response::Chunks(out))
}

/// Reads one canonical varint, counting its bytes against `left`.
async fn read_varint<T: AsyncRead + Unpin>(io: &mut T, left: &mut usize) -> io::Result<u64> {
    let truncated = || invalid("frame ends inside an integer");
    let mut first = [0u8; 1];
    *left = left.checked_sub(1).ok_or_else(truncated)?;
    io.read_exact(&mut first).await?;
    let tail_len = wire::varint_tail_len(first[0]).ok_or_else(|| invalid("bad integer marker"))?;
    *left = left.checked_sub(tail_len).ok_or_else(truncated)?;
    let mut tail = [0u8; 8];
    io.read_exact(&mut tail[..tail_len]).await?;
    wire::get_varint(first[0], &tail[..tail_len]).ok_or_else(|| invalid("non-canonical integer"))
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl libp2p::request_response::Codec for TransferCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_frame(io, MAX_REQUEST_BYTES).await?;
        wire::decode_request(&body).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_response(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &wire::encode_request(&req)).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match res {
            Response::Chunks(data) => write_chunks(io, &data).await?,
            other => write_frame(io, &wire::encode_response(&other)).await?,
        }
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[test]
    fn oversized_and_truncated_frames_are_refused() {
        futures::executor::block_on(async {
            let mut huge = Cursor::new(u32::MAX.to_be_bytes().to_vec());
            let err = read_frame(&mut huge, 1024).await.unwrap_err();
            assert!(err.to_string().contains("exceeds the cap"));

            let mut short = Cursor::new([0, 0, 0, 10, 1, 2].to_vec());
            assert_eq!(
                read_frame(&mut short, 1024).await.unwrap_err().kind(),
                io::ErrorKind::UnexpectedEof
            );

            let mut buf = Vec::new();
            write_frame(&mut buf, b"hello").await.unwrap();
            assert_eq!(
                read_frame(&mut Cursor::new(buf), 5).await.unwrap(),
                b"hello"
            );
        });
    }

    #[test]
    fn garbage_request_body_is_an_error_not_a_panic() {
        futures::executor::block_on(async {
            let mut buf = Vec::new();
            write_frame(&mut buf, &[0xFF; 100]).await.unwrap();
            let r = libp2p::request_response::Codec::read_request(
                &mut TransferCodec,
                &TRANSFER_PROTOCOL,
                &mut Cursor::new(buf),
            )
            .await;
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidData);
        });
    }

    #[test]
    fn streamed_chunk_frames_are_the_canonical_bytes_and_read_back() {
        futures::executor::block_on(async {
            let responses = [
                Response::Chunks(vec![ChunkData(vec![1; 70_000]), ChunkData(vec![2; 3])]),
                Response::Chunks(Vec::new()),
                Response::Chunk(vec![9; 10]),
                Response::NotFound,
            ];
            for r in responses {
                let mut streamed = Vec::new();
                match &r {
                    Response::Chunks(d) => write_chunks(&mut streamed, d).await.unwrap(),
                    other => write_frame(&mut streamed, &wire::encode_response(other))
                        .await
                        .unwrap(),
                }
                let mut whole = Vec::new();
                write_frame(&mut whole, &wire::encode_response(&r))
                    .await
                    .unwrap();
                assert_eq!(streamed, whole);
                assert_eq!(read_response(&mut Cursor::new(streamed)).await.unwrap(), r);
            }
        });
    }

    #[test]
    fn hostile_chunk_frames_are_refused_before_allocation() {
        futures::executor::block_on(async {
            let frame = |body: Vec<u8>| {
                let mut f = (body.len() as u32).to_be_bytes().to_vec();
                f.extend(body);
                f
            };
            let chunks = |rest: &[u8]| {
                let mut b = CHUNKS_PREFIX.clone();
                b.extend_from_slice(rest);
                b
            };
            // Too many chunks claimed.
            let err = read_response(&mut Cursor::new(frame(chunks(&[200]))))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("exceeds the limit"), "{err}");
            // A chunk claiming 4 GiB inside a tiny frame.
            let mut huge = chunks(&[1, 252]);
            huge.extend_from_slice(&u32::MAX.to_le_bytes());
            let err = read_response(&mut Cursor::new(frame(huge)))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("longer than the rest"), "{err}");
            // Trailing bytes, a non-canonical length, and a frame cut short.
            for body in [chunks(&[1, 1, 7, 0]), chunks(&[1, 251, 1, 0, 7])] {
                assert!(read_response(&mut Cursor::new(frame(body))).await.is_err());
            }
            let mut cut = frame(chunks(&[1, 5, 1, 2]));
            cut.truncate(cut.len() - 1);
            assert!(read_response(&mut Cursor::new(cut)).await.is_err());
        });
    }
}
