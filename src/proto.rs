//! Code generated from `proto/vaultbridge/v1/secrets.proto`.

#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("vaultbridge.v1");
}

/// The encoded descriptors of the vaultbridge protos, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vaultbridge_descriptor.bin"));
