use anyhow::Result;
use reqwest::StatusCode;
use serde_json::{Value, json};

use saga_tests::{DEADLINE, ServiceKind, Stack, read_sse};

#[tokio::test]
async fn a_paid_order_in_stock_is_confirmed_and_streamed() -> Result<()> {
    let stack = Stack::start().await?;
    let stock_sql = "SELECT available FROM stock WHERE sku = ?1";
    let initial = stack.query_i64(ServiceKind::Inventory, stock_sql, &["WIDGET-42"])?;

    let response = stack
        .post_order(&json!({
            "user_id": "usr_8a3f",
            "items": [{"sku": "WIDGET-42", "quantity": 2}],
            "payment_method": "pm_visa_4242",
        }))
        .await?;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str()?.to_owned();
    let accepted: Value = response.json().await?;
    let order_id = accepted["order_id"].as_str().unwrap_or_default().to_owned();
    assert!(order_id.starts_with("ord_"), "{accepted}");
    assert_eq!(accepted["status"], "pending");
    assert_eq!(accepted["status_url"], location.as_str());
    assert_eq!(location, format!("/api/orders/{order_id}"));

    // The stream replays what happened, follows live changes and ends after the terminal one.
    let events_url = stack.url(&format!("/api/orders/{order_id}/events"));
    let (events, _) = read_sse(&stack.http, &events_url, DEADLINE).await?;
    let updates: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data))
        .collect::<Result<_, _>>()?;
    let statuses: Vec<&str> = updates
        .iter()
        .filter_map(|u| u["status"].as_str())
        .collect();
    assert_eq!(
        statuses,
        [
            "pending",
            "payment_processing",
            "payment_confirmed",
            "confirmed"
        ]
    );
    for (index, (event, update)) in events.iter().zip(&updates).enumerate() {
        assert_eq!(event.event, "status_update");
        assert_eq!(event.id.as_deref(), Some((index + 1).to_string().as_str()));
        assert_eq!(update["order_id"], order_id.as_str());
        assert!(update["timestamp"].is_string(), "{update}");
    }

    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["total"], json!(49.98));
    assert_eq!(order["total_minor"], 4998);
    assert_eq!(order["currency"], "USD");
    assert_eq!(
        order["items"],
        json!([{"sku": "WIDGET-42", "quantity": 2, "unit_price": 24.99, "line_total": 49.98}])
    );
    assert_eq!(order["cancellation_reason"], Value::Null);
    let history = order["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 4, "{order}");
    assert!(history.iter().all(|entry| entry["timestamp"].is_string()));

    // A late subscriber gets the whole story and the stream ends at once.
    let (replayed, _) = read_sse(&stack.http, &events_url, DEADLINE).await?;
    assert_eq!(replayed.len(), 4);

    // Each participant did its part exactly once.
    assert_eq!(
        stack.query_i64(ServiceKind::Inventory, stock_sql, &["WIDGET-42"])?,
        initial - 2
    );
    assert_eq!(
        stack.query_i64(
            ServiceKind::Inventory,
            "SELECT reserved FROM stock WHERE sku = ?1",
            &["WIDGET-42"]
        )?,
        2
    );
    assert_eq!(
        stack.query_i64(
            ServiceKind::Payment,
            "SELECT COUNT(*) FROM payments WHERE order_id = ?1 AND status = 'charged' AND charge_id IS NOT NULL",
            &[&order_id],
        )?,
        1
    );
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
