//! Every event of a saga but the first names the event that caused it (`causationid`), so that a
//! saga can be followed back from any of its events — including those announced when the
//! payment provider's outcome arrives by webhook, long after the event that asked for it.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, Utc};
use serde_json::Value;

use saga_tests::{KafkaTool, Stack, Status, is_event};

/// The saga's events, by id: (type, time, causationid).
type Events = HashMap<String, (String, DateTime<Utc>, Option<String>)>;

/// Every event about `order_id` on the saga topics.
fn events_of(kafka: &KafkaTool, order_id: &str) -> Result<Events> {
    let mut events = Events::new();
    for topic in events::Topic::ALL {
        for message in kafka.read_all(topic.name())? {
            let doc: Value = serde_json::from_slice(&message.payload)?;
            if doc["subject"] != order_id {
                continue;
            }
            let text = |name: &str| doc[name].as_str().map(str::to_owned);
            let id = text("id").context("an event id")?;
            let time = DateTime::parse_from_rfc3339(&text("time").context("a time")?)?;
            events.insert(
                id,
                (
                    text("type").context("a type")?,
                    time.with_timezone(&Utc),
                    text("causationid"),
                ),
            );
        }
    }
    Ok(events)
}

/// Checks that every event but `order.created` names an earlier event of the same saga; returns
/// the saga's event types.
fn assert_caused(events: &Events) -> Result<Vec<String>> {
    for (id, (event_type, time, cause)) in events {
        if event_type == "shop.order.created.v1" {
            ensure!(cause.is_none(), "order.created has no cause: {events:?}");
            continue;
        }
        let cause = cause
            .as_ref()
            .with_context(|| format!("{event_type} {id} names no cause: {events:?}"))?;
        let (cause_type, cause_time, _) = events
            .get(cause)
            .with_context(|| format!("{event_type} names {cause}, not of its saga: {events:?}"))?;
        ensure!(
            cause_time <= time,
            "{event_type} at {time} caused by the later {cause_type} at {cause_time}"
        );
    }
    let mut types: Vec<String> = events.values().map(|(t, ..)| t.clone()).collect();
    types.sort();
    Ok(types)
}

#[tokio::test]
async fn every_event_but_the_first_names_its_cause() -> Result<()> {
    let stack = Stack::start().await?;
    let declined = stack
        .place_order("WIDGET-42", 1, "pm_card_declined")
        .await?;
    let refunded = stack.place_order("GIZMO-9", 1, "pm_visa_4242").await?;
    for order_id in [&declined, &refunded] {
        assert_eq!(
            stack.wait_terminal(order_id).await?.status,
            Status::Cancelled
        );
    }
    // Each saga's last event is the cancellation; the others came before it.
    let kafka = stack.kafka()?;
    for order_id in [&declined, &refunded] {
        kafka.find("orders", |m| {
            is_event(m, "shop.order.cancelled.v1", order_id)
        })?;
    }

    let types = assert_caused(&events_of(&kafka, &declined)?)?;
    assert!(
        types.iter().any(|t| t == "shop.payment.failed.v1"),
        "{types:?}"
    );
    let types = assert_caused(&events_of(&kafka, &refunded)?)?;
    for expected in [
        "shop.payment.completed.v1",
        "shop.stock.rejected.v1",
        "shop.payment.refunded.v1",
    ] {
        assert!(types.iter().any(|t| t == expected), "{types:?}");
    }
    Ok(())
}
