//! The protobuf codec of the daemon's own services: prost's, except that a request
//! that does not decode is the caller's mistake (INVALID_ARGUMENT), not INTERNAL, which
//! the README keeps for the daemon's bugs. tonic-prost answers INTERNAL, following
//! grpc's status-code guide; the code comes from `status::undecodable`.
//!
//! The generated clients share it (tonic-prost-build sets one codec per build), so a
//! corrupt answer reaches `vaultbridge get` as INVALID_ARGUMENT too; the CLI prints the
//! message either way.

use prost::Message;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

#[derive(Debug, Clone)]
pub(crate) struct StrictCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(PhantomData)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StrictDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(crate::status::undecodable)
    }
}
