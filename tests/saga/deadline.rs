//! Sagas end by their deadline, and whatever was done before it is compensated.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use saga_tests::{ServiceKind, Stack, is_event};

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

/// Waits until the wall clock is past the order's stored deadline.
async fn wait_past_deadline(stack: &Stack, order_id: &str) -> Result<()> {
    let deadline: String = stack.with_db(ServiceKind::OrderApi, |conn| {
        Ok(conn.query_row(
            "SELECT deadline_at FROM orders WHERE order_id = ?1",
            &[order_id],
            |row| row.get(0),
        )?)
    })?;
    let deadline = chrono::DateTime::parse_from_rfc3339(&deadline)?;
    while chrono::Utc::now() <= deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_timed_out_order_is_cancelled_and_its_late_charge_refunded_even_across_a_restart()
-> Result<()> {
    let mut stack = Stack::start_with_env(&[
        ("SAGA_TIMEOUT_MS", "1500"),
        ("SAGA_REAPER_INTERVAL_MS", "100"),
        ("PSP_SIM_SLOW_MS", "5000"),
        ("PAYMENT_RESUBMIT_AFTER_MS", "60000"),
    ])
    .await?;
    let stock_sql = "SELECT available FROM stock WHERE sku = ?1";
    let initial = stack.query_i64(ServiceKind::Inventory, stock_sql, &["WIDGET-42"])?;

    // The provider takes 5 s; the saga may take 1.5 s. order-api is down when the deadline
    // passes: the timer is in its database, so it fires when order-api is back.
    let order_id = stack.place_order("WIDGET-42", 1, "pm_slow_3s").await?;
    stack
        .wait_order(&order_id, |o| o["status"] == "payment_processing")
        .await?;
    stack.order_api.kill()?;
    wait_past_deadline(&stack, &order_id).await?;
    stack.restart(ServiceKind::OrderApi).await?;

    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(order["cancellation_reason"], "timeout");
    assert_eq!(
        statuses(&order),
        ["pending", "payment_processing", "cancelled"]
    );

    // The charge succeeds after the cancellation: it is refunded, once, for the timeout.
    let refunded = "SELECT COUNT(*) FROM refunds WHERE order_id = ?1 AND status = 'refunded' AND reason = 'timeout'";
    stack
        .wait_query(ServiceKind::Payment, refunded, &order_id, 1)
        .await?;
    assert_eq!(
        stack.query_i64(
            ServiceKind::Payment,
            "SELECT COUNT(*) FROM payments WHERE order_id = ?1 AND status = 'refunded'",
            &[&order_id]
        )?,
        1
    );
    // The refund row is committed with payment.refunded in the outbox, published after it.
    let kafka = stack.kafka()?;
    kafka.find("payments", |m| {
        is_event(m, "shop.payment.refunded.v1", &order_id)
    })?;
    let payments = kafka.read_all("payments")?;
    let count = |t: &str| {
        payments
            .iter()
            .filter(|m| is_event(m, t, &order_id))
            .count()
    };
    assert_eq!(count("shop.payment.refunded.v1"), 1);
    assert_eq!(
        count("shop.payment.completed.v1"),
        0,
        "a cancelled order's charge must not move on"
    );
    // Nothing was reserved, and nothing will be.
    assert_eq!(
        stack.query_i64(ServiceKind::Inventory, stock_sql, &["WIDGET-42"])?,
        initial
    );
    // Late replies do not reopen the order.
    let (_, again) = stack.get_order(&order_id).await?;
    assert_eq!(again["history"], order["history"]);
    Ok(())
}

#[tokio::test]
async fn stock_reserved_for_a_timed_out_order_is_released_once() -> Result<()> {
    let mut stack = Stack::start_with_env(&[
        ("SAGA_TIMEOUT_MS", "1500"),
        ("SAGA_REAPER_INTERVAL_MS", "100"),
    ])
    .await?;
    let stock_sql = "SELECT available FROM stock WHERE sku = ?1";
    let initial = stack.query_i64(ServiceKind::Inventory, stock_sql, &["GADGET-7"])?;

    // inventory-svc is down: the payment completes, the saga times out, the charge is refunded.
    stack.inventory.kill()?;
    let order_id = stack.place_order("GADGET-7", 4, "pm_visa_4242").await?;
    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(order["cancellation_reason"], "timeout", "{order}");
    let refunded = "SELECT COUNT(*) FROM refunds WHERE order_id = ?1 AND status = 'refunded' AND reason = 'timeout'";
    stack
        .wait_query(ServiceKind::Payment, refunded, &order_id, 1)
        .await?;

    // inventory-svc comes back to payment.completed and order.cancelled: whichever it applies
    // first, the stock ends where it started and the order holds no reservation.
    stack.restart(ServiceKind::Inventory).await?;
    let settled = "SELECT COUNT(*) FROM reservations WHERE order_id = ?1 AND status IN ('released', 'cancelled')";
    stack
        .wait_query(ServiceKind::Inventory, settled, &order_id, 1)
        .await?;
    assert_eq!(
        stack.query_i64(ServiceKind::Inventory, stock_sql, &["GADGET-7"])?,
        initial
    );
    assert_eq!(
        stack.query_i64(
            ServiceKind::Inventory,
            "SELECT reserved FROM stock WHERE sku = ?1",
            &["GADGET-7"]
        )?,
        0
    );
    let released = stack.query_i64(
        ServiceKind::Inventory,
        "SELECT COUNT(*) FROM reservations WHERE order_id = ?1 AND status = 'released'",
        &[&order_id],
    )?;
    if released == 1 {
        let kafka = stack.kafka()?;
        kafka.find("inventory", |m| {
            is_event(m, "shop.stock.released.v1", &order_id)
        })?;
        let inventory = kafka.read_all("inventory")?;
        let count = inventory
            .iter()
            .filter(|m| is_event(m, "shop.stock.released.v1", &order_id))
            .count();
        assert_eq!(count, 1, "stock.released announced once");
    }
    Ok(())
}
