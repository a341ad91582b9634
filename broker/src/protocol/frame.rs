//! Length-prefixed frames over any async byte stream (madsim or real TCP).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame we accept, as Kafka's `socket.request.max.bytes` default
/// (100 MiB). A larger size prefix is a protocol error: the connection closes.
pub const MAX_FRAME_BYTES: usize = 104_857_600;

/// Reads one frame. `Ok(None)` on a clean end of stream before a size prefix.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Bytes>> {
    let mut size_buf = [0u8; 4];
    match r.read_exact(&mut size_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 || size as usize > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame size {size} outside 0..={MAX_FRAME_BYTES}"),
        ));
    }
    let mut body = BytesMut::zeroed(size as usize);
    r.read_exact(&mut body).await?;
    Ok(Some(body.freeze()))
}

/// Writes one frame and flushes (madsim TCP sends nothing until flush).
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    assert!(body.len() <= MAX_FRAME_BYTES, "frame too large to send: {}", body.len());
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as i32).to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf).await?;
    w.flush().await
}
