//! The checks on docker-compose.yml. Each returns the problems it found (empty when all is
//! well), so the same function serves the real file and the deliberately broken copies.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::OnceLock;

use anyhow::Result;
use jsonschema::Validator;
use regex::Regex;
use serde_json::{Map, Value};

use events::Topic;
use saga_tests::repo_root;

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

pub(super) fn services(doc: &Value) -> &Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    doc["services"]
        .as_object()
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// The images built from this repository: those of the services with `build`.
pub(super) fn built_images(doc: &Value) -> BTreeSet<&str> {
    services(doc)
        .values()
        .filter(|service| service.get("build").is_some())
        .filter_map(|service| service["image"].as_str())
        .collect()
}

/// Whether `service` runs our image (built here) rather than a third-party one.
fn is_ours(built: &BTreeSet<&str>, service: &Value) -> bool {
    service.get("build").is_some() || service["image"].as_str().is_some_and(|i| built.contains(i))
}

/// Services running the image built from this repository (as opposed to third-party images):
/// the one that builds it and those that run the same tag.
pub(super) fn ours(doc: &Value) -> impl Iterator<Item = (&String, &Value)> {
    let built = built_images(doc);
    services(doc)
        .iter()
        .filter(move |(_, service)| is_ours(&built, service))
}

/// `environment` as (name, value) pairs, from either the map or the `NAME=value` list form.
fn environment(service: &Value) -> Vec<(String, String)> {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match &service["environment"] {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let item = text(item);
                match item.split_once('=') {
                    Some((name, value)) => (name.to_owned(), value.to_owned()),
                    None => (item, String::new()),
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A list-or-string field (`command`, `healthcheck.test`) as one string.
pub(super) fn words(value: &Value) -> String {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(text) => text.clone(),
        _ => String::new(),
    }
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

/// Each of our services' listen address (its one `*_ADDR` variable).
pub(super) fn listen_addrs(doc: &Value) -> (BTreeMap<String, SocketAddr>, Vec<String>) {
    let mut addrs = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, service) in ours(doc) {
        let found: Vec<_> = environment(service)
            .into_iter()
            .filter(|(var, _)| var.ends_with("_ADDR"))
            .collect();
        match found.as_slice() {
            [(var, value)] => match value.parse::<SocketAddr>() {
                Ok(addr) => {
                    addrs.insert(name.clone(), addr);
                }
                Err(_) => problems.push(format!("{name}: {var}={value} is not ip:port")),
            },
            _ => problems.push(format!(
                "{name}: expected one *_ADDR variable, found {found:?}"
            )),
        }
    }
    (addrs, problems)
}

/// Ports published beyond this machine by default: a short-form `ports` entry needs its
/// `host_ip:` part, or Docker publishes it on every interface of the host (plaintext Kafka,
/// Jaeger and Kafka UI have no authentication).
pub(super) fn exposed_ports(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let services = doc["services"].as_object().into_iter().flatten();
    for (name, service) in services {
        for port in service["ports"].as_array().into_iter().flatten() {
            let published = match port {
                Value::Object(long) => long["host_ip"].as_str().map(str::to_owned),
                other => other.as_str().and_then(|text| {
                    let text = text.split('/').next().unwrap_or("");
                    text.rsplitn(3, ':').nth(2).map(str::to_owned)
                }),
            };
            let loopback = published
                .as_deref()
                .map(|ip| ip.trim_start_matches('[').trim_end_matches(']'))
                .is_some_and(|ip| {
                    ip.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
                });
            if !loopback {
                problems.push(format!(
                    "{name} publishes {port} beyond loopback by default"
                ));
            }
        }
    }
    problems
}

/// Ports that do not meet: a listener on loopback (unreachable from outside the container), a
/// healthcheck or a published port or a URL of another service that is not the listen port.
pub(super) fn port_problems(doc: &Value) -> Vec<String> {
    let (addrs, mut problems) = listen_addrs(doc);
    let url = Regex::new(r"https?://([A-Za-z0-9_.-]+):(\d+)(/\S*)?").expect("valid regex");
    for (name, addr) in &addrs {
        let service = &doc["services"][name];
        if !addr.ip().is_unspecified() {
            problems.push(format!(
                "{name} listens on {addr}: other containers cannot reach it"
            ));
        }
        let test = words(&service["healthcheck"]["test"]);
        let urls: Vec<_> = url.captures_iter(&test).collect();
        if urls.is_empty() {
            problems.push(format!("{name}: healthcheck {test:?} names no http URL"));
        }
        for found in urls {
            if found[2].parse() != Ok(addr.port())
                || !found
                    .get(3)
                    .is_some_and(|p| p.as_str().starts_with("/readyz"))
            {
                problems.push(format!(
                    "{name}: healthcheck {} is not /readyz on port {}",
                    &found[0],
                    addr.port()
                ));
            }
        }
        for port in service["ports"].as_array().into_iter().flatten() {
            let target = match port {
                Value::Object(long) => long["target"].to_string(),
                other => {
                    let text = other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_owned);
                    let text = text.split('/').next().unwrap_or("").to_owned();
                    text.rsplit(':').next().unwrap_or("").to_owned()
                }
            };
            if target.trim_matches('"') != addr.port().to_string() {
                problems.push(format!(
                    "{name} publishes container port {target}, but listens on {}",
                    addr.port()
                ));
            }
        }
    }
    for (name, service) in services(doc) {
        for (var, value) in environment(service) {
            for found in url.captures_iter(&value) {
                if let Some(addr) = addrs.get(&found[1])
                    && found[2].parse() != Ok(addr.port())
                {
                    problems.push(format!(
                        "{name}: {var}={value}, but {} listens on {}",
                        &found[1],
                        addr.port()
                    ));
                }
            }
        }
    }
    problems
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
