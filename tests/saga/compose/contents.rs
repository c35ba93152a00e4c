//! What the compose file declares: it follows the Compose Specification, pins its images, gives
//! our services only settings they read and binaries they have, creates the code's topics, and
//! builds an image that can run it all. Each check returns the problems it found (empty when
//! all is well), so the same function serves the real file and the deliberately broken copies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use anyhow::Result;
use jsonschema::Validator;
use regex::Regex;
use serde_json::Value;

use events::Topic;
use saga_tests::repo_root;

use super::document::*;

/// Violations of the Compose Specification's schema (draft 2020-12, vendored, no remote `$ref`).
pub(super) fn schema_errors(doc: &Value) -> Result<Vec<String>> {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    let validator = match VALIDATOR.get() {
        Some(validator) => validator,
        None => {
            let path = repo_root().join("schemas/vendor/compose-spec.json");
            let schema: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
            let validator = jsonschema::validator_for(&schema)
                .map_err(|error| anyhow::anyhow!("the compose schema does not compile: {error}"))?;
            VALIDATOR.get_or_init(|| validator)
        }
    };
    Ok(validator
        .iter_errors(doc)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect())
}

/// Images whose version can change under us: no tag, `latest`, or a tag that is not an exact
/// version (`3`, `3.9`). Our own image is built here, so only an explicit non-`latest` tag is
/// asked of it.
pub(super) fn unpinned_images(doc: &Value) -> Vec<String> {
    let exact = Regex::new(r"^v?\d+\.\d+\.\d+([-+._][0-9A-Za-z.-]+)?$").expect("valid regex");
    // Postgres numbers its releases major.minor (17.6 is one exact release, 17 is not).
    let two_part = Regex::new(r"^\d+\.\d+([-+._][0-9A-Za-z.-]+)?$").expect("valid regex");
    let numbered_major_minor = |image: &str| image.split(':').next() == Some("postgres");
    let built = built_images(doc);
    let mut problems = Vec::new();
    for (name, service) in services(doc) {
        let Some(image) = service["image"].as_str() else {
            problems.push(format!("{name}: no image name"));
            continue;
        };
        if image.contains("@sha256:") {
            continue;
        }
        let last = image.rsplit('/').next().unwrap_or(image);
        let tag = last.split_once(':').map(|(_, tag)| tag);
        let pinned = match tag {
            None | Some("latest") => false,
            Some(_) if is_ours(&built, service) => true,
            Some(tag) => {
                exact.is_match(tag) || (numbered_major_minor(last) && two_part.is_match(tag))
            }
        };
        if !pinned {
            problems.push(format!("{name}: {image} is not pinned to an exact version"));
        }
    }
    problems
}

/// Variables given to our services that no binary reads: a typo or a setting that does not
/// exist is otherwise ignored in silence, and the service runs with its default.
pub(super) fn unknown_env_names(doc: &Value, known: &BTreeSet<String>) -> Vec<String> {
    ours(doc)
        .flat_map(|(service, definition)| {
            environment(definition)
                .into_iter()
                .filter(|(name, _)| !known.contains(name))
                .map(move |(name, _)| format!("{service}: {name}"))
        })
        .collect()
}

/// Our services must each run a binary the workspace builds, named explicitly (the image's
/// default command is order-api).
pub(super) fn unknown_commands(doc: &Value, binaries: &BTreeSet<String>) -> Vec<String> {
    ours(doc)
        .filter_map(|(service, definition)| {
            let command = words(&definition["command"]);
            let program = command.split_whitespace().next().unwrap_or("");
            (!binaries.contains(program))
                .then(|| format!("{service}: command {command:?} is not a workspace binary"))
        })
        .collect()
}

/// `kafka-init` must create each topic of the code with the code's partition count, and be
/// safe to run again (`--if-not-exists`).
pub(super) fn topic_problems(doc: &Value, (saga, dead_letter): (i32, i32)) -> Vec<String> {
    let init = &doc["services"]["kafka-init"];
    let script = format!("{} {}", words(&init["entrypoint"]), words(&init["command"]));
    let create = Regex::new(r"--create\b[^\n]*").expect("valid regex");
    let topic = Regex::new(r"--topic\s+(\S+)").expect("valid regex");
    let partitions = Regex::new(r"--partitions\s+(\d+)").expect("valid regex");
    let mut created = BTreeMap::new();
    let mut problems = Vec::new();
    for line in create.find_iter(&script).map(|m| m.as_str()) {
        let name = topic.captures(line).map(|c| c[1].to_owned());
        let count = partitions
            .captures(line)
            .and_then(|c| c[1].parse::<i32>().ok());
        match (name, count) {
            (Some(name), Some(count)) => {
                created.insert(name, count);
            }
            _ => problems.push(format!(
                "kafka-init: cannot read topic and partitions in {line:?}"
            )),
        }
        if !line.contains("--if-not-exists") {
            problems.push(format!("kafka-init: {line:?} fails when run again"));
        }
    }
    let expected: BTreeMap<String, i32> = Topic::ALL
        .iter()
        .flat_map(|t| {
            [
                (t.name().to_owned(), saga),
                (t.dead_letter_name().to_owned(), dead_letter),
            ]
        })
        .collect();
    for (name, count) in &expected {
        match created.get(name) {
            None => problems.push(format!("kafka-init does not create {name}")),
            Some(got) if got != count => problems.push(format!(
                "kafka-init creates {name} with {got} partitions, the code uses {count}"
            )),
            Some(_) => {}
        }
    }
    for name in created.keys().filter(|name| !expected.contains_key(*name)) {
        problems.push(format!("kafka-init creates {name}, which no code uses"));
    }
    problems
}

/// The image must build with the workspace's Rust version, run as a non-root user, and contain
/// the program the healthchecks run.
pub(super) fn dockerfile_problems(dockerfile: &str, manifest: &str, doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let rust_version = Regex::new(r#"(?m)^rust-version\s*=\s*"([^"]+)""#)
        .expect("valid regex")
        .captures(manifest)
        .map(|c| c[1].to_owned());
    match rust_version {
        Some(version) if !dockerfile.contains(&format!("FROM rust:{version}-")) => problems.push(
            format!("the builder is not FROM rust:{version}-… (workspace rust-version)"),
        ),
        None => problems.push("no rust-version in Cargo.toml".to_owned()),
        Some(_) => {}
    }
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap_or("");
    let user = Regex::new(r"(?m)^USER\s+(\S+)").expect("valid regex");
    match user.captures_iter(runtime).last().map(|c| c[1].to_owned()) {
        Some(user) if !["root", "0", "0:0"].contains(&user.as_str()) => {}
        other => problems.push(format!(
            "the runtime stage runs as {other:?}, not a non-root user"
        )),
    }
    let installed: String = runtime
        .lines()
        .filter(|line| line.contains("apt-get install"))
        .collect::<Vec<_>>()
        .join(" ");
    for (name, service) in ours(doc) {
        let test = words(&service["healthcheck"]["test"]);
        let program = test
            .split_whitespace()
            .find(|word| !word.starts_with("CMD"))
            .unwrap_or("");
        if !installed.split_whitespace().any(|word| word == program) {
            problems.push(format!(
                "{name}'s healthcheck runs {program:?}, which the runtime image does not install"
            ));
        }
    }
    problems
}
