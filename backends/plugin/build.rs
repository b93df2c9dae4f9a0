//! Compiles the plugin contract with protox (pure Rust), as the daemon's build does, so
//! building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/vaultbridge/plugin/v1/backend.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../../proto"])?;
    tonic_prost_build::configure()
        // Carries values: a hand-written, redacting Debug (src/proto.rs).
        .skip_debug(["vaultbridge.plugin.v1.FetchResponse"])
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
