//! The parts of a compose document the checks read: its services, ours among them, and their
//! fields in whichever of Compose's equivalent forms the file uses.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{Map, Value};

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
pub(super) fn is_ours(built: &BTreeSet<&str>, service: &Value) -> bool {
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
pub(super) fn environment(service: &Value) -> Vec<(String, String)> {
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
