use anyhow::Result;

use saga_tests::{ServiceKind, Stack};

#[tokio::test]
async fn a_declined_card_cancels_the_order_without_touching_stock() -> Result<()> {
    let stack = Stack::start().await?;
    let stock_sql = "SELECT available FROM stock WHERE sku = ?1";
    let initial = stack.query_i64(ServiceKind::Inventory, stock_sql, &["WIDGET-42"])?;

    let order_id = stack
        .place_order("WIDGET-42", 2, "pm_card_declined")
        .await?;
    let order = stack.wait_terminal(&order_id).await?;

    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancellation_reason"], "payment_declined");
    let statuses: Vec<&str> = order["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|e| e["status"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(statuses, ["pending", "payment_processing", "cancelled"]);
    assert_eq!(
        stack.query_i64(
            ServiceKind::Payment,
            "SELECT COUNT(*) FROM payments WHERE order_id = ?1 AND status = 'failed'",
            &[&order_id]
        )?,
        1
    );
    assert_eq!(
        stack.query_i64(
            ServiceKind::Payment,
            "SELECT COUNT(*) FROM refunds WHERE order_id = ?1",
            &[&order_id]
        )?,
        0
    );
    assert_eq!(
        stack.query_i64(
            ServiceKind::Inventory,
            "SELECT COUNT(*) FROM reservations WHERE order_id = ?1 AND status IN ('reserved', 'released')",
            &[&order_id]
        )?,
        0
    );
    assert_eq!(
        stack.query_i64(ServiceKind::Inventory, stock_sql, &["WIDGET-42"])?,
        initial
    );
    // The saga's end is announced for other consumers.
    stack.kafka()?.find("orders", |m| {
        saga_tests::is_event(m, "shop.order.cancelled.v1", &order_id)
    })?;
    Ok(())
}
