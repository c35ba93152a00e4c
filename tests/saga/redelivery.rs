//! At-least-once delivery means the same event can arrive twice; the second time must change
//! nothing.

use anyhow::Result;

use saga_tests::{ServiceKind, Stack, Status, is_event, wait_for};

#[tokio::test]
async fn redelivered_events_change_nothing() -> Result<()> {
    let stack = Stack::start().await?;
    let initial = stack.stock("WIDGET-42")?.available;
    let order_id = stack.place_order("WIDGET-42", 3, "pm_visa_4242").await?;
    let before = stack.wait_terminal(&order_id).await?;
    assert_eq!(before.status, Status::Confirmed);

    // Put exact copies of order.created and payment.completed back on their topics.
    let kafka = stack.kafka()?;
    let created = kafka.find("orders", |m| {
        is_event(m, "shop.order.created.v1", &order_id)
    })?;
    let completed = kafka.find("payments", |m| {
        is_event(m, "shop.payment.completed.v1", &order_id)
    })?;
    kafka
        .produce("orders", &created.key, &created.payload, &created.headers)
        .await?;
    kafka
        .produce(
            "payments",
            &completed.key,
            &completed.payload,
            &completed.headers,
        )
        .await?;

    // Wait until each consumer has seen its copy: the inbox counts redeliveries.
    let event_id = |payload: &[u8]| -> Result<String> {
        let doc: serde_json::Value = serde_json::from_slice(payload)?;
        Ok(doc["id"].as_str().unwrap_or_default().to_owned())
    };
    for (kind, event_id) in [
        (ServiceKind::Payment, event_id(&created.payload)?),
        (ServiceKind::Inventory, event_id(&completed.payload)?),
        (ServiceKind::OrderApi, event_id(&completed.payload)?),
    ] {
        wait_for(
            || stack.redeliveries(kind, &event_id),
            |redeliveries| *redeliveries == Some(1),
        )
        .await?;
    }

    // Nothing changed.
    assert_eq!(stack.order(&order_id).await?.history, before.history);
    assert_eq!(stack.stock("WIDGET-42")?.available, initial - 3);
    assert_eq!(stack.rows_in(ServiceKind::Payment, "payments")?, 1);
    // Each outbox row is deleted once the broker acknowledged it, which may come after the
    // event was consumed.
    for kind in [ServiceKind::Payment, ServiceKind::Inventory] {
        wait_for(
            || stack.outbox_for(kind, &order_id),
            |waiting| *waiting == 0,
        )
        .await?;
    }
    let payments = kafka.read_all("payments")?;
    let initiated = payments
        .iter()
        .filter(|m| is_event(m, "shop.payment.initiated.v1", &order_id))
        .count();
    assert_eq!(initiated, 1, "a second payment.initiated was published");
    let inventory = kafka.read_all("inventory")?;
    let reserved = inventory
        .iter()
        .filter(|m| is_event(m, "shop.stock.reserved.v1", &order_id))
        .count();
    assert_eq!(reserved, 1, "a second stock.reserved was published");
    Ok(())
}
