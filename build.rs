//! Compiles the gRPC contract with protox (pure Rust), so building needs no system
//! `protoc`, and keeps the descriptor set for server reflection.

#[allow(
    clippy::disallowed_methods,
    reason = "cargo hands a build script its settings in variables"
)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/vaultbridge/v1/secrets.proto",
        "proto/vaultbridge/v1/jira.proto",
        "proto/vaultbridge/v1/admin.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("vaultbridge_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        // Messages that carry values get a hand-written, redacting Debug (src/proto.rs).
        .skip_debug([
            "vaultbridge.v1.Secret",
            "vaultbridge.v1.GetCredentialsResponse",
        ])
        // Undecodable requests are INVALID_ARGUMENT, not tonic-prost's INTERNAL
        // (src/codec.rs).
        .codec_path("crate::codec::StrictCodec")
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
