//! The CloudEvents 1.0 envelope (structured JSON mode) around every event.
//!
//! Following CloudEvents lets other tools (brokers' UIs, routers, SDKs) understand our messages.
//! Three extension attributes tie a saga together: `correlationid` (the order id, the same on
//! every event of one saga), `causationid` (the id of the event that caused this one) and
//! `traceparent` / `tracestate` (W3C trace context, also sent as Kafka headers).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{Event, EventError, EventId, EventKind};

/// The only CloudEvents version produced and accepted.
pub const SPEC_VERSION: &str = "1.0";

const CONTENT_TYPE: &str = "application/json";

/// Everything in an envelope except the payload.
#[derive(Clone, Debug, PartialEq)]
pub struct EventMeta {
    /// Unique per event; consumers deduplicate on it.
    pub id: EventId,
    /// The producing service, as a URI reference (e.g. `/shop/payment-svc`).
    pub source: String,
    /// When the fact happened.
    pub time: DateTime<Utc>,
    /// Ties every event of one saga together: the order id.
    pub correlation_id: String,
    /// The event that caused this one, if any.
    pub causation_id: Option<EventId>,
    /// W3C `traceparent` of the span that produced the event.
    pub traceparent: Option<String>,
    /// W3C `tracestate`, if any.
    pub tracestate: Option<String>,
}

/// An event in its envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The envelope attributes.
    pub meta: EventMeta,
    /// The payload.
    pub event: Event,
}

/// The wire form, shared by encoding (`data` borrowed) and decoding (`data` raw).
#[derive(Serialize, Deserialize)]
struct Wire<'a, D> {
    specversion: &'a str,
    id: EventId,
    source: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    subject: &'a str,
    time: DateTime<Utc>,
    datacontenttype: &'a str,
    correlationid: &'a str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    causationid: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tracestate: Option<&'a str>,
    data: D,
}

impl Envelope {
    /// Wraps `event`, produced by `source`, as a new event with a fresh id.
    ///
    /// The correlation id is the order id; `causation_id` names the event being handled, if any.
    pub fn new(source: &str, event: impl Into<Event>, causation_id: Option<EventId>) -> Self {
        let event = event.into();
        Self {
            meta: EventMeta {
                id: EventId::new(),
                source: source.to_owned(),
                time: Utc::now(),
                correlation_id: event.order_id().to_string(),
                causation_id,
                traceparent: None,
                tracestate: None,
            },
            event,
        }
    }

    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        self.event.kind()
    }

    /// The Kafka message key: the order id, so one saga stays in one partition.
    pub fn key(&self) -> String {
        self.event.order_id().to_string()
    }

    /// The JSON bytes sent to Kafka.
    pub fn encode(&self) -> Vec<u8> {
        let subject = self.event.order_id().to_string();
        let wire = Wire {
            specversion: SPEC_VERSION,
            id: self.meta.id,
            source: &self.meta.source,
            event_type: self.kind().type_name(),
            subject: &subject,
            time: self.meta.time,
            datacontenttype: CONTENT_TYPE,
            correlationid: &self.meta.correlation_id,
            causationid: self.meta.causation_id,
            traceparent: self.meta.traceparent.as_deref(),
            tracestate: self.meta.tracestate.as_deref(),
            data: &self.event,
        };
        // Serialising plain structs of strings, numbers and enums into memory cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Parses bytes received from Kafka; any error means the message is poison.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventError> {
        let wire: Wire<'_, &RawValue> =
            serde_json::from_slice(bytes).map_err(EventError::MalformedEnvelope)?;
        if wire.specversion != SPEC_VERSION {
            return Err(EventError::UnsupportedSpecVersion(
                wire.specversion.to_owned(),
            ));
        }
        let kind = EventKind::from_type_name(wire.event_type)
            .ok_or_else(|| EventError::UnknownType(wire.event_type.to_owned()))?;
        let event = Event::decode_data(kind, wire.data)?;
        if wire.subject != event.order_id().to_string() {
            return Err(EventError::invalid(
                "subject",
                "must be the order id of the payload",
            ));
        }
        Ok(Self {
            meta: EventMeta {
                id: wire.id,
                source: wire.source.to_owned(),
                time: wire.time,
                correlation_id: wire.correlationid.to_owned(),
                causation_id: wire.causationid,
                traceparent: wire.traceparent.map(str::to_owned),
                tracestate: wire.tracestate.map(str::to_owned),
            },
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Currency, Money, OrderId, PaymentInitiated};

    fn sample() -> Envelope {
        Envelope::new(
            "/shop/payment-svc",
            PaymentInitiated {
                order_id: OrderId::new(),
                amount: Money::new(4998, Currency::USD),
            },
            Some(EventId::new()),
        )
    }

    #[test]
    fn round_trips() -> Result<(), EventError> {
        let mut envelope = sample();
        envelope.meta.traceparent =
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        let decoded = Envelope::decode(&envelope.encode())?;
        assert_eq!(decoded, envelope);
        Ok(())
    }

    #[test]
    fn correlation_id_is_the_order_id() {
        let envelope = sample();
        assert_eq!(envelope.meta.correlation_id, envelope.key());
    }

    #[test]
    fn rejects_unknown_types_and_bad_data() {
        let json = String::from_utf8(sample().encode()).unwrap_or_default();
        let unknown = json.replace("shop.payment.initiated.v1", "shop.payment.teleported.v1");
        assert!(matches!(
            Envelope::decode(unknown.as_bytes()),
            Err(EventError::UnknownType(_))
        ));
        let bad_data = json.replace("\"amount_minor\":4998", "\"amount_minor\":\"lots\"");
        assert!(matches!(
            Envelope::decode(bad_data.as_bytes()),
            Err(EventError::InvalidData { .. })
        ));
        assert!(matches!(
            Envelope::decode(b"not json"),
            Err(EventError::MalformedEnvelope(_))
        ));
    }
}
