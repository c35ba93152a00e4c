//! The CloudEvents attributes a saga message carries as Kafka headers, and how a consumer reads
//! its event type from them.
//!
//! The message's value is the structured CloudEvents document (the source of truth, what
//! consumers decode). Its `specversion`, `id`, `source` and `type` are repeated as headers
//! named as the Kafka protocol binding names them in binary content mode — the attribute name
//! prefixed with `ce_` (CloudEvents Kafka Protocol Binding 1.0, §3.2.3 "Metadata Headers",
//! <https://github.com/cloudevents/spec/blob/main/cloudevents/bindings/kafka-protocol-binding.md#323-metadata-headers>)
//! — so that brokers' UIs, routers and other tools can see what an event is without parsing
//! it, and our own consumers can pass over the types they do not handle before any decoding.

use events::{EventKind, SPEC_VERSION};
use rdkafka::message::{Header, Headers, OwnedHeaders};

/// `ce_specversion`: the CloudEvents version, `1.0`.
pub const CE_SPECVERSION: &str = "ce_specversion";
/// `ce_id`: the event's id.
pub const CE_ID: &str = "ce_id";
/// `ce_source`: the producing service.
pub const CE_SOURCE: &str = "ce_source";
/// `ce_type`: the event's type (`shop.order.created.v1`).
pub const CE_TYPE: &str = "ce_type";

/// The private header that named the type before the `ce_` headers. Still read when `ce_type`
/// is absent: during a rolling upgrade, relays of the previous version write only this one.
pub const LEGACY_EVENT_TYPE: &str = "event-type";

/// The attributes of one event sent as `ce_` headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEventHeaders {
    /// The CloudEvents `id`.
    pub id: String,
    /// The CloudEvents `source`.
    pub source: String,
    /// The CloudEvents `type`.
    pub event_type: String,
}

impl CloudEventHeaders {
    /// Appends the `ce_` headers to `headers`.
    pub(crate) fn write(&self, headers: OwnedHeaders) -> OwnedHeaders {
        [
            (CE_SPECVERSION, SPEC_VERSION),
            (CE_ID, self.id.as_str()),
            (CE_SOURCE, self.source.as_str()),
            (CE_TYPE, self.event_type.as_str()),
        ]
        .into_iter()
        .fold(headers, |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        })
    }
}

/// The event kind a message's headers declare: `ce_type`, else the legacy `event-type`; `None`
/// if neither is there or names a known kind (the consumer then decodes the message to learn).
pub fn declared_kind(headers: &impl Headers) -> Option<EventKind> {
    let value = |name: &str| {
        headers
            .iter()
            .find(|header| header.key == name)
            .and_then(|header| header.value)
    };
    let type_name = value(CE_TYPE).or_else(|| value(LEGACY_EVENT_TYPE))?;
    EventKind::from_type_name(std::str::from_utf8(type_name).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(headers: &OwnedHeaders) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|header| {
                let value = header.value.unwrap_or_default();
                (
                    header.key.to_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn the_attributes_go_out_as_ce_prefixed_headers() {
        let attributes = CloudEventHeaders {
            id: "0b1c".into(),
            source: "/shop/payment-svc".into(),
            event_type: "shop.payment.completed.v1".into(),
        };
        let headers = attributes.write(crate::kafka::headers(&[("content-type", "x")]));
        assert_eq!(
            pairs(&headers),
            [
                ("content-type", "x"),
                ("ce_specversion", "1.0"),
                ("ce_id", "0b1c"),
                ("ce_source", "/shop/payment-svc"),
                ("ce_type", "shop.payment.completed.v1"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(declared_kind(&headers), Some(EventKind::PaymentCompleted));
    }

    #[test]
    fn the_type_is_read_from_ce_type_then_from_the_legacy_header() {
        let both = crate::kafka::headers(&[
            (LEGACY_EVENT_TYPE, "shop.order.created.v1"),
            (CE_TYPE, "shop.order.cancelled.v1"),
        ]);
        assert_eq!(declared_kind(&both), Some(EventKind::OrderCancelled));
        let legacy = crate::kafka::headers(&[(LEGACY_EVENT_TYPE, "shop.order.created.v1")]);
        assert_eq!(declared_kind(&legacy), Some(EventKind::OrderCreated));
        let unknown = crate::kafka::headers(&[(CE_TYPE, "shop.order.teleported.v1")]);
        assert_eq!(declared_kind(&unknown), None);
        assert_eq!(declared_kind(&OwnedHeaders::new()), None);
    }
}
