//! An order's saga as `GET /api/orders/{id}/timeline` shows it: every event of the saga, which
//! service announced it, when, and how long after the one before.

use anyhow::{Context, Result};
use chrono::{DateTime, FixedOffset};
use events::OrderId;
use serde::Deserialize;

use crate::orders::expect_json;
use crate::{Stack, Status};

/// The timeline of one order.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    /// The order.
    pub order_id: OrderId,
    /// Where its saga is now.
    pub status: Status,
    /// Why it was cancelled (`out_of_stock`, …), if it was.
    pub cancellation_reason: Option<String>,
    /// The order's trace (the first trace id among its events); none while tracing is off.
    pub trace_id: Option<String>,
    /// When the first event happened (RFC 3339, as the API wrote it).
    pub started_at: String,
    /// When the terminal event happened; none while the saga runs.
    pub finished_at: Option<String>,
    /// `finished_at - started_at` (or the time so far), in milliseconds.
    pub duration_ms: f64,
    /// The saga's events, in the order they happened.
    pub events: Vec<TimelineEvent>,
}

/// One event of a timeline.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEvent {
    /// Its place in the timeline, from 1.
    pub seq: usize,
    /// `order.created`, `payment.completed`, …
    pub event_type: String,
    /// The service that announced it.
    pub service: String,
    /// When it happened, by its announcer's clock (RFC 3339, as the API wrote it).
    pub occurred_at: String,
    /// When order-api recorded it.
    pub recorded_at: String,
    /// Milliseconds since the event before it happened; 0 for the first.
    pub delay_ms: f64,
    /// The trace it was announced in, if traced.
    pub trace_id: Option<String>,
}

impl TimelineEvent {
    /// When it happened.
    pub fn occurred(&self) -> Result<DateTime<FixedOffset>> {
        time(&self.occurred_at)
    }

    /// When order-api recorded it.
    pub fn recorded(&self) -> Result<DateTime<FixedOffset>> {
        time(&self.recorded_at)
    }
}

fn time(text: &str) -> Result<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).with_context(|| format!("not a time: {text:?}"))
}

impl Stack {
    /// `GET /api/orders/{id}/timeline`, which must find the order.
    pub async fn timeline(&self, order_id: &str) -> Result<Timeline> {
        let response = self
            .http
            .get(self.url(&format!("/api/orders/{order_id}/timeline")))
            .send()
            .await?;
        let what = format!("the timeline of {order_id}");
        expect_json(response, reqwest::StatusCode::OK, &what).await
    }
}
