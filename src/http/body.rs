//! The body of every answer: bytes, or a cached value's own bytes, read where the cache
//! keeps them.

use crate::resolver::CachedSecret;
use bytes::{Buf, Bytes};
use hyper::body::{Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// One answer's body, sent as one frame. A cached value is written from the cache
/// entry itself, which the body keeps alive until hyper has written it: no copy, no
/// wipe pass, and no allocation per answer (a `Bytes` owning the entry cost one).
/// Debug shows the length only: a body may be a secret.
pub(crate) struct Body(Option<Chunk>);

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let length = self.0.as_ref().map_or(0, Buf::remaining);
        write!(f, "Body({length} bytes)")
    }
}

/// What a [`Body`] sends; no Debug, since it may hold secret bytes.
pub(crate) enum Chunk {
    Bytes(Bytes),
    /// A cached value from `at` on.
    Cached {
        secret: Arc<CachedSecret>,
        at: usize,
    },
}

impl Body {
    pub(crate) fn bytes(bytes: Bytes) -> Self {
        Self::of(Chunk::Bytes(bytes))
    }

    pub(crate) fn cached(secret: Arc<CachedSecret>) -> Self {
        Self::of(Chunk::Cached { secret, at: 0 })
    }

    /// An empty chunk is no frame at all, as `http_body_util::Full` has it.
    fn of(chunk: Chunk) -> Self {
        Self(chunk.has_remaining().then_some(chunk))
    }
}

impl Buf for Chunk {
    fn remaining(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.remaining(),
            Self::Cached { secret, at } => secret.value.expose().len().saturating_sub(*at),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            Self::Bytes(bytes) => bytes.chunk(),
            Self::Cached { secret, at } => secret.value.expose().get(*at..).unwrap_or_default(),
        }
    }

    fn advance(&mut self, count: usize) {
        match self {
            Self::Bytes(bytes) => bytes.advance(count.min(bytes.remaining())),
            Self::Cached { secret, at } => {
                *at = at.saturating_add(count).min(secret.value.expose().len());
            }
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Chunk;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Chunk>, Infallible>>> {
        Poll::Ready(self.get_mut().0.take().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |chunk| chunk.remaining() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::body::Body as _;

    #[tokio::test]
    async fn a_body_sends_its_bytes_once_and_an_empty_one_nothing() {
        let body = Body::bytes(Bytes::from_static(b"value"));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let collected = body.collect().await.expect("infallible").to_bytes();
        assert_eq!(&collected[..], b"value");
        let empty = Body::bytes(Bytes::new());
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }

    #[test]
    fn debug_shows_the_length_not_the_bytes() {
        let body = Body::bytes(Bytes::from_static(b"s3cr3t-token"));
        assert_eq!(format!("{body:?}"), "Body(12 bytes)");
    }

    #[test]
    fn a_chunk_advances_within_its_bytes() {
        let mut chunk = Chunk::Bytes(Bytes::from_static(b"abcdef"));
        chunk.advance(2);
        assert_eq!(chunk.chunk(), b"cdef");
        chunk.advance(100);
        assert_eq!(chunk.remaining(), 0);
    }
}
