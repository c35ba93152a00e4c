//! A message whose handler keeps failing is dead-lettered with its reason; once the cause is
//! fixed, `shopctl dlq replay` sends it back and the saga finishes — and replaying it again
//! changes nothing.

use anyhow::{Context, Result};

use saga_tests::{ServiceKind, Stack, Status, is_event, wait_for};

#[tokio::test]
async fn a_dead_lettered_event_is_replayed_once_its_cause_is_gone() -> Result<()> {
    let stack = Stack::start_with_env(&[
        ("DB_BUSY_TIMEOUT_MS", "20"),
        ("CONSUMER_MAX_ATTEMPTS", "2"),
        ("CONSUMER_INITIAL_BACKOFF_MS", "10"),
    ])
    .await?;
    let initial = stack.stock("WIDGET-42")?.available;

    // Hold inventory-svc's database: every write it tries waits out its 20 ms and fails
    // (SQLite: "database is locked"; Postgres: "canceling statement due to lock timeout").
    let lock = stack.lock_db(ServiceKind::Inventory)?;
    let order_id = stack.place_order("WIDGET-42", 2, "pm_visa_4242").await?;
    let kafka = stack.kafka()?;
    let dead = kafka.find("payments.dlq", |m| {
        is_event(m, "shop.payment.completed.v1", &order_id)
            && m.headers
                .iter()
                .any(|(k, v)| k == "dlq.service" && v == "inventory-svc")
    })?;
    let header = |name: &str| {
        dead.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("dlq.error.class"), Some("transient"));
    assert_eq!(header("dlq.attempts"), Some("2"));
    assert!(
        header("dlq.error.message").is_some_and(|m| m.contains("lock")),
        "{:?}",
        dead.headers
    );
    // The copy keeps the event's own headers: a replay sends back the event as it was.
    let event_id = serde_json::from_slice::<serde_json::Value>(&dead.payload)?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(header("ce_type"), Some("shop.payment.completed.v1"));
    assert_eq!(header("ce_id"), Some(event_id.as_str()));
    assert_eq!(header("ce_source"), Some("/shop/payment-svc"));
    stack
        .wait_order(&order_id, |o| o.status == Status::PaymentConfirmed)
        .await?;
    lock.release()?;

    // The operator looks, then replays.
    let id = format!("payments.dlq/{}/{}", dead.partition, dead.offset);
    let listing = stack.shopctl(&["dlq", "list"])?;
    let line = listing
        .lines()
        .find(|line| line.starts_with(&id))
        .with_context(|| listing.clone())?;
    assert!(
        line.contains("inventory-svc") && line.contains("transient"),
        "{line}"
    );
    assert!(stack.shopctl(&["dlq", "show", &id])?.contains(&order_id));
    stack.shopctl(&["dlq", "replay", &id])?;

    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(order.status, Status::Confirmed, "{order}");
    assert_eq!(stack.stock("WIDGET-42")?.available, initial - 2);

    // The replayed letter has left the list of those to handle, and `--all` passes it over.
    let listing = stack.shopctl(&["dlq", "list"])?;
    assert!(!listing.contains(&id), "{listing}");
    assert!(
        listing.contains("replayed dead letter(s) not shown"),
        "{listing}"
    );
    assert!(
        stack
            .shopctl(&["dlq", "list", "--include-replayed"])?
            .contains(&id)
    );
    let again = stack.shopctl(&["dlq", "replay", "--all", "--topic", "payments"])?;
    assert!(again.contains("0 dead letter(s) replayed"), "{again}");

    // Replaying it again anyway changes nothing: the inbox recognises the event.
    stack.shopctl(&["dlq", "replay", "--all", "--include-replayed"])?;
    wait_for(
        || stack.redeliveries(ServiceKind::Inventory, &event_id),
        |redeliveries| *redeliveries == Some(1),
    )
    .await?;
    assert_eq!(stack.stock("WIDGET-42")?.available, initial - 2);
    assert_eq!(stack.order(&order_id).await?.history, order.history);
    Ok(())
}
