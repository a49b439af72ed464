//! Link settings of the `weft-proxy` binary that keep a sidecar's resident code small.
//!
//! A sidecar's resident memory is mostly its code, and the kernel maps code in 64 KiB runs around
//! each page a process touches: with the functions a sidecar runs scattered over the whole text,
//! nearly all of it was resident. `code-order.txt` lists those functions (recorded from running
//! sidecars by `tests/bench/code_order.sh`, hottest first); the linker places them first and
//! together. A function missing from the list (new code, or a dependency whose symbol names
//! changed) is placed after them as before: the list going stale costs memory, never correctness.
//! Symbol names carry hashes of the dependencies' versions and features, which depend on how the
//! build is invoked: the list is recorded from the binary `scripts/release-build` makes, as the
//! image and the benchmarks build it.
//!
//! Relative relocations are packed (`-z pack-relative-relocs`, DT_RELR): a position-independent
//! executable is relocated at start, and its table of plain relocations (a third of a megabyte)
//! was read whole into every sidecar's memory; packed, it is a few kilobytes. Only the dynamic
//! loader of glibc 2.36 or later reads them (the container image is Debian 12's, glibc 2.36),
//! and a binary with them does not start on an older one: they are packed only when the glibc
//! the build links against (`getconf GNU_LIBC_VERSION`) is 2.36 or later.
//!
//! Only for x86-64 Linux with glibc, whose Rust toolchain links with LLD by default (LLD knows
//! `--symbol-ordering-file`; GNU ld does not).

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = format!("{manifest_dir}/code-order.txt");
    println!("cargo:rerun-if-changed=code-order.txt");
    println!("cargo:rerun-if-changed=build.rs");
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && target("CARGO_CFG_TARGET_OS") == "linux"
        && target("CARGO_CFG_TARGET_ENV") == "gnu"
    {
        println!("cargo:rustc-link-arg-bin=weft-proxy=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-link-arg-bin=weft-proxy=-Wl,--no-warn-symbol-ordering");
        if glibc_reads_packed_relocations() {
            println!("cargo:rustc-link-arg-bin=weft-proxy=-Wl,-z,pack-relative-relocs");
        }
    }
}

/// Whether this machine's glibc is 2.36 or later (`getconf` prints `glibc 2.36`).
fn glibc_reads_packed_relocations() -> bool {
    let Ok(out) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().strip_prefix("glibc ").unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
