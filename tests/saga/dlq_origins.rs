//! `shopctl dlq replay` sends each original message back once, however many consumer groups
//! dead-lettered it, and refuses letters whose original was not on the saga topic they would go
//! back to, instead of publishing them where nothing reads them.

use anyhow::{Context, Result, ensure};

use saga_tests::{FoundMessage, Stack};

fn header<'a>(message: &'a FoundMessage, name: &str) -> Option<&'a str> {
    message
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn id_of(message: &FoundMessage) -> String {
    format!("payments.dlq/{}/{}", message.partition, message.offset)
}

#[tokio::test]
async fn dlq_replay_sends_a_message_dead_lettered_by_two_groups_once() -> Result<()> {
    let stack = Stack::start().await?;
    let kafka = stack.kafka()?;
    // order-api and inventory-svc both consume `payments`: each group gives this up.
    kafka
        .produce("payments", b"ord_poison_twice", b"{not json", &[])
        .await?;
    let copies = kafka.find_all("payments.dlq", &|m| m.key == b"ord_poison_twice", 2)?;
    let origin = |m: &FoundMessage| {
        (
            header(m, "dlq.original.partition").map(str::to_owned),
            header(m, "dlq.original.offset").map(str::to_owned),
        )
    };
    assert_eq!(origin(&copies[0]), origin(&copies[1]), "one origin");
    assert_ne!(
        header(&copies[0], "dlq.service"),
        header(&copies[1], "dlq.service")
    );

    let out = stack.shopctl(&["dlq", "replay", "--all", "--topic", "payments"])?;
    assert!(out.contains("1 dead letter(s) replayed"), "{out}");

    // Both copies have left the list of letters still to handle.
    let listing = stack.shopctl(&["dlq", "list", "--include-replayed", "--topic", "payments"])?;
    for copy in &copies {
        let line = listing
            .lines()
            .find(|line| line.starts_with(&id_of(copy)))
            .with_context(|| listing.clone())?;
        ensure!(line.contains("(replayed)"), "{line}");
    }
    Ok(())
}

#[tokio::test]
async fn dlq_replay_refuses_a_letter_whose_original_no_service_consumes() -> Result<()> {
    let stack = Stack::start().await?;
    let kafka = stack.kafka()?;
    // What order-api writes for a callback that failed for good: its original was an HTTP
    // request, not a message on `payments`.
    let headers: Vec<(String, String)> = [
        ("dlq.original.topic", "webhooks"),
        ("dlq.error.class", "webhook"),
        ("dlq.service", "order-api"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    kafka
        .produce(
            "payments.dlq",
            b"ord_callback",
            b"{\"type\":\"order.confirmed\"}",
            &headers,
        )
        .await?;
    let letter = kafka.find("payments.dlq", |m| m.key == b"ord_callback")?;
    let id = id_of(&letter);

    let refused = stack.shopctl(&["dlq", "replay", &id]);
    let error = format!("{:#}", refused.err().context("the replay is refused")?);
    assert!(error.contains("webhooks") && error.contains(&id), "{error}");
    assert!(
        kafka
            .read_all("payments")?
            .iter()
            .all(|m| m.key != b"ord_callback"),
        "nothing was sent to payments"
    );
    // Still there to handle.
    assert!(stack.shopctl(&["dlq", "list"])?.contains(&id));
    Ok(())
}
