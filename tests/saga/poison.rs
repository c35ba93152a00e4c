//! A message no handler can understand goes to the dead-letter topic with the reason, and the
//! consumer keeps going.

use anyhow::Result;

use saga_tests::{Stack, Status};

fn header<'a>(message: &'a saga_tests::FoundMessage, name: &str) -> Option<&'a str> {
    message
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_consumers_go_on() -> Result<()> {
    let stack = Stack::start().await?;
    let kafka = stack.kafka()?;
    // Not a CloudEvent at all, and a CloudEvent of a type nobody knows, on a topic that both
    // order-api and inventory-svc consume.
    kafka
        .produce("payments", b"ord_poison", b"{not json", &[])
        .await?;
    let unknown = serde_json::json!({
        "specversion": "1.0", "id": "0190d1c2-a3b4-7c8d-9e0f-1a2b3c4d5e6f", "source": "/elsewhere",
        "type": "shop.payment.teleported.v1", "subject": "ord_0190d1c2a3b47c8d9e0f1a2b3c4d5e6f",
        "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json",
        "correlationid": "ord_0190d1c2a3b47c8d9e0f1a2b3c4d5e6f", "data": {}
    });
    kafka
        .produce(
            "payments",
            b"ord_poison",
            unknown.to_string().as_bytes(),
            &[],
        )
        .await?;

    // Each consuming service dead-letters each message once, untouched, with the reason.
    let dead = kafka.find_all("payments.dlq", &|_| true, 4)?;
    for service in ["order-api", "inventory-svc"] {
        let mine: Vec<_> = dead
            .iter()
            .filter(|m| header(m, "dlq.service") == Some(service))
            .collect();
        assert_eq!(mine.len(), 2, "{service}: {dead:?}");
        let garbage = mine
            .iter()
            .find(|m| m.payload == b"{not json")
            .expect("the malformed message");
        assert_eq!(header(garbage, "dlq.error.class"), Some("poison"));
        assert!(
            header(garbage, "dlq.error.message").is_some_and(|m| m.contains("malformed")),
            "{garbage:?}"
        );
        assert_eq!(header(garbage, "dlq.original.topic"), Some("payments"));
        assert!(header(garbage, "dlq.original.offset").is_some());
        assert_eq!(garbage.key, b"ord_poison");
        let unknown_type = mine
            .iter()
            .find(|m| m.payload != b"{not json")
            .expect("the unknown type");
        assert!(
            header(unknown_type, "dlq.error.message").is_some_and(|m| m.contains("teleported")),
            "{unknown_type:?}"
        );
    }

    // …and the consumers went on: a new order still completes.
    let order_id = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    assert_eq!(
        stack.wait_terminal(&order_id).await?.status,
        Status::Confirmed
    );
    Ok(())
}
