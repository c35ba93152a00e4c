//! order-api's copies of failed callbacks.
//!
//! order-api dead-letters a callback that never got through (`order_api::webhooks::dead_letter`)
//! to the order events' dead-letter topic, so that operators find it with the other dead
//! letters. Its original was an HTTP request, not a message: no topic takes it back. Replaying
//! it means asking order-api to send it again (`POST /admin/deliveries/{id}/retry`), which keeps
//! its `webhook-id` and signing secret, so a receiver that got it after all drops the repeat.
//! The names here are the contract between the copy's writer and its readers.

use platform::kafka::dead_letter_headers as h;

use crate::DeadLetter;

/// Where copies go: the dead-letter topic of the saga's order events.
pub const TOPIC: &str = "orders.dlq";

/// The `dlq.original.topic` of a copy: its original was no message but an HTTP request, so
/// replaying it means asking order-api to send it again.
pub const ORIGIN: &str = "webhooks";

/// The header of a copy naming its delivery (the `webhook-id` receivers saw).
pub const DELIVERY_ID_HEADER: &str = "webhook.id";

/// The delivery a letter is the copy of, if it is order-api's copy of a failed callback: in
/// [`TOPIC`], from the [`ORIGIN`] origin, naming its delivery.
pub fn delivery_id(letter: &DeadLetter) -> Option<&str> {
    if letter.dlq_topic != TOPIC || letter.header(h::ORIGINAL_TOPIC) != Some(ORIGIN) {
        return None;
    }
    letter
        .header(DELIVERY_ID_HEADER)
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{DeadLetter, delivery_id};

    fn letter(dlq_topic: &str, headers: &[(&str, &str)]) -> DeadLetter {
        DeadLetter {
            id: format!("{dlq_topic}/0/1"),
            dlq_topic: dlq_topic.to_owned(),
            key: Vec::new(),
            payload: Vec::new(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            replayed: false,
        }
    }

    #[test]
    fn only_order_api_s_copies_of_callbacks_name_a_delivery() {
        let callback = [
            ("dlq.original.topic", "webhooks"),
            ("webhook.id", "msg_0193"),
        ];
        assert_eq!(
            delivery_id(&letter("orders.dlq", &callback)),
            Some("msg_0193")
        );
        // Elsewhere, or without its id, it is no copy order-api wrote.
        assert_eq!(delivery_id(&letter("payments.dlq", &callback)), None);
        assert_eq!(
            delivery_id(&letter("orders.dlq", &[("dlq.original.topic", "webhooks")])),
            None
        );
        assert_eq!(
            delivery_id(&letter(
                "orders.dlq",
                &[("dlq.original.topic", "orders"), ("webhook.id", "msg_0193")]
            )),
            None
        );
    }
}
