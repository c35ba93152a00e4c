//! When accepted work cannot be published, order-api sheds load instead of piling it up; a
//! slow or stopped consumer downstream is not such a case (the broker holds its backlog).

use std::time::Duration;

use anyhow::{Result, ensure};
use reqwest::StatusCode;
use serde_json::json;

use saga_tests::{Problem, ServiceKind, Stack};

use crate::invariants::settled;
use crate::load::Placer;

#[tokio::test]
async fn orders_are_refused_with_retry_after_when_the_outbox_backs_up() -> Result<()> {
    let mut stack = Stack::start_with_env(&[("OUTBOX_BACKLOG_LIMIT", "3")]).await?;
    // Without a broker nothing can be published: the outbox only grows.
    stack.broker.kill()?;
    let body = json!({"user_id": "usr_test", "items": [{"sku": "WIDGET-42", "quantity": 1}], "payment_method": "pm_visa_4242"});
    let mut accepted = 0;
    let refused = loop {
        let response = stack.post_order(&body).await?;
        if response.status() == StatusCode::ACCEPTED {
            accepted += 1;
            assert!(accepted <= 4, "the backlog limit was not enforced");
            continue;
        }
        break response;
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    Problem::expect(refused, StatusCode::SERVICE_UNAVAILABLE).await?;
    assert_eq!(accepted, 4, "orders up to the limit are accepted");
    // Every accepted order is still there, waiting in the outbox.
    let waiting = stack.rows_in(saga_tests::ServiceKind::OrderApi, "outbox")?;
    assert_eq!(waiting, 4);
    Ok(())
}

#[tokio::test]
async fn a_stopped_consumer_sheds_no_load_and_a_full_outbox_loses_nothing() -> Result<()> {
    let mut stack = Stack::start_with_env(&[
        ("OUTBOX_BACKLOG_LIMIT", "3"),
        ("BROKER_CONTROL_ADDR", "127.0.0.1:0"),
    ])
    .await?;
    // inventory-svc stops consuming: paid orders wait for their stock in the broker, not in
    // order-api's outbox, so nothing is refused however long it stays away.
    stack.inventory.kill()?;
    let downstream = Placer::start(&stack, 18).finish().await?;
    ensure!(
        downstream.refused == 0,
        "order-api refused {} orders because inventory-svc was stopped",
        downstream.refused
    );

    // Now order-api cannot publish either: its outbox crosses the limit and it sheds load.
    stack.broker_fault("clients/order-api/down").await?;
    let shed = Placer::start(&stack, 12).finish().await?;
    ensure!(
        shed.refused > 0 && shed.accepted.len() <= 4,
        "with its outbox over the limit order-api accepted {} and refused {} orders",
        shed.accepted.len(),
        shed.refused
    );

    stack.broker_fault("clients/order-api/up").await?;
    stack.restart(ServiceKind::Inventory).await?;
    let accepted: Vec<String> = downstream
        .accepted
        .into_iter()
        .chain(shed.accepted)
        .collect();
    let report = settled(&stack, &accepted, Duration::from_secs(40)).await?;
    eprintln!(
        "backpressure: {} accepted, {} refused with Retry-After\n{report}",
        accepted.len(),
        shed.refused
    );
    Ok(())
}
