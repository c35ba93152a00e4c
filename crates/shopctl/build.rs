//! Links a faster message-set lookup into librdkafka's mock cluster (see
//! `native/mock_msgset_find.c` for why).
//!
//! The replacement is compiled against the headers of the librdkafka that `rdkafka-sys` built
//! (its `DEP_RDKAFKA_ROOT`), and takes the original's place with the linker's `--wrap`, which
//! GNU ld and lld support on Linux. Elsewhere, or with librdkafka from the system, the
//! original lookup stays: slower on long runs, the same results.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=native/mock_msgset_find.c");
    println!("cargo:rerun-if-env-changed=DEP_RDKAFKA_ROOT");
    let linux = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let Some(root) = env::var_os("DEP_RDKAFKA_ROOT").map(PathBuf::from) else {
        return;
    };
    // Only a librdkafka built from source leaves its private headers there.
    if !linux || !root.join("src/rdkafka_mock_int.h").exists() {
        return;
    }
    let objects = cc::Build::new()
        .file("native/mock_msgset_find.c")
        .include(root.join("src"))
        .include(&root)
        .warnings(false)
        .compile_intermediates();
    // Objects on the link line are always linked in, whatever the order of the archives.
    for object in objects {
        println!("cargo:rustc-link-arg={}", object.display());
    }
    println!("cargo:rustc-link-arg=-Wl,--wrap=rd_kafka_mock_msgset_find");
}
