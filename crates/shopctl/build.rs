//! Links two changes into librdkafka's mock cluster (the embedded broker): a faster
//! message-set lookup (`native/mock_msgset_find.c`) and fetches answered as soon as data
//! arrives (`native/mock_fetch_wake.c`); each file says why.
//!
//! They are compiled against the headers of the librdkafka that `rdkafka-sys` built (its
//! `DEP_RDKAFKA_ROOT`), and take the originals' place with the linker's `--wrap`, which GNU ld
//! and lld support on Linux. Elsewhere, or with librdkafka from the system, the originals
//! stay: the same results, only slower (a fetch with nothing to read then waits out
//! `fetch.wait.max.ms` even when data arrives meanwhile).

use std::env;
use std::path::PathBuf;

/// Each source, with the librdkafka functions it replaces.
const PATCHES: [(&str, &[&str]); 2] = [
    ("native/mock_msgset_find.c", &["rd_kafka_mock_msgset_find"]),
    (
        "native/mock_fetch_wake.c",
        &[
            "rd_kafka_mock_buf_new_response",
            "rd_kafka_mock_partition_log_append",
        ],
    ),
];

fn main() {
    // Set below when the fetch change is linked in: `shopctl up` then lets fetches wait long.
    println!("cargo::rustc-check-cfg=cfg(fetch_wake)");
    for (source, _) in PATCHES {
        println!("cargo:rerun-if-changed={source}");
    }
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
        .files(PATCHES.map(|(source, _)| source))
        .include(root.join("src"))
        .include(&root)
        .warnings(false)
        .compile_intermediates();
    // Objects on the link line are always linked in, whatever the order of the archives.
    for object in objects {
        println!("cargo:rustc-link-arg={}", object.display());
    }
    for function in PATCHES.iter().flat_map(|(_, functions)| functions.iter()) {
        println!("cargo:rustc-link-arg=-Wl,--wrap={function}");
    }
    println!("cargo:rustc-cfg=fetch_wake");
}
