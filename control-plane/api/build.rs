//! Compiles `proto/*.proto` with protox, a protobuf compiler written in Rust, so that building
//! weft needs nothing but cargo (no `protoc` on the machine).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/weft/identity/v1/identity.proto",
        "proto/weft/discovery/v1/discovery.proto",
        "proto/weft/policy/v1/policy.proto",
        "proto/weft/policy/v1/server.proto",
        "proto/weft/policy/v1/routes.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
