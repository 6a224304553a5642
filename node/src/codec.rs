//! The `/mesh/transfer/1` stream codec: one request and one response per stream, each
//! a 4-byte big-endian length then a canonical frame body. The length is checked
//! against the cap for its direction before anything is allocated, so a hostile peer
//! cannot make us buffer more than the cap.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use mesh_protocol::wire::{self, Request, Response, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};

/// The transfer protocol name.
pub const TRANSFER_PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/transfer/1");

/// The request-response codec for [`TRANSFER_PROTOCOL`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TransferCodec;

/// Reads one length-prefixed frame of at most `cap` bytes.
pub async fn read_frame<T: AsyncRead + Unpin>(io: &mut T, cap: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the cap of {cap}"),
        ));
    }
    // Allocated in full: `cap` bounds it, and one exact read avoids the regrowth
    // copies that dominated large frames.
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("frame truncated: fewer than {len} bytes"),
            )
        } else {
            e
        }
    })?;
    Ok(buf)
}

/// Writes one length-prefixed frame.
pub async fn write_frame<T: AsyncWrite + Unpin>(io: &mut T, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(body).await?;
    io.flush().await
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
        let body = read_frame(io, MAX_RESPONSE_BYTES).await?;
        wire::decode_response(&body).map_err(invalid)
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
        write_frame(io, &wire::encode_response(&res)).await?;
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
}
