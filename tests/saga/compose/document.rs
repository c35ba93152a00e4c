//! The parts of a compose document the checks read: its services, ours among them, and their
//! fields in whichever of Compose's equivalent forms the file uses.

use std::sync::OnceLock;

use serde_json::{Map, Value};

pub(super) fn services(doc: &Value) -> &Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    doc["services"]
        .as_object()
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// Services built from this repository (as opposed to third-party images).
pub(super) fn ours(doc: &Value) -> impl Iterator<Item = (&String, &Value)> {
    services(doc)
        .iter()
        .filter(|(_, service)| service.get("build").is_some())
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
