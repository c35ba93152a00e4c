//! Listen addresses and ports: every service reachable where the others look for it, and
//! nothing published beyond this machine by default.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use regex::Regex;
use serde_json::Value;

use super::document::*;

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
