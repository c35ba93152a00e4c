use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};

use events::{Currency, Money};
use saga_tests::{
    Accepted, DEADLINE, Line, PaymentStatus, SseEvent, Stack, Status, StatusUpdate, read_sse,
};

#[tokio::test]
async fn a_paid_order_in_stock_is_confirmed_and_streamed() -> Result<()> {
    let stack = Stack::start().await?;
    let initial = stack.stock("WIDGET-42")?;

    let response = stack
        .post_order(&json!({
            "user_id": "usr_8a3f",
            "items": [{"sku": "WIDGET-42", "quantity": 2}],
            "payment_method": "pm_visa_4242",
        }))
        .await?;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str()?.to_owned();
    let accepted: Accepted = response.json().await?;
    let order_id = accepted.order_id.to_string();
    assert!(order_id.starts_with("ord_"), "{accepted:?}");
    assert_eq!(accepted.status, Status::Pending);
    assert_eq!(accepted.status_url, location);
    assert_eq!(location, format!("/api/orders/{order_id}"));

    // The stream replays what happened, follows live changes and ends after the terminal one.
    let events_url = stack.url(&format!("/api/orders/{order_id}/events"));
    let (events, _) = read_sse(&stack.http, &events_url, DEADLINE).await?;
    let updates: Vec<StatusUpdate> = events.iter().map(SseEvent::update).collect::<Result<_>>()?;
    let statuses: Vec<Status> = updates
        .iter()
        .map(|update| update.transition.status)
        .collect();
    assert_eq!(
        statuses,
        [
            Status::Pending,
            Status::PaymentProcessing,
            Status::PaymentConfirmed,
            Status::Confirmed
        ]
    );
    for (index, (event, update)) in events.iter().zip(&updates).enumerate() {
        assert_eq!(event.id.as_deref(), Some((index + 1).to_string().as_str()));
        assert_eq!(update.order_id.to_string(), order_id);
        // (Each has its timestamp: the view requires one.)
    }

    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(order.status, Status::Confirmed);
    assert_eq!(order.total, Money::new(4998, Currency::USD));
    assert_eq!(order.total_major, 49.98);
    assert_eq!(
        order.items,
        [Line {
            sku: "WIDGET-42".into(),
            quantity: 2,
            unit_price: 24.99,
            line_total: 49.98,
        }]
    );
    assert_eq!(order.cancellation_reason, None);
    // Each transition has its timestamp (the view requires one).
    assert_eq!(order.history.len(), 4, "{order}");

    // A late subscriber gets the whole story and the stream ends at once.
    let (replayed, _) = read_sse(&stack.http, &events_url, DEADLINE).await?;
    assert_eq!(replayed.len(), 4);

    // Each participant did its part exactly once.
    let stock = stack.stock("WIDGET-42")?;
    assert_eq!(stock.available, initial.available - 2);
    assert_eq!(stock.reserved, 2);
    let payment = stack.payment_for(&order_id)?.context("no payment")?;
    assert_eq!(payment.status, PaymentStatus::Charged);
    assert!(payment.charge_id.is_some(), "{payment:?}");
    let completed = stack.kafka()?.read_all("payments")?;
    let charges = completed
        .iter()
        .filter(|m| saga_tests::is_event(m, "shop.payment.completed.v1", &order_id))
        .count();
    assert_eq!(charges, 1);
    Ok(())
}

#[tokio::test]
async fn every_event_carries_the_order_as_key_and_correlation_id() -> Result<()> {
    let stack = Stack::start().await?;
    let order_id = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    stack.wait_terminal(&order_id).await?;
    let kafka = stack.kafka()?;
    // The status is committed with order.confirmed in the outbox; the relay publishes it after.
    kafka.find("orders", |m| {
        saga_tests::is_event(m, "shop.order.confirmed.v1", &order_id)
    })?;
    let mut seen = 0;
    for topic in ["orders", "payments", "inventory"] {
        for message in kafka.read_all(topic)? {
            let doc: Value = serde_json::from_slice(&message.payload)?;
            assert_eq!(doc["specversion"], "1.0");
            assert_eq!(
                String::from_utf8_lossy(&message.key),
                doc["subject"].as_str().unwrap_or_default()
            );
            assert_eq!(doc["correlationid"], doc["subject"], "{doc}");
            assert!(
                message
                    .headers
                    .iter()
                    .any(|(k, v)| k == "content-type"
                        && v.starts_with("application/cloudevents+json")),
                "{:?}",
                message.headers
            );
            seen += 1;
        }
    }
    // order.created, payment.initiated, payment.completed, stock.reserved, order.confirmed.
    assert_eq!(seen, 5);
    Ok(())
}
