//! `schemas/asyncapi.yaml` against the code: a document that describes topics is only worth
//! reading if it cannot drift from them. The topics and event types are enumerated from the
//! `events` crate ([`Topic::ALL`], [`EventKind::ALL`]), the partition counts and header names
//! from `platform`, so a new topic, event type or header fails here until it is described.
//!
//! Checked: every saga topic and its dead-letter twin is a channel with the code's partition
//! count; every event type is a message of its topic's channel, named by its CloudEvents
//! `type`, with the event's JSON Schema as payload and the order id as key, sent by an
//! operation; nothing in the document is unknown to the code; the headers the code writes are
//! described. That the document is valid AsyncAPI is `contracts.rs`'s part.

use anyhow::{Context, Result};
use serde_json::Value;

use embedded_broker::{DEAD_LETTER_PARTITIONS, SAGA_PARTITIONS};
use events::{EventKind, Topic};
use platform::kafka::cloudevents::{CE_ID, CE_SOURCE, CE_SPECVERSION, CE_TYPE};
use platform::kafka::dead_letter_headers as dlq;

use saga_tests::repo_root;

fn load(text: &str) -> Result<Value> {
    serde_norway::from_str(text).context("schemas/asyncapi.yaml is not valid YAML")
}

fn document_text() -> Result<String> {
    Ok(std::fs::read_to_string(
        repo_root().join("schemas/asyncapi.yaml"),
    )?)
}

/// `value`, or what its local `$ref` (`#/components/…`) points at.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => resolve(doc, doc.pointer(pointer).unwrap_or(&Value::Null)),
        None => value,
    }
}

fn channels(doc: &Value) -> impl Iterator<Item = (&String, &Value)> {
    doc["channels"].as_object().into_iter().flatten()
}

/// The channel whose `address` is `topic`, with its name.
fn channel<'a>(doc: &'a Value, topic: &str) -> Option<(&'a String, &'a Value)> {
    channels(doc).find(|(_, channel)| channel["address"] == topic)
}

/// The `(key, message)` pairs of a channel, references followed.
fn messages<'a>(doc: &'a Value, channel: &'a Value) -> Vec<(&'a String, &'a Value)> {
    channel["messages"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, message)| (key, resolve(doc, message)))
        .collect()
}

/// Topics missing, extra, or with another partition count than the code creates them with.
fn topic_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let expected: Vec<(&str, i32)> = Topic::ALL
        .into_iter()
        .flat_map(|topic| {
            [
                (topic.name(), SAGA_PARTITIONS),
                (topic.dead_letter_name(), DEAD_LETTER_PARTITIONS),
            ]
        })
        .collect();
    for (topic, partitions) in &expected {
        let Some((name, channel)) = channel(doc, topic) else {
            problems.push(format!("topic {topic} has no channel"));
            continue;
        };
        let binding = &resolve(doc, &channel["bindings"])["kafka"];
        if binding["partitions"].as_i64() != Some(i64::from(*partitions)) {
            problems.push(format!(
                "channel {name} ({topic}): partitions {} in the document, {partitions} in the code",
                binding["partitions"]
            ));
        }
    }
    for (name, channel) in channels(doc) {
        let address = channel["address"].as_str().unwrap_or_default();
        if !expected.iter().any(|(topic, _)| *topic == address) {
            problems.push(format!(
                "channel {name} has address {address:?}, which is no topic of the code"
            ));
        }
    }
    problems
}

/// Event types missing from their topic's channel, described wrongly, or sent by no operation;
/// and saga messages of types the code does not know.
fn event_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let order_id = &doc["components"]["schemas"]["orderId"];
    for kind in EventKind::ALL.iter().copied() {
        let type_name = kind.type_name();
        let topic = kind.topic().name();
        let Some((channel_name, channel)) = channel(doc, topic) else {
            continue; // reported by topic_problems
        };
        let Some((key, message)) = messages(doc, channel)
            .into_iter()
            .find(|(_, message)| message["name"] == type_name)
        else {
            problems.push(format!(
                "{type_name} is no message of channel {channel_name} ({topic})"
            ));
            continue;
        };
        let payload = format!("./events/{}.v1.schema.json", kind.short_name());
        if message["payload"]["$ref"] != payload.as_str() {
            problems.push(format!(
                "{type_name}: payload {} instead of {payload}",
                message["payload"]
            ));
        }
        let binding = &resolve(doc, &message["bindings"])["kafka"];
        if resolve(doc, &binding["key"]) != order_id {
            problems.push(format!(
                "{type_name}: the message key is not #/components/schemas/orderId"
            ));
        }
        let reference = format!("#/channels/{channel_name}/messages/{key}");
        let sent = doc["operations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, operation)| operation["action"] == "send")
            .flat_map(|(_, operation)| operation["messages"].as_array().into_iter().flatten())
            .any(|message| message["$ref"] == reference.as_str());
        if !sent {
            problems.push(format!("{type_name}: no operation sends it"));
        }
    }
    for topic in Topic::ALL {
        let Some((channel_name, channel)) = channel(doc, topic.name()) else {
            continue;
        };
        for (_, message) in messages(doc, channel) {
            let name = message["name"].as_str().unwrap_or_default();
            let known = EventKind::from_type_name(name).filter(|kind| kind.topic() == topic);
            if known.is_none() {
                problems.push(format!(
                    "channel {channel_name} has message {name:?}, which the code does not publish on {topic}"
                ));
            }
        }
    }
    problems
}

/// Headers the code writes that the document does not describe.
fn header_problems(doc: &Value) -> Vec<String> {
    let schemas = &doc["components"]["schemas"];
    let described =
        |schema: &str, header: &str| schemas[schema]["properties"].get(header).is_some();
    let mut problems = Vec::new();
    for header in [
        "content-type",
        CE_SPECVERSION,
        CE_ID,
        CE_SOURCE,
        CE_TYPE,
        "traceparent",
        "tracestate",
    ] {
        if !described("sagaHeaders", header) {
            problems.push(format!("saga header {header} is not described"));
        }
    }
    for header in [
        dlq::ORIGINAL_TOPIC,
        dlq::ORIGINAL_PARTITION,
        dlq::ORIGINAL_OFFSET,
        dlq::ERROR_CLASS,
        dlq::ERROR_MESSAGE,
        dlq::ATTEMPTS,
        dlq::FIRST_FAILURE,
        dlq::LAST_FAILURE,
        dlq::SERVICE,
    ] {
        if !described("deadLetterHeaders", header) {
            problems.push(format!("dead-letter header {header} is not described"));
        }
    }
    problems
}

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn asyncapi_describes_every_topic_of_the_code() -> Result<()> {
    let doc = load(&document_text()?)?;
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_none("topics", topic_problems(&doc));
    Ok(())
}

#[test]
fn asyncapi_describes_every_event_type_of_the_code() -> Result<()> {
    let doc = load(&document_text()?)?;
    assert_none("event types", event_problems(&doc));
    // Each payload schema is the event's: its title is the event type.
    for kind in EventKind::ALL {
        let path = repo_root().join(format!(
            "schemas/events/{}.v1.schema.json",
            kind.short_name()
        ));
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        assert_eq!(schema["title"], kind.type_name(), "{}", path.display());
    }
    Ok(())
}

#[test]
fn asyncapi_describes_the_headers_the_code_writes() -> Result<()> {
    let doc = load(&document_text()?)?;
    assert_none("headers", header_problems(&doc));
    Ok(())
}

/// The checks above would pass vacuously if they could not fail.
#[test]
fn asyncapi_drift_is_caught() -> Result<()> {
    let text = document_text()?;
    let broken = |from: &str, to: &str| -> Result<Value> {
        assert!(
            text.contains(from),
            "fixture drifted: {from:?} not in the file"
        );
        load(&text.replacen(from, to, 1))
    };

    let doc = broken("address: inventory.dlq", "address: inventory-dlq")?;
    assert!(topic_problems(&doc).len() >= 2, "a renamed topic passed");
    let doc = broken("        partitions: 8\n", "        partitions: 4\n")?;
    assert!(
        !topic_problems(&doc).is_empty(),
        "a wrong partition count passed"
    );

    let doc = broken(
        "      stockReleased: { $ref: \"#/components/messages/stockReleased\" }\n",
        "",
    )?;
    assert!(
        !event_problems(&doc).is_empty(),
        "a missing event type passed"
    );
    let doc = broken(
        "name: shop.payment.failed.v1",
        "name: shop.payment.failed.v2",
    )?;
    assert!(
        event_problems(&doc).len() >= 2,
        "an event type the code does not know passed"
    );
    let doc = broken(
        "payload: { $ref: \"./events/order.confirmed.v1.schema.json\" }",
        "payload: { $ref: \"./events/order.cancelled.v1.schema.json\" }",
    )?;
    assert!(
        !event_problems(&doc).is_empty(),
        "another event's schema passed"
    );
    let doc = broken(
        "      - $ref: \"#/channels/inventory/messages/stockRejected\"\n",
        "",
    )?;
    assert!(
        !event_problems(&doc).is_empty(),
        "an event nobody sends passed"
    );

    let doc = broken("        dlq.attempts: {", "        dlq.tries: {")?;
    assert!(!header_problems(&doc).is_empty(), "a missing header passed");
    Ok(())
}
