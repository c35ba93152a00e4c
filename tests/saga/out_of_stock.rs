use anyhow::Result;
use serde_json::{Value, json};

use saga_tests::{ServiceKind, Stack};

fn statuses(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|e| e["status"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn out_of_stock_after_payment_is_refunded_exactly_once() -> Result<()> {
    let stack = Stack::start().await?;

    let order_id = stack.place_order("GIZMO-9", 1, "pm_visa_4242").await?;
    let order = stack.wait_terminal(&order_id).await?;

    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancellation_reason"], "out_of_stock");
    assert_eq!(
        statuses(&order),
        [
            "pending",
            "payment_processing",
            "payment_confirmed",
            "cancelled"
        ]
    );
    let one = |sql: &str| stack.query_i64(ServiceKind::Payment, sql, &[&order_id]);
    assert_eq!(
        one("SELECT COUNT(*) FROM payments WHERE order_id = ?1 AND charge_id IS NOT NULL")?,
        1
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM payments WHERE order_id = ?1 AND status = 'refunded'")?,
        1
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM refunds WHERE order_id = ?1 AND status = 'refunded'")?,
        1
    );
    assert_eq!(
        stack.query_i64(
            ServiceKind::Inventory,
            "SELECT COUNT(*) FROM reservations WHERE order_id = ?1 AND status = 'rejected'",
            &[&order_id]
        )?,
        1
    );
    let payments = stack.kafka()?.read_all("payments")?;
    let count = |event_type: &str| {
        payments
            .iter()
            .filter(|m| saga_tests::is_event(m, event_type, &order_id))
            .count()
    };
    assert_eq!(count("shop.payment.completed.v1"), 1, "one charge");
    assert_eq!(count("shop.payment.refunded.v1"), 1, "one refund");
    Ok(())
}

#[tokio::test]
async fn reservation_is_all_or_nothing() -> Result<()> {
    let stack = Stack::start().await?;
    let stock_sql = "SELECT available FROM stock WHERE sku = ?1";
    let widgets = stack.query_i64(ServiceKind::Inventory, stock_sql, &["WIDGET-42"])?;

    // One line in stock, one not: nothing may be reserved.
    let response = stack
        .post_order(&json!({
            "user_id": "usr_test",
            "items": [{"sku": "WIDGET-42", "quantity": 1}, {"sku": "GIZMO-9", "quantity": 1}],
            "payment_method": "pm_visa_4242",
        }))
        .await?;
    let order_id = response.json::<Value>().await?["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(order["cancellation_reason"], "out_of_stock");
    assert_eq!(
        stack.query_i64(ServiceKind::Inventory, stock_sql, &["WIDGET-42"])?,
        widgets
    );

    // A limited item sells out: 5 units, orders of 3 then 3.
    let first = stack.place_order("LIMITED-1", 3, "pm_visa_4242").await?;
    assert_eq!(stack.wait_terminal(&first).await?["status"], "confirmed");
    let second = stack.place_order("LIMITED-1", 3, "pm_visa_4242").await?;
    assert_eq!(
        stack.wait_terminal(&second).await?["cancellation_reason"],
        "out_of_stock"
    );
    assert_eq!(
        stack.query_i64(ServiceKind::Inventory, stock_sql, &["LIMITED-1"])?,
        2
    );
    Ok(())
}
