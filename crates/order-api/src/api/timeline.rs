//! `GET /api/orders/{id}/timeline`: one order's saga as a timeline of its events — which service
//! did what, when, how long after the step before, and in which trace — for a person asking
//! "where is this order, and what took so long?" The page at `GET /orders/{id}`
//! ([`super::timeline_page`]) draws it.
//!
//! Times are the events' own `time` attributes (`occurred_at`), so the order of the timeline is
//! the order things happened in the services, not the order their messages reached order-api
//! (replies from different topics can arrive out of order).

use axum::Json;
use axum::extract::{Extension, Path, State};
use chrono::{DateTime, Utc};
use serde::Serialize;

use events::{EventKind, OrderId};
use platform::time::format;

use super::get_order::parse_order_id;
use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::store::timeline::{self, StoredTimeline};

/// The answer. Durations are milliseconds with microsecond resolution (the stored precision):
/// local hops take a few milliseconds, which whole milliseconds would blur.
#[derive(Debug, Serialize)]
pub(crate) struct TimelineView {
    order_id: OrderId,
    status: &'static str,
    /// Why the saga was cancelled (`payment_declined`, `out_of_stock`, `timeout`), if it was.
    cancellation_reason: Option<&'static str>,
    /// The first trace id among the events: the order's trace, when tracing is on.
    trace_id: Option<String>,
    /// When the first event happened (the order's acceptance if none is recorded).
    started_at: String,
    /// When the terminal event happened; `null` while the saga runs.
    finished_at: Option<String>,
    /// `finished_at - started_at`, or the time elapsed so far while the saga runs.
    duration_ms: f64,
    events: Vec<EventView>,
}

/// One event of the timeline.
#[derive(Debug, Serialize)]
struct EventView {
    /// 1-based position in the timeline.
    seq: usize,
    event_type: String,
    service: String,
    occurred_at: String,
    recorded_at: String,
    /// Time since the previous event happened; 0 for the first.
    delay_ms: f64,
    trace_id: Option<String>,
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<TimelineView>, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    super::authorize(&state, &principal, order_id).await?;
    Ok(Json(view(&state, order_id).await?))
}

/// The timeline of `order_id`, whoever placed it: callers check who may see it first.
pub(crate) async fn view(state: &AppState, order_id: OrderId) -> Result<TimelineView, ApiError> {
    let stored = state
        .db
        .read(move |conn| timeline::load(conn, order_id))
        .await?
        .ok_or(ApiError::OrderNotFound)?;
    Ok(build(order_id, stored, Utc::now()))
}

/// Turns the stored timeline into the answer; `now` measures a saga still running.
fn build(order_id: OrderId, stored: StoredTimeline, now: DateTime<Utc>) -> TimelineView {
    let started_at = stored
        .events
        .first()
        .map_or(stored.created_at, |first| first.occurred_at);
    let terminal_types = [
        EventKind::OrderConfirmed.short_name(),
        EventKind::OrderCancelled.short_name(),
    ];
    let finished_at = stored.status.is_terminal().then(|| {
        stored
            .events
            .iter()
            .rev()
            .find(|event| terminal_types.contains(&event.event_type.as_str()))
            .map_or(stored.updated_at, |end| end.occurred_at)
    });
    let duration_ms = to_millis(finished_at.unwrap_or(now) - started_at);
    let delays = delays_ms(
        &stored
            .events
            .iter()
            .map(|event| event.occurred_at)
            .collect::<Vec<_>>(),
    );
    let trace_id = stored
        .events
        .iter()
        .find_map(|event| event.trace_id.clone());
    let events = stored
        .events
        .into_iter()
        .zip(delays)
        .enumerate()
        .map(|(index, (event, delay_ms))| EventView {
            seq: index + 1,
            event_type: event.event_type,
            service: event.service,
            occurred_at: format(event.occurred_at),
            recorded_at: format(event.recorded_at),
            delay_ms,
            trace_id: event.trace_id,
        })
        .collect();
    TimelineView {
        order_id,
        status: stored.status.as_str(),
        cancellation_reason: stored
            .cancellation_reason
            .map(events::CancellationReason::as_str),
        trace_id,
        started_at: format(started_at),
        finished_at: finished_at.map(format),
        duration_ms,
        events,
    }
}

/// The delay of each event after the one before it (times in timeline order); the first has
/// none, so 0. Never negative.
fn delays_ms(times: &[DateTime<Utc>]) -> Vec<f64> {
    std::iter::once(0.0)
        .chain(times.windows(2).map(|pair| to_millis(pair[1] - pair[0])))
        .take(times.len())
        .collect()
}

/// A time span in milliseconds at microsecond resolution, clamped at 0.
fn to_millis(span: chrono::TimeDelta) -> f64 {
    span.num_microseconds()
        .map_or(0.0, |micros| (micros as f64 / 1000.0).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::EventId;

    use crate::saga::OrderStatus;
    use crate::store::timeline::SagaEvent;

    fn time(text: &str) -> DateTime<Utc> {
        platform::time::parse(text).expect("a valid time")
    }

    fn event(event_type: &str, service: &str, at: &str, trace_id: Option<&str>) -> SagaEvent {
        SagaEvent {
            event_id: EventId::new(),
            event_type: event_type.to_owned(),
            service: service.to_owned(),
            occurred_at: time(at),
            recorded_at: time(at),
            trace_id: trace_id.map(str::to_owned),
        }
    }

    fn stored(status: OrderStatus, events: Vec<SagaEvent>) -> StoredTimeline {
        StoredTimeline {
            status,
            cancellation_reason: None,
            created_at: time("2026-01-02T10:00:00.000000Z"),
            updated_at: time("2026-01-02T10:00:09.000000Z"),
            events,
        }
    }

    fn now() -> DateTime<Utc> {
        time("2026-01-02T10:00:05.000000Z")
    }

    #[test]
    fn each_delay_is_the_time_since_the_previous_event_and_the_first_is_zero() {
        assert_eq!(
            delays_ms(&[
                time("2026-01-02T10:00:00.000000Z"),
                time("2026-01-02T10:00:00.012345Z"),
                time("2026-01-02T10:00:01.012345Z"),
                time("2026-01-02T10:00:01.012345Z"),
            ]),
            [0.0, 12.345, 1000.0, 0.0]
        );
        assert_eq!(delays_ms(&[time("2026-01-02T10:00:00Z")]), [0.0]);
        assert!(delays_ms(&[]).is_empty());
    }

    #[test]
    fn delays_are_never_negative() {
        assert_eq!(
            delays_ms(&[
                time("2026-01-02T10:00:01Z"),
                time("2026-01-02T10:00:00Z"),
                time("2026-01-02T10:00:02Z"),
            ]),
            [0.0, 0.0, 2000.0]
        );
    }

    #[test]
    fn a_finished_saga_runs_from_its_first_event_to_its_terminal_one() {
        let order_id = OrderId::new();
        let view = build(
            order_id,
            stored(
                OrderStatus::Cancelled,
                vec![
                    event(
                        "order.created",
                        "order-api",
                        "2026-01-02T10:00:00.100000Z",
                        None,
                    ),
                    event(
                        "payment.refunded",
                        "payment-svc",
                        "2026-01-02T10:00:00.350000Z",
                        Some("4bf92f3577b34da6a3ce929d0e0e4736"),
                    ),
                    event(
                        "order.cancelled",
                        "order-api",
                        "2026-01-02T10:00:00.351500Z",
                        Some("0af7651916cd43dd8448eb211c80319c"),
                    ),
                ],
            ),
            now(),
        );
        assert_eq!(view.status, "cancelled");
        assert_eq!(view.started_at, "2026-01-02T10:00:00.100000Z");
        assert_eq!(
            view.finished_at.as_deref(),
            Some("2026-01-02T10:00:00.351500Z")
        );
        assert_eq!(view.duration_ms, 251.5);
        // The first trace id that is there.
        assert_eq!(
            view.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let seqs: Vec<usize> = view.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        let delays: Vec<f64> = view.events.iter().map(|e| e.delay_ms).collect();
        assert_eq!(delays, [0.0, 250.0, 1.5]);
        assert_eq!(view.events[1].service, "payment-svc");
    }

    #[test]
    fn a_running_saga_has_no_end_and_counts_until_now() {
        let view = build(
            OrderId::new(),
            stored(
                OrderStatus::PaymentProcessing,
                vec![event(
                    "order.created",
                    "order-api",
                    "2026-01-02T10:00:01.000000Z",
                    None,
                )],
            ),
            now(),
        );
        assert_eq!(view.finished_at, None);
        assert_eq!(view.duration_ms, 4000.0);
        assert_eq!(view.trace_id, None);
    }

    #[test]
    fn without_recorded_events_the_order_itself_dates_the_saga() {
        let view = build(
            OrderId::new(),
            stored(OrderStatus::Confirmed, Vec::new()),
            now(),
        );
        assert!(view.events.is_empty());
        assert_eq!(view.started_at, "2026-01-02T10:00:00.000000Z");
        assert_eq!(
            view.finished_at.as_deref(),
            Some("2026-01-02T10:00:09.000000Z")
        );
        assert_eq!(view.duration_ms, 9000.0);
    }
}
