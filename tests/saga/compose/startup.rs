//! Start order and health: what could make a first `docker compose up` fail or race.

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::Value;

use super::document::*;

/// `depends_on` as (target, condition).
pub(super) fn dependencies(service: &Value) -> Vec<(String, String)> {
    match &service["depends_on"] {
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(|name| (name.to_owned(), "service_started".to_owned()))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(name, spec)| {
                let condition = spec["condition"].as_str().unwrap_or("service_started");
                (name.clone(), condition.to_owned())
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn has_healthcheck(service: &Value) -> bool {
    let check = &service["healthcheck"];
    check.is_object() && check["disable"] != Value::Bool(true) && words(&check["test"]) != "NONE"
}

/// Services named in `service`'s environment (`kafka:9092`, `http://psp-sim:8090/…`).
fn referenced_services<'a>(doc: &'a Value, service: &Value) -> Vec<&'a String> {
    let values: Vec<String> = environment(service).into_iter().map(|(_, v)| v).collect();
    services(doc)
        .keys()
        .filter(|name| {
            let pattern = format!(r"(^|[/,@]){}:\d", regex::escape(name));
            let re = Regex::new(&pattern).expect("valid regex");
            values.iter().any(|value| re.is_match(value))
        })
        .collect()
}

/// What could make a first `up` fail or race: a missing target, a health condition nobody can
/// satisfy, a one-shot job that restarts, a profile-only dependency, a cycle, or a service that
/// talks to another without waiting for it.
pub(super) fn dependency_problems(doc: &Value) -> Vec<String> {
    let all = services(doc);
    let built = built_images(doc);
    let mut problems = Vec::new();
    for (name, service) in all {
        let deps = dependencies(service);
        for (target, condition) in &deps {
            let Some(target_def) = all.get(target) else {
                problems.push(format!("{name} depends on {target}, which does not exist"));
                continue;
            };
            match condition.as_str() {
                "service_healthy" if !has_healthcheck(target_def) => problems.push(format!(
                    "{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )),
                "service_completed_successfully"
                    if !matches!(target_def["restart"].as_str(), None | Some("no")) =>
                {
                    problems.push(format!(
                        "{name} waits for {target} to complete, but it restarts"
                    ))
                }
                _ => {}
            }
            if target_def.get("profiles").is_some() && service["profiles"] != target_def["profiles"]
            {
                problems.push(format!(
                    "{name} depends on {target}, which runs only in a profile"
                ));
            }
        }
        for target in referenced_services(doc, service) {
            if target == name {
                continue;
            }
            let wanted = if has_healthcheck(&all[target]) {
                "service_healthy"
            } else {
                "service_started"
            };
            if !deps.iter().any(|(t, c)| t == target && c == wanted) {
                problems.push(format!(
                    "{name} talks to {target} but does not wait for {wanted}"
                ));
            }
        }
        let talks_to_kafka = environment(service)
            .iter()
            .any(|(n, _)| n == "KAFKA_BOOTSTRAP_SERVERS");
        if talks_to_kafka
            && all.contains_key("kafka-init")
            && !deps
                .iter()
                .any(|(t, c)| t == "kafka-init" && c == "service_completed_successfully")
        {
            problems.push(format!(
                "{name} uses Kafka but may start before the topics exist"
            ));
        }
        if is_ours(&built, service) && !has_healthcheck(service) {
            problems.push(format!("{name} has no healthcheck"));
        }
    }
    // `docker compose up --wait` counts an exited container as a failure unless a service waits
    // for it to complete: every one-shot job must be such a prerequisite.
    for (name, service) in all {
        let adopted = all.values().any(|other| {
            dependencies(other)
                .iter()
                .any(|(t, c)| t == name && c == "service_completed_successfully")
        });
        if service["restart"].as_str() == Some("no") && !adopted {
            problems.push(format!(
                "one-shot {name} is awaited by no service: `up --wait` fails"
            ));
        }
    }
    problems.extend(cycles(doc));
    problems
}

fn cycles(doc: &Value) -> Vec<String> {
    fn visit(
        doc: &Value,
        name: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|seen| seen == name) {
            return Some(format!(
                "dependency cycle: {} -> {name}",
                path[at..].join(" -> ")
            ));
        }
        if !done.insert(name.to_owned()) {
            return None;
        }
        path.push(name.to_owned());
        let found = dependencies(&doc["services"][name])
            .into_iter()
            .find_map(|(target, _)| visit(doc, &target, path, done));
        path.pop();
        found
    }
    let mut done = BTreeSet::new();
    services(doc)
        .keys()
        .filter_map(|name| visit(doc, name, &mut Vec::new(), &mut done))
        .collect()
}
