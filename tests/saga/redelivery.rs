//! At-least-once delivery means the same event can arrive twice; the second time must change
//! nothing.

use anyhow::Result;

use saga_tests::{ServiceKind, Stack, is_event};

#[tokio::test]
async fn redelivered_events_change_nothing() -> Result<()> {
    let stack = Stack::start().await?;
    let stock_sql = "SELECT available FROM stock WHERE sku = ?1";
    let initial = stack.query_i64(ServiceKind::Inventory, stock_sql, &["WIDGET-42"])?;
    let order_id = stack.place_order("WIDGET-42", 3, "pm_visa_4242").await?;
    let before = stack.wait_terminal(&order_id).await?;
    assert_eq!(before["status"], "confirmed");

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
    let redelivered = "SELECT redeliveries FROM inbox WHERE event_id = ?1";
    stack
        .wait_query(
            ServiceKind::Payment,
            redelivered,
            &event_id(&created.payload)?,
            1,
        )
        .await?;
    stack
        .wait_query(
            ServiceKind::Inventory,
            redelivered,
            &event_id(&completed.payload)?,
            1,
        )
        .await?;
    stack
        .wait_query(
            ServiceKind::OrderApi,
            redelivered,
            &event_id(&completed.payload)?,
            1,
        )
        .await?;

    // Nothing changed.
    let (_, after) = stack.get_order(&order_id).await?;
    assert_eq!(after["history"], before["history"]);
    assert_eq!(
        stack.query_i64(ServiceKind::Inventory, stock_sql, &["WIDGET-42"])?,
        initial - 3
    );
    assert_eq!(
        stack.query_i64(ServiceKind::Payment, "SELECT COUNT(*) FROM payments", &[])?,
        1
    );
    // Each outbox row is deleted once the broker acknowledged it, which may come after the
    // event was consumed.
    let outbox = "SELECT COUNT(*) FROM outbox WHERE msg_key = ?1";
    for kind in [ServiceKind::Payment, ServiceKind::Inventory] {
        stack.wait_query(kind, outbox, &order_id, 0).await?;
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
