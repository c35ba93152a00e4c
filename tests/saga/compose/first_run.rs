//! What makes a first `docker compose up` work, or fail before anything of ours runs: the
//! shared image built once and never pulled, bind mounts that exist and are readable on SELinux
//! hosts, healthchecks that are cheap and present where a service is waited for.

use std::path::Path;

use serde_json::Value;

use super::document::{built_images, services, words};
use super::startup::{dependencies, has_healthcheck};

/// The image built here must be built by exactly one service (`up --build` then builds it
/// once, not once per service), and every other service running it must not try to pull it:
/// a registry has no image of that name, or worse, someone else's.
pub(super) fn build_problems(doc: &Value) -> Vec<String> {
    let builders: Vec<&String> = services(doc)
        .iter()
        .filter(|(_, service)| service.get("build").is_some())
        .map(|(name, _)| name)
        .collect();
    let mut problems = Vec::new();
    if builders.len() != 1 {
        problems.push(format!(
            "{} services build the image ({builders:?}): build it in one, run its tag in the others",
            builders.len()
        ));
    }
    let built = built_images(doc);
    for (name, service) in services(doc) {
        let runs_ours = service["image"].as_str().is_some_and(|i| built.contains(i));
        if runs_ours && service.get("build").is_none() && service["pull_policy"] != "never" {
            problems.push(format!(
                "{name} runs the locally built {} without `pull_policy: never`: Compose would try to pull it",
                service["image"]
            ));
        }
    }
    problems
}

/// `(source, target, options)` of each bind mount of `service`, short or long syntax.
fn bind_mounts(service: &Value) -> Vec<(String, String, String)> {
    let mut mounts = Vec::new();
    for volume in service["volumes"].as_array().into_iter().flatten() {
        match volume {
            Value::String(short) => {
                let parts: Vec<&str> = short.split(':').collect();
                let source = parts.first().copied().unwrap_or_default();
                // A named volume has no path in its source.
                if source.starts_with(['.', '/', '~']) {
                    mounts.push((
                        source.to_owned(),
                        parts.get(1).copied().unwrap_or_default().to_owned(),
                        parts.get(2).copied().unwrap_or_default().to_owned(),
                    ));
                }
            }
            Value::Object(long) if long["type"] == "bind" => mounts.push((
                long["source"].as_str().unwrap_or_default().to_owned(),
                long["target"].as_str().unwrap_or_default().to_owned(),
                long["bind"]["selinux"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )),
            _ => {}
        }
    }
    mounts
}

/// Every bind mount must name a file of the repository and carry `z` (or `Z`): on SELinux
/// hosts (Fedora, RHEL) a container cannot read an unlabelled host file, and the service fails
/// with "permission denied" on a file that is plainly there.
pub(super) fn bind_mount_problems(doc: &Value, root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, service) in services(doc) {
        for (source, target, options) in bind_mounts(service) {
            if !options
                .split(',')
                .any(|option| option == "z" || option == "Z")
            {
                problems.push(format!(
                    "{name}: bind mount {source} → {target} lacks `z` (SELinux label)"
                ));
            }
            if source.starts_with("./") && !root.join(&source).exists() {
                problems.push(format!("{name}: bind mount source {source} does not exist"));
            }
        }
    }
    problems
}

/// A healthcheck runs for the container's whole life: one that starts a JVM (Kafka's CLI
/// tools) every few seconds costs a CPU core's worth of startups per minute. Such a check must
/// run at most every 30 s, with `start_interval` for a quick first answer; a TCP probe is
/// better. And every service another one waits for must have a healthcheck to wait on.
pub(super) fn healthcheck_problems(doc: &Value) -> Vec<String> {
    let seconds = |value: &Value| -> Option<f64> {
        let text = value.as_str()?;
        let (number, unit) = text.split_at(text.find(|c: char| c.is_alphabetic())?);
        let number: f64 = number.parse().ok()?;
        match unit {
            "ms" => Some(number / 1000.0),
            "s" => Some(number),
            "m" => Some(number * 60.0),
            _ => None,
        }
    };
    let mut problems = Vec::new();
    let all = services(doc);
    for (name, service) in all {
        let check = &service["healthcheck"];
        let test = words(&check["test"]);
        let starts_a_jvm = test.contains("/opt/kafka/bin/") || test.contains("java ");
        if starts_a_jvm {
            // Compose's default interval is 30 s.
            let interval = check.get("interval").map_or(Some(30.0), seconds);
            if interval.is_none_or(|interval| interval < 30.0)
                || check.get("start_interval").is_none()
            {
                problems.push(format!(
                    "{name}: its healthcheck starts a JVM ({test:?}); probe the port instead, or run it at most every 30 s with a start_interval"
                ));
            }
        }
        let awaited = all
            .values()
            .any(|other| dependencies(other).iter().any(|(target, _)| target == name));
        if awaited && service["restart"] != "no" && !has_healthcheck(service) {
            problems.push(format!(
                "{name}: other services wait for it, but it has no healthcheck to wait on"
            ));
        }
    }
    problems
}
