//! Compiles the client cut-off filter into librdkafka's mock cluster (see
//! `native/client_cut_off.c` for why and how).
//!
//! The filter reaches into the mock cluster's private structures, so it is compiled against the
//! headers of the librdkafka that `rdkafka-sys` built (its `DEP_RDKAFKA_ROOT`). With librdkafka
//! from the system those headers are absent: the crate is then built without the filter, and
//! cutting a client off answers that it is not available.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=native/client_cut_off.c");
    println!("cargo:rerun-if-env-changed=DEP_RDKAFKA_ROOT");
    println!("cargo::rustc-check-cfg=cfg(client_cut_off)");
    let Some(root) = env::var_os("DEP_RDKAFKA_ROOT").map(PathBuf::from) else {
        return;
    };
    // Only a librdkafka built from source leaves its private headers there.
    if !root.join("src/rdkafka_mock_int.h").exists() {
        return;
    }
    cc::Build::new()
        .file("native/client_cut_off.c")
        .include(root.join("src"))
        .include(&root)
        .warnings(false)
        .compile("client_cut_off");
    println!("cargo:rustc-cfg=client_cut_off");
}
