//! A topic carries every event of its producer, and a service handles only some of them: the
//! others are passed over — by their `ce_type` header (CloudEvents Kafka binding), before any
//! decoding, or after decoding when a message has no such header — counted, never
//! dead-lettered, and the consumer goes on.

use anyhow::{Context, Result};

use saga_tests::{FoundMessage, Service, Stack, Status, eventually, is_event, metric_total};

const CONSUMED: &str = "messaging_events_consumed_total";

fn header<'a>(message: &'a FoundMessage, name: &str) -> Option<&'a str> {
    message
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// How many `event_type` events `service` passed over so far.
async fn skipped(stack: &Stack, service: &Service, event_type: &str) -> Result<f64, String> {
    let metrics = stack
        .metrics(service)
        .await
        .map_err(|error| format!("metrics: {error:#}"))?;
    Ok(metric_total(
        &metrics,
        CONSUMED,
        &[&format!("type=\"{event_type}\""), "outcome=\"skipped\""],
    ))
}

#[tokio::test]
async fn events_a_service_does_not_handle_are_passed_over() -> Result<()> {
    let stack = Stack::start().await?;
    let kafka = stack.kafka()?;
    let order = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    assert_eq!(stack.wait_terminal(&order).await?.status, Status::Confirmed);

    // Each saga event's attributes are repeated in `ce_` headers, next to the CloudEvent that
    // carries them.
    let confirmed = kafka.find("orders", |m| is_event(m, "shop.order.confirmed.v1", &order))?;
    let document: serde_json::Value = serde_json::from_slice(&confirmed.payload)?;
    for (name, attribute) in [
        ("ce_specversion", "specversion"),
        ("ce_id", "id"),
        ("ce_source", "source"),
        ("ce_type", "type"),
    ] {
        assert_eq!(
            header(&confirmed, name),
            document[attribute].as_str(),
            "{confirmed:?}"
        );
    }
    assert_eq!(
        header(&confirmed, "ce_type"),
        Some("shop.order.confirmed.v1")
    );
    assert_eq!(header(&confirmed, "event-type"), None, "{confirmed:?}");
    // inventory-svc handles neither order.created nor order.confirmed; payment-svc does not
    // handle stock.reserved.
    eventually(|| async {
        let counts = [
            skipped(&stack, &stack.inventory, "order.created").await?,
            skipped(&stack, &stack.inventory, "order.confirmed").await?,
            skipped(&stack, &stack.payment, "stock.reserved").await?,
            skipped(&stack, &stack.payment, "order.confirmed").await?,
        ];
        if counts.iter().all(|count| *count >= 1.0) {
            Ok(())
        } else {
            Err(format!("passed over so far: {counts:?}"))
        }
    })
    .await?;

    // The same event again, without its headers: decoded to learn its type, then passed over.
    let before = (
        skipped(&stack, &stack.inventory, "order.confirmed")
            .await
            .map_err(anyhow::Error::msg)?,
        skipped(&stack, &stack.payment, "order.confirmed")
            .await
            .map_err(anyhow::Error::msg)?,
    );
    kafka
        .produce("orders", &confirmed.key, &confirmed.payload, &[])
        .await?;
    eventually(|| async {
        let now = (
            skipped(&stack, &stack.inventory, "order.confirmed").await?,
            skipped(&stack, &stack.payment, "order.confirmed").await?,
        );
        if now == (before.0 + 1.0, before.1 + 1.0) {
            Ok(())
        } else {
            Err(format!(
                "order.confirmed passed over: {before:?} -> {now:?}"
            ))
        }
    })
    .await?;
    assert!(
        kafka.read_all("orders.dlq")?.is_empty(),
        "nothing passed over is a dead letter"
    );
    // Nothing was handled, so no handler's duration was recorded, not even the decoded one's.
    for service in [&stack.inventory, &stack.payment] {
        let metrics = stack.metrics(service).await?;
        let handled = metric_total(
            &metrics,
            "messaging_handler_duration_seconds_count",
            &["type=\"order.confirmed\""],
        );
        assert_eq!(handled, 0.0, "{:?}: {metrics}", service.kind());
    }

    // The consumers went on.
    let next = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    assert_eq!(
        stack
            .wait_terminal(&next)
            .await
            .context("the next order")?
            .status,
        Status::Confirmed
    );
    Ok(())
}
