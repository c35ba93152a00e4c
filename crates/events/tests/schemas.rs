//! The JSON Schemas in `schemas/events/` pin the wire form of every event: each event type
//! serialises to a document its schema accepts, and the schemas refuse malformed documents.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::Utc;
use jsonschema::{Registry, Validator};
use serde_json::{Value, json};

use events::{
    CancellationReason, Currency, Envelope, Event, EventId, EventKind, LineItem, Money,
    OrderCancelled, OrderConfirmed, OrderCreated, OrderId, PaymentCompleted, PaymentFailed,
    PaymentFailureReason, PaymentInitiated, PaymentMethod, PaymentRefunded, PricedLineItem, Sku,
    StockRejected, StockRejectionReason, StockReleased, StockReserved, StockShortage, UserId,
};

const BASE: &str = "https://schemas.shop.example/events/";

/// A change that makes a valid document invalid.
type Mutation = Box<dyn Fn(&mut Value)>;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/events")
}

fn load(name: &str) -> Value {
    let path = schema_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The validator for `kind`, with the common definitions registered under their `$id`.
fn validator(kind: EventKind) -> Validator {
    let registry = Registry::new()
        .add(
            format!("{BASE}common.schema.json"),
            load("common.schema.json"),
        )
        .and_then(|registry| registry.prepare())
        .expect("common schema registers");
    let schema = load(&format!("{}.v1.schema.json", kind.short_name()));
    jsonschema::options()
        .with_registry(&registry)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema of {} does not compile: {e}", kind.short_name()))
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::USD)
}

fn sku(text: &str) -> Sku {
    Sku::parse(text).expect("valid sku")
}

fn line(text: &str, quantity: u32) -> LineItem {
    LineItem {
        sku: sku(text),
        quantity,
    }
}

/// One realistic event of every kind; a new kind without a sample does not compile.
fn sample(kind: EventKind) -> Event {
    let order_id = OrderId::new();
    match kind {
        EventKind::OrderCreated => OrderCreated {
            order_id,
            user_id: UserId::parse("usr_8a3f").expect("valid"),
            items: vec![PricedLineItem {
                sku: sku("WIDGET-42"),
                quantity: 2,
                unit_price: usd(2499),
            }],
            total: usd(4998),
            payment_method: PaymentMethod::parse("pm_visa_4242").expect("valid"),
            created_at: Utc::now(),
        }
        .into(),
        EventKind::OrderConfirmed => OrderConfirmed {
            order_id,
            total: usd(4998),
        }
        .into(),
        EventKind::OrderCancelled => OrderCancelled {
            order_id,
            reason: CancellationReason::Timeout,
        }
        .into(),
        EventKind::PaymentInitiated => PaymentInitiated {
            order_id,
            amount: usd(4998),
        }
        .into(),
        EventKind::PaymentCompleted => PaymentCompleted {
            order_id,
            payment_id: "ch_1".into(),
            amount: usd(4998),
            items: vec![line("WIDGET-42", 2)],
        }
        .into(),
        EventKind::PaymentFailed => PaymentFailed {
            order_id,
            reason: PaymentFailureReason::Declined,
            detail: "Your card was declined.".into(),
        }
        .into(),
        EventKind::PaymentRefunded => PaymentRefunded {
            order_id,
            payment_id: "ch_1".into(),
            refund_id: "re_1".into(),
            amount: usd(4998),
            reason: CancellationReason::OutOfStock,
        }
        .into(),
        EventKind::StockReserved => StockReserved {
            order_id,
            items: vec![line("WIDGET-42", 2)],
        }
        .into(),
        EventKind::StockRejected => StockRejected {
            order_id,
            reason: StockRejectionReason::OutOfStock,
            shortages: vec![StockShortage {
                sku: sku("GIZMO-9"),
                requested: 1,
                available: 0,
            }],
        }
        .into(),
        EventKind::StockReleased => StockReleased {
            order_id,
            items: vec![line("GADGET-7", 4)],
            reason: CancellationReason::Timeout,
        }
        .into(),
    }
}

/// Encoded samples of `kind`: a first event, and one caused by another with a trace context.
fn documents(kind: EventKind) -> Vec<Value> {
    let first = Envelope::new("/shop/order-api", sample(kind), None);
    let mut caused = Envelope::new("/shop/payment-svc", sample(kind), Some(EventId::new()));
    caused.meta.traceparent =
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    caused.meta.tracestate = Some("shop=1".into());
    [first, caused]
        .iter()
        .map(|envelope| serde_json::from_slice(&envelope.encode()).expect("envelope is JSON"))
        .collect()
}

fn errors(validator: &Validator, document: &Value) -> Vec<String> {
    validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn there_is_exactly_one_schema_per_event_kind() {
    let files: BTreeSet<String> = std::fs::read_dir(schema_dir())
        .expect("schemas/events exists")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name != "common.schema.json")
        .collect();
    let expected: BTreeSet<String> = EventKind::ALL
        .iter()
        .map(|kind| format!("{}.v1.schema.json", kind.short_name()))
        .collect();
    assert_eq!(files, expected);
}

#[test]
fn schemas_are_valid_draft_2020_12() {
    for entry in std::fs::read_dir(schema_dir()).expect("schemas/events exists") {
        let path = entry.expect("entry").path();
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON");
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema",
            "{}",
            path.display()
        );
        assert!(
            jsonschema::meta::is_valid(&schema),
            "{} is not a valid schema",
            path.display()
        );
    }
}

#[test]
fn every_event_kind_serialises_to_json_its_schema_accepts() {
    for &kind in EventKind::ALL {
        let validator = validator(kind);
        for document in documents(kind) {
            let errors = errors(&validator, &document);
            assert!(
                errors.is_empty(),
                "{}: {errors:#?}\n{document:#}",
                kind.short_name()
            );
        }
    }
}

#[test]
fn schemas_reject_malformed_envelopes_of_every_kind() {
    for &kind in EventKind::ALL {
        let validator = validator(kind);
        let good = documents(kind).remove(0);
        let other_kind = if kind == EventKind::OrderCreated {
            EventKind::OrderConfirmed
        } else {
            EventKind::OrderCreated
        };
        let mutations: Vec<(&str, Mutation)> = vec![
            (
                "missing data",
                Box::new(|d| drop(d.as_object_mut().map(|o| o.remove("data")))),
            ),
            (
                "missing id",
                Box::new(|d| drop(d.as_object_mut().map(|o| o.remove("id")))),
            ),
            (
                "extra top-level property",
                Box::new(|d| d["surprise"] = json!(1)),
            ),
            (
                "extra property in data",
                Box::new(|d| d["data"]["surprise"] = json!(1)),
            ),
            (
                "another type",
                Box::new(move |d| d["type"] = json!(other_kind.type_name())),
            ),
            ("bad subject", Box::new(|d| d["subject"] = json!("order-1"))),
            (
                "bad specversion",
                Box::new(|d| d["specversion"] = json!("0.3")),
            ),
            (
                "bad traceparent",
                Box::new(|d| d["traceparent"] = json!("not-a-traceparent")),
            ),
            (
                "bad order id in data",
                Box::new(|d| d["data"]["order_id"] = json!("ord_XYZ")),
            ),
        ];
        for (what, mutate) in mutations {
            let mut bad = good.clone();
            mutate(&mut bad);
            assert!(
                !validator.is_valid(&bad),
                "{}: {what} was accepted",
                kind.short_name()
            );
        }
    }
}

#[test]
fn schemas_reject_bad_values() {
    let created = validator(EventKind::OrderCreated);
    let good = documents(EventKind::OrderCreated).remove(0);
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "quantity 0",
            Box::new(|d| d["data"]["items"][0]["quantity"] = json!(0)),
        ),
        (
            "negative amount",
            Box::new(|d| d["data"]["total"]["amount_minor"] = json!(-1)),
        ),
        (
            "amount as float",
            Box::new(|d| d["data"]["total"]["amount_minor"] = json!(49.98)),
        ),
        (
            "lower-case currency",
            Box::new(|d| d["data"]["total"]["currency"] = json!("usd")),
        ),
        (
            "bad sku",
            Box::new(|d| d["data"]["items"][0]["sku"] = json!("widget 42")),
        ),
        ("empty items", Box::new(|d| d["data"]["items"] = json!([]))),
        (
            "bad payment method",
            Box::new(|d| d["data"]["payment_method"] = json!("visa")),
        ),
    ];
    for (what, mutate) in cases {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(
            !created.is_valid(&bad),
            "order.created: {what} was accepted"
        );
    }
    let cancelled = validator(EventKind::OrderCancelled);
    let mut bad = documents(EventKind::OrderCancelled).remove(0);
    bad["data"]["reason"] = json!("bored");
    assert!(
        !cancelled.is_valid(&bad),
        "unknown cancellation reason accepted"
    );
    let rejected = validator(EventKind::StockRejected);
    let mut bad = documents(EventKind::StockRejected).remove(0);
    bad["data"]["shortages"] = json!([]);
    assert!(
        !rejected.is_valid(&bad),
        "a rejection without shortages accepted"
    );
}

#[test]
fn decoding_enforces_the_same_rules_as_the_schemas() {
    // What the schemas refuse, the consumers refuse too (and dead-letter).
    let good = documents(EventKind::PaymentCompleted).remove(0);
    let mut extra = good.clone();
    extra["data"]["surprise"] = json!(1);
    assert!(Envelope::decode(extra.to_string().as_bytes()).is_err());
    let mut bad_sku = good.clone();
    bad_sku["data"]["items"][0]["sku"] = json!("lower");
    assert!(Envelope::decode(bad_sku.to_string().as_bytes()).is_err());
    assert!(Envelope::decode(good.to_string().as_bytes()).is_ok());
}
