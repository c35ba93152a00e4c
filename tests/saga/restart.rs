//! A crash of payment-svc while orders are in flight must not lose or double-charge any.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use futures::StreamExt;
use futures::future::try_join_all;

use events::CancellationReason;

use saga_tests::{DEADLINE, ServiceKind, Stack, Status};

/// (sku, payment method, expected status, expected reason)
const MIX: [(&str, &str, Status, Option<CancellationReason>); 3] = [
    ("WIDGET-42", "pm_visa_4242", Status::Confirmed, None),
    (
        "WIDGET-42",
        "pm_card_declined",
        Status::Cancelled,
        Some(CancellationReason::PaymentDeclined),
    ),
    (
        "GIZMO-9",
        "pm_visa_4242",
        Status::Cancelled,
        Some(CancellationReason::OutOfStock),
    ),
];

#[tokio::test]
async fn orders_survive_a_payment_service_crash() -> Result<()> {
    let mut stack = Stack::start().await?;
    let mut expected = HashMap::new();
    // Ready comes before the consumer has started and joined its group: wait for that, so that
    // the kill below hits a service that is consuming.
    stack
        .wait_for_shared_partitions(ServiceKind::Payment)
        .await?;

    // A burst of orders, then SIGKILL payment-svc while they are being charged.
    let burst = try_join_all((0..12).map(|i| {
        let (sku, method, _, _) = MIX[i % MIX.len()];
        let stack = &stack;
        async move {
            stack
                .place_order(sku, 1, method)
                .await
                .map(|id| (id, i % MIX.len()))
        }
    }))
    .await?;
    stack.payment.kill()?;
    // More orders while it is down: accepted, and waiting in Kafka.
    let mut while_down = Vec::new();
    for i in 0..6 {
        let (sku, method, _, _) = MIX[i % MIX.len()];
        while_down.push((stack.place_order(sku, 1, method).await?, i % MIX.len()));
    }
    stack.restart(ServiceKind::Payment).await?;
    expected.extend(burst.into_iter().chain(while_down));

    for (order_id, case) in &expected {
        let (_, _, status, reason) = MIX[*case];
        let order = stack.wait_terminal(order_id).await?;
        assert_eq!(order.status, status, "{order}");
        assert_eq!(order.cancellation_reason, reason, "{order}");
    }

    // No order was charged twice or refunded twice: counted in distinct events, since a relay
    // killed between sending an event and deleting its outbox row sends the same event (same
    // id) again after the restart, which the consumers' inboxes absorb.
    let events = stack
        .kafka()?
        .read_all("payments")?
        .iter()
        .map(|message| {
            let doc: serde_json::Value = serde_json::from_slice(&message.payload)?;
            let field = |name: &str| {
                doc[name]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("no {name} in {doc}"))
            };
            Ok((field("type")?, field("subject")?, field("id")?))
        })
        .collect::<Result<HashSet<(String, String, String)>>>()?;
    for (order_id, case) in &expected {
        let count = |event_type: &str| {
            events
                .iter()
                .filter(|(kind, subject, _)| kind == event_type && subject == order_id)
                .count()
        };
        let charged = usize::from(
            MIX[*case].2 == Status::Confirmed
                || MIX[*case].3 == Some(CancellationReason::OutOfStock),
        );
        assert_eq!(
            count("shop.payment.completed.v1"),
            charged,
            "charges of {order_id}"
        );
        assert_eq!(
            count("shop.payment.refunded.v1"),
            usize::from(MIX[*case].3 == Some(CancellationReason::OutOfStock)),
            "refunds of {order_id}"
        );
    }
    let rows = stack.rows_in(ServiceKind::Payment, "payments")?;
    assert_eq!(rows, i64::try_from(expected.len())?);

    // What a failed run keeps: each start's log, the killed one's too.
    let kept = stack.keep_logs()?;
    for log in ["payment-svc.1.log", "payment-svc.2.log", "order-api.1.log"] {
        let text = std::fs::read_to_string(kept.join(log)).with_context(|| log.to_owned())?;
        assert!(text.contains("Consumer started"), "{log} holds:\n{text}");
    }
    Ok(())
}

#[tokio::test]
async fn services_stop_cleanly_on_sigterm_even_with_streams_open() -> Result<()> {
    let mut stack = Stack::start_with_env(&[("PSP_SIM_SLOW_MS", "60000")]).await?;
    let done = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    stack.wait_terminal(&done).await?;
    // An order that will not finish for a minute, and a client following it.
    let open = stack.place_order("WIDGET-42", 1, "pm_slow_3s").await?;
    stack
        .wait_order(&open, |o| o.status == Status::PaymentProcessing)
        .await?;
    let response = stack
        .http
        .get(stack.url(&format!("/api/orders/{open}/events")))
        .timeout(DEADLINE)
        .send()
        .await?;
    let mut body = response.bytes_stream();
    let mut received = String::new();
    // The stream is open once the history (pending, payment_processing) has arrived.
    while received.matches("event: status_update").count() < 2 {
        let chunk = body.next().await.context("stream ended early")??;
        received.push_str(&String::from_utf8_lossy(&chunk));
    }

    assert!(
        stack.order_api.terminate().await?,
        "order-api exited with an error"
    );
    // The server ended the stream cleanly (no error), with nothing more in it.
    while let Some(chunk) = body.next().await {
        received.push_str(&String::from_utf8_lossy(&chunk?));
    }
    assert_eq!(
        received.matches("event: status_update").count(),
        2,
        "{received}"
    );
    assert!(
        stack.inventory.terminate().await?,
        "inventory-svc exited with an error"
    );
    assert!(
        stack.payment.terminate().await?,
        "payment-svc exited with an error"
    );
    Ok(())
}
