//! Facts taken from the code itself, so that the compose checks have no list of their own to
//! keep in sync: the environment variables the crates read, the topics' partition counts, the
//! binaries the workspace builds.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use regex::Regex;
use serde_json::Value;

/// Every variable name that `crates/**/*.rs` reads, in any of the ways the code does it:
/// - through a helper whose name contains `env` (`env_or`, `env_parse`, `env_millis`,
///   `port_from_env`, `env_var`…) with the name as first argument;
/// - `std::env::var("…")` / `var_os("…")`;
/// - clap's `#[arg(env = "…")]`.
///
/// Names built at run time (a variable passed in, a `format!`) are not found; the code keeps
/// names as literals at the call, which is also what makes them greppable.
pub(super) fn env_names_read_by_code(crates: &Path) -> Result<BTreeSet<String>> {
    let patterns = [
        r#"(?i:\b[a-z_]*env[a-z0-9_]*)\s*\(\s*"([A-Z][A-Z0-9_]*)""#,
        r#"env::var(?:_os)?\s*\(\s*"([A-Z][A-Z0-9_]*)""#,
        r#"\benv\s*=\s*"([A-Z][A-Z0-9_]*)""#,
    ]
    .map(|pattern| Regex::new(pattern).expect("valid regex"));
    let mut names = BTreeSet::new();
    for file in rust_files(crates)? {
        let text = std::fs::read_to_string(&file)?;
        for pattern in &patterns {
            names.extend(pattern.captures_iter(&text).map(|c| c[1].to_owned()));
        }
    }
    Ok(names)
}

fn rust_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// `(SAGA_PARTITIONS, DEAD_LETTER_PARTITIONS)` as declared in `crates/embedded-broker/src/lib.rs`.
pub(super) fn partition_counts(broker_rs: &Path) -> Result<(i32, i32)> {
    let text = std::fs::read_to_string(broker_rs)?;
    let read = |name: &str| -> Result<i32> {
        let re = Regex::new(&format!(r"const {name}: i32 = (\d+);"))?;
        match re.captures(&text) {
            Some(found) => Ok(found[1].parse()?),
            None => bail!("{name} not found in {}", broker_rs.display()),
        }
    };
    Ok((read("SAGA_PARTITIONS")?, read("DEAD_LETTER_PARTITIONS")?))
}

/// Names of the binaries of all workspace members, as cargo sees them (no network: `--no-deps`
/// reads only the manifests).
pub(super) fn workspace_binaries(root: &Path) -> Result<BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root)
        .output()?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)?;
    Ok(metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|package| package["targets"].as_array().into_iter().flatten())
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
        })
        .filter_map(|target| target["name"].as_str().map(str::to_owned))
        .collect())
}
