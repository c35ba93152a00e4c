//! The saga timeline: one row per event of an order's saga — those order-api produced and the
//! replies it received — so a person can see what happened, when, and in which service without
//! reading three services' logs or the topics.
//!
//! A row is written in the transaction that produces the event or first handles it (the inbox
//! drops redeliveries before that point), so the timeline commits together with the state it
//! explains and holds each event once.

use chrono::{DateTime, Utc};

use events::{Envelope, EventId, OrderId};
use platform::params;
use platform::sql::{Conn, OptionalExtension, Result, Row};

use crate::saga::OrderStatus;

/// One event of an order's saga, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SagaEvent {
    /// The event's id (unique: an event is recorded once).
    pub(crate) event_id: EventId,
    /// The CloudEvents type without prefix and version, e.g. `payment.completed`.
    pub(crate) event_type: String,
    /// The producing service, from the envelope's `source`, e.g. `payment-svc`.
    pub(crate) service: String,
    /// When the producer says it happened (the envelope's `time`).
    pub(crate) occurred_at: DateTime<Utc>,
    /// When order-api recorded it: the time of the transaction that did.
    pub(crate) recorded_at: DateTime<Utc>,
    /// The W3C trace id the event belongs to, when it was traced.
    pub(crate) trace_id: Option<String>,
}

impl SagaEvent {
    /// The row for `envelope`, recorded at `recorded_at`, in trace `trace_id`.
    pub(crate) fn from_envelope(
        envelope: &Envelope,
        trace_id: Option<String>,
        recorded_at: DateTime<Utc>,
    ) -> Self {
        Self {
            event_id: envelope.meta.id,
            event_type: envelope.kind().short_name().to_owned(),
            service: service_of(&envelope.meta.source),
            occurred_at: envelope.meta.time,
            recorded_at,
            trace_id,
        }
    }

    /// Reads a row of `saga_events` selected as
    /// `event_id, event_type, service, occurred_at, recorded_at, trace_id`.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            event_id: row.get(0)?,
            event_type: row.get(1)?,
            service: row.get(2)?,
            occurred_at: row.get(3)?,
            recorded_at: row.get(4)?,
            trace_id: row.get(5)?,
        })
    }
}

/// An order's timeline as stored: the order's current state and its events, in time order.
#[derive(Clone, Debug)]
pub(crate) struct StoredTimeline {
    /// The order's status now.
    pub(crate) status: OrderStatus,
    /// Why it was cancelled, if it was.
    pub(crate) cancellation_reason: Option<events::CancellationReason>,
    /// When the order was accepted (used when no event is recorded, e.g. for older orders).
    pub(crate) created_at: DateTime<Utc>,
    /// When the order last changed.
    pub(crate) updated_at: DateTime<Utc>,
    /// Its events, by `occurred_at`, then `recorded_at`.
    pub(crate) events: Vec<SagaEvent>,
}

impl StoredTimeline {
    /// Reads a row of `orders` selected as `status, created_at, updated_at,
    /// cancellation_reason`; the events are read by their own statement.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            status: row.get(0)?,
            created_at: row.get(1)?,
            updated_at: row.get(2)?,
            cancellation_reason: super::reason(row.get(3)?)?,
            events: Vec::new(),
        })
    }
}

/// Records `envelope` as an event of its order's saga, inside the caller's transaction.
///
/// An event already recorded is left as it is: the first record is the truth, and a repeat must
/// not fail the transaction that carries the saga forward.
pub(crate) fn record(tx: &Conn<'_>, envelope: &Envelope, trace_id: Option<String>) -> Result<()> {
    let event = SagaEvent::from_envelope(envelope, trace_id, tx.now());
    tx.execute(
        "INSERT INTO saga_events (order_id, event_id, event_type, service, occurred_at, recorded_at, trace_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (event_id) DO NOTHING",
        params![
            envelope.event.order_id(),
            event.event_id,
            event.event_type,
            event.service,
            event.occurred_at,
            event.recorded_at,
            event.trace_id,
        ],
    )?;
    Ok(())
}

/// Whether the order exists.
pub(crate) fn order_exists(conn: &Conn<'_>, order_id: OrderId) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM orders WHERE order_id = ?1)",
        params![order_id],
        |row| row.get(0),
    )
}

/// The order's timeline, if the order exists.
///
/// The order is read before its events, each by its own statement: the events may include one
/// committed just after the order's row was read, but never lack one whose effect the row
/// already shows (a terminal status always comes with its terminal event).
///
/// Events that happened at the same instant keep the order of their ids, which are time-ordered
/// (UUID v7) and so follow the order in which they were made.
pub(crate) fn load(conn: &Conn<'_>, order_id: OrderId) -> Result<Option<StoredTimeline>> {
    let Some(mut timeline) = conn
        .query_row(
            "SELECT status, created_at, updated_at, cancellation_reason FROM orders \
             WHERE order_id = ?1",
            params![order_id],
            StoredTimeline::from_row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    timeline.events = conn.query_map(
        "SELECT event_id, event_type, service, occurred_at, recorded_at, trace_id FROM saga_events
         WHERE order_id = ?1 ORDER BY occurred_at, recorded_at, event_id",
        params![order_id],
        SagaEvent::from_row,
    )?;
    Ok(Some(timeline))
}

/// The service name in a CloudEvents `source`: its last path segment (`/shop/payment-svc` →
/// `payment-svc`), or the whole source when it has none.
pub(crate) fn service_of(source: &str) -> String {
    source
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|segment| !segment.is_empty())
        .unwrap_or(source)
        .to_owned()
}

/// The trace id in a W3C `traceparent` (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`),
/// or `None` when the header is malformed or names no trace (all-zero ids are invalid).
///
/// Later versions may append fields after the flags; their first four fields are read the same
/// way, as the W3C Trace Context specification asks. Version `ff` is invalid.
pub(crate) fn trace_id_of(traceparent: &str) -> Option<String> {
    let mut fields = traceparent.trim().splitn(5, '-');
    let (version, trace_id, span_id, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let extra = fields.next();
    let is_hex = |text: &str, len: usize| {
        text.len() == len
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    };
    let well_formed = is_hex(version, 2)
        && version != "ff"
        && (version != "00" || extra.is_none())
        && is_hex(trace_id, 32)
        && is_hex(span_id, 16)
        && is_hex(flags, 2)
        && trace_id.bytes().any(|byte| byte != b'0')
        && span_id.bytes().any(|byte| byte != b'0');
    well_formed.then(|| trace_id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_read_from_a_valid_traceparent() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        // Not sampled is still a trace.
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        // A later version may carry more fields.
        assert_eq!(
            trace_id_of("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-next")
                .as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn malformed_or_empty_traceparents_give_no_trace_id() {
        for bad in [
            "",
            "00",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_service_is_the_last_segment_of_the_source() {
        assert_eq!(service_of("/shop/payment-svc"), "payment-svc");
        assert_eq!(service_of("/shop/inventory-svc/"), "inventory-svc");
        assert_eq!(service_of("https://shop.example/order-api"), "order-api");
        assert_eq!(service_of("order-api"), "order-api");
        assert_eq!(service_of("/"), "/");
    }
}
