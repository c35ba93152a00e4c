//! A letter sent back reaches its saga topic as it was; once marked, the tail shows it, and
//! every copy of its origin, replayed. What cannot go back is refused, saying why.

use std::collections::BTreeMap;

use anyhow::Result;
use rdkafka::message::{Headers, Message};

use dead_letters::{DeadLetter, ReplayError, Replayer};
use embedded_broker::EmbeddedBroker;
use events::OrderId;

use crate::helpers::{Letter, config, dead_letter, find, tail, until};

#[tokio::test]
async fn a_letter_sent_back_and_marked_is_replayed_with_its_copies() -> Result<()> {
    let broker = EmbeddedBroker::start(1)?;
    let (poison, other) = (OrderId::new(), OrderId::new());
    // One message given up by two groups, and another.
    for (order_id, service, offset) in [
        (poison, "inventory-svc", 40),
        (poison, "order-api", 40),
        (other, "order-api", 41),
    ] {
        let origin = ("payments", 2, offset);
        dead_letter(
            &broker,
            &Letter {
                dlq_topic: "payments.dlq",
                order_id,
                service,
                origin,
            },
        )
        .await?;
    }
    let (tail, _stop) = tail(&broker)?;
    let letters = until(&tail, "three letters", |tail| {
        Some(tail.snapshot()).filter(|letters| letters.len() == 3)
    })
    .await?;

    let replayer = Replayer::new(config(&broker))?;
    let topic = replayer.send_back(&letters[0]).await?;
    assert_eq!(topic, "payments");
    let sent = find(&broker, "payments", poison.to_string().as_bytes())?;
    let headers: BTreeMap<&str, &[u8]> = sent
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| (header.key, header.value.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(sent.payload(), Some(letters[0].payload.as_slice()));
    assert_eq!(
        headers.get("ce_type"),
        Some(&&b"shop.payment.completed.v1"[..])
    );
    assert_eq!(
        headers.get("dlq.replayed_from"),
        Some(&&b"payments.dlq/0/0"[..])
    );
    assert!(
        !headers
            .keys()
            .any(|key| key.starts_with("dlq.") && *key != "dlq.replayed_from"),
        "the failure headers stay behind: {headers:?}"
    );

    replayer.mark_replayed(&letters[0], topic).await?;
    let flags = until(&tail, "the replayed flags", |tail| {
        let flags: Vec<bool> = tail.snapshot().iter().map(|l| l.replayed).collect();
        flags.contains(&true).then_some(flags)
    })
    .await?;
    assert_eq!(flags, [true, true, false], "the copy too, the other not");
    assert_eq!(tail.get("payments.dlq/0/1").map(|l| l.replayed), Some(true));
    Ok(())
}

/// A letter of `dlq_topic` with `headers`, never written anywhere: refusals come first.
fn letter(dlq_topic: &str, headers: &[(&str, &str)]) -> DeadLetter {
    DeadLetter {
        id: format!("{dlq_topic}/0/0"),
        dlq_topic: dlq_topic.to_owned(),
        key: Vec::new(),
        payload: Vec::new(),
        headers: headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        replayed: false,
    }
}

#[tokio::test]
async fn what_cannot_go_back_is_refused_saying_why() -> Result<()> {
    let broker = EmbeddedBroker::start_empty(1)?;
    broker.create_topic("payments.dlq", 1)?;
    let replayer = Replayer::new(config(&broker))?;

    let refusal = replayer.send_back(&letter("secrets.dlq", &[])).await;
    assert!(
        matches!(refusal, Err(ReplayError::NotShopTopic { .. })),
        "{refusal:?}"
    );

    let callback = [("dlq.original.topic", "webhooks"), ("webhook.id", "msg_01")];
    let refusal = replayer.send_back(&letter("orders.dlq", &callback)).await;
    assert!(
        matches!(&refusal, Err(ReplayError::Callback { delivery }) if delivery == "msg_01"),
        "{refusal:?}"
    );

    let elsewhere = [("dlq.original.topic", "webhooks")];
    let refusal = replayer
        .send_back(&letter("payments.dlq", &elsewhere))
        .await;
    assert!(
        matches!(&refusal, Err(ReplayError::OtherOrigin { from, topic: "payments" }) if from == "webhooks"),
        "{refusal:?}"
    );

    // Sending would create it (the broker auto-creates topics): refused instead, and not
    // created by asking.
    let refusal = replayer.send_back(&letter("payments.dlq", &[])).await;
    assert!(
        matches!(
            refusal,
            Err(ReplayError::TopicMissing { topic: "payments" })
        ),
        "{refusal:?}"
    );
    let refusal = replayer.send_back(&letter("payments.dlq", &[])).await;
    assert!(
        matches!(refusal, Err(ReplayError::TopicMissing { .. })),
        "still missing: {refusal:?}"
    );
    Ok(())
}
