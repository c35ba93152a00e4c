//! A tail finds the dead letters already there, says when it has caught up, and follows new
//! ones and new dead-letter topics.

use anyhow::Result;

use embedded_broker::EmbeddedBroker;
use events::OrderId;

use crate::helpers::{Letter, dead_letter, ids, tail, until};

#[tokio::test]
async fn a_tail_reads_what_is_there_then_follows_what_comes() -> Result<()> {
    let broker = EmbeddedBroker::start(1)?;
    let order_id = OrderId::new();
    for (dlq_topic, service, offset) in [
        ("payments.dlq", "inventory-svc", 40),
        ("payments.dlq", "order-api", 41),
        ("orders.dlq", "payment-svc", 7),
    ] {
        let origin = (dlq_topic.trim_end_matches(".dlq"), 2, offset);
        dead_letter(
            &broker,
            &Letter {
                dlq_topic,
                order_id,
                service,
                origin,
            },
        )
        .await?;
    }

    let (tail, _stop) = tail(&broker)?;
    until(&tail, "catching up", |tail| tail.caught_up().then_some(())).await?;

    // Caught up means read to the end the topics had at the start: all three, already, each
    // partition's oldest first (the topics come in whatever order their fetches answered).
    let letters = tail.snapshot();
    let read = ids(&letters);
    let mut sorted = read.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["orders.dlq/0/0", "payments.dlq/0/0", "payments.dlq/0/1"]
    );
    let position = |id: &str| read.iter().position(|read| *read == id);
    assert!(
        position("payments.dlq/0/0") < position("payments.dlq/0/1"),
        "{read:?}"
    );
    let letter = tail.get("payments.dlq/0/1").expect("kept");
    assert_eq!(letter.service(), Some("order-api"));
    assert_eq!(letter.order_id(), Some(order_id));
    assert_eq!(letter.origin().as_deref(), Some("payments/2/41"));
    assert_eq!(letter.attempts(), Some(3));
    assert_eq!(letter.event_type(), Some("shop.payment.completed.v1"));
    assert!(letter.last_failure() > letter.first_failure());
    assert!(!letter.replayed);
    assert_eq!(tail.dropped(), 0);

    let before = *tail.changes().borrow();
    let origin = ("payments", 5, 99);
    dead_letter(
        &broker,
        &Letter {
            dlq_topic: "payments.dlq",
            order_id,
            service: "inventory-svc",
            origin,
        },
    )
    .await?;
    let letter = until(&tail, "the new letter", |tail| tail.get("payments.dlq/0/2")).await?;
    assert_eq!(letter.origin().as_deref(), Some("payments/5/99"));
    // The letter is in the index a moment before the version that announces it moves on.
    until(&tail, "a new version", |tail| {
        (*tail.changes().borrow() > before).then_some(())
    })
    .await?;
    assert_eq!(tail.snapshot().len(), 4);
    Ok(())
}

#[tokio::test]
async fn a_dead_letter_topic_created_after_the_start_is_followed() -> Result<()> {
    let broker = EmbeddedBroker::start_empty(1)?;
    let (tail, _stop) = tail(&broker)?;
    // Nothing to read: caught up as soon as the broker answered.
    until(&tail, "catching up", |tail| tail.caught_up().then_some(())).await?;

    broker.create_topic("inventory.dlq", 1)?;
    let letter = Letter {
        dlq_topic: "inventory.dlq",
        order_id: OrderId::new(),
        service: "order-api",
        origin: ("inventory", 0, 3),
    };
    dead_letter(&broker, &letter).await?;
    let found = until(&tail, "the letter of the new topic", |tail| {
        tail.get("inventory.dlq/0/0")
    })
    .await?;
    assert_eq!(found.dlq_topic, "inventory.dlq");
    assert_eq!(found.order_id(), Some(letter.order_id));
    Ok(())
}
