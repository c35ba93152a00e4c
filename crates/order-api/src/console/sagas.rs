//! The console's saga routes: `GET /console/api/orders` (every principal's orders, newest first,
//! filtered), `GET /console/api/summary` (the counts above the list) and
//! `GET /console/api/orders/{id}/timeline`.
//!
//! Pages are cut by keyset like a customer's listing ([`crate::store::listing`]), so a page
//! costs the same on the first page and the thousandth, and with 100,000 orders as with 100.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use events::{CancellationReason, OrderId};

use crate::api::list_orders::{decode_cursor, encode_cursor, parse_limit};
use crate::api::timeline::{self, TimelineView};
use crate::api::{ApiError, AppState};
use crate::saga::OrderStatus;
use crate::store::{self, OrderSummary, Page};

/// Orders per page when the request does not say, and the most a page may hold.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

/// The filters, as sent. Ages are seconds: `older_than=60` lists orders accepted more than a
/// minute ago.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    status: Option<String>,
    reason: Option<String>,
    principal: Option<String>,
    older_than: Option<String>,
    newer_than: Option<String>,
    /// `true`: only sagas still open after the stuck threshold.
    stuck: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// The filters, checked: every bad value is a `400` that names it.
#[derive(Debug)]
struct Checked {
    status: Option<OrderStatus>,
    /// `status=open`: every status but the terminal ones.
    open_only: bool,
    reason: Option<CancellationReason>,
    principal: Option<String>,
    created_before: Option<DateTime<Utc>>,
    created_since: Option<DateTime<Utc>>,
    cursor: Option<store::OrderKey>,
    limit: u32,
}

fn seconds(name: &str, text: Option<&str>) -> Result<Option<TimeDelta>, ApiError> {
    text.filter(|text| !text.is_empty())
        .map(|text| {
            text.parse::<u32>()
                .map(|seconds| TimeDelta::seconds(i64::from(seconds)))
                .map_err(|_| {
                    ApiError::BadQuery(format!("{name} {text:?} is not a number of seconds."))
                })
        })
        .transpose()
}

impl Filters {
    fn check(&self, now: DateTime<Utc>, stuck_after: TimeDelta) -> Result<Checked, ApiError> {
        let status_text = self.status.as_deref().filter(|text| !text.is_empty());
        let open_only = status_text == Some("open");
        let status = status_text
            .filter(|text| *text != "open")
            .map(|text| {
                OrderStatus::parse(text).ok_or_else(|| {
                    ApiError::BadQuery(format!(
                        "status {text:?} is not an order status (pending, payment_processing, \
                         payment_confirmed, confirmed, cancelled) or open."
                    ))
                })
            })
            .transpose()?;
        let reason = self
            .reason
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| {
                CancellationReason::parse(text).ok_or_else(|| {
                    ApiError::BadQuery(format!(
                        "reason {text:?} is not a cancellation reason (payment_declined, \
                         out_of_stock, timeout)."
                    ))
                })
            })
            .transpose()?;
        let stuck = match self.stuck.as_deref() {
            None | Some("" | "false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::BadQuery(format!(
                    "stuck {other:?} is not true or false."
                )));
            }
        };
        let mut older_than = seconds("older_than", self.older_than.as_deref())?;
        if stuck {
            older_than = Some(older_than.map_or(stuck_after, |age| age.max(stuck_after)));
        }
        let newer_than = seconds("newer_than", self.newer_than.as_deref())?;
        let limit = parse_limit(self.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        Ok(Checked {
            status,
            open_only: open_only || stuck,
            reason,
            principal: self
                .principal
                .as_deref()
                .map(str::trim)
                .filter(|principal| !principal.is_empty())
                .map(str::to_owned),
            created_before: older_than.map(|age| now - age),
            created_since: newer_than.map(|age| now - age),
            cursor: self
                .cursor
                .as_deref()
                .filter(|cursor| !cursor.is_empty())
                .map(decode_cursor)
                .transpose()?,
            limit,
        })
    }
}

/// One order as the console lists it.
#[derive(Debug, Serialize)]
struct Row {
    order_id: OrderId,
    principal: String,
    user_id: String,
    status: &'static str,
    cancellation_reason: Option<&'static str>,
    total: f64,
    currency: events::Currency,
    created_at: String,
    updated_at: String,
    /// Seconds since the order was accepted.
    age_s: f64,
    /// Open longer than the stuck threshold.
    stuck: bool,
    trace_id: Option<String>,
}

impl Row {
    fn new(order: OrderSummary, now: DateTime<Utc>, stuck_after: TimeDelta) -> Self {
        let age = now - order.created_at;
        Self {
            trace_id: order.trace_id().map(str::to_owned),
            stuck: !order.status.is_terminal() && age > stuck_after,
            age_s: age.num_milliseconds().max(0) as f64 / 1000.0,
            order_id: order.order_id,
            principal: order.principal,
            user_id: order.user_id.to_string(),
            status: order.status.as_str(),
            cancellation_reason: order.cancellation_reason.map(CancellationReason::as_str),
            total: order.total.to_major(),
            currency: order.total.currency,
            created_at: platform::time::format(order.created_at),
            updated_at: platform::time::format(order.updated_at),
        }
    }
}

/// A page of orders.
#[derive(Debug, Serialize)]
pub(crate) struct OrdersPage {
    items: Vec<Row>,
    /// Where the next (older) page starts; `null` on the last page.
    next_cursor: Option<String>,
}

/// `GET /console/api/orders`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(filters): Query<Filters>,
) -> Result<Json<OrdersPage>, ApiError> {
    let now = platform::time::now();
    let stuck_after = state.console.stuck_after;
    let checked = filters.check(now, stuck_after)?;
    let limit = checked.limit;
    let mut orders = state
        .db
        .read(move |conn| {
            let page = Page {
                principal: checked.principal.as_deref(),
                status: checked.status,
                open_only: checked.open_only,
                reason: checked.reason,
                created_before: checked.created_before,
                created_since: checked.created_since,
                after: checked.cursor,
                // One more than asked: whether it comes says if a next page exists.
                limit: limit + 1,
            };
            store::list_orders(conn, &page)
        })
        .await?;
    let more = orders.len() > limit as usize;
    orders.truncate(limit as usize);
    let next_cursor = more
        .then(|| orders.last().map(|last| encode_cursor(last.key())))
        .flatten();
    Ok(Json(OrdersPage {
        items: orders
            .into_iter()
            .map(|order| Row::new(order, now, stuck_after))
            .collect(),
        next_cursor,
    }))
}

/// The counts above the list.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Summary {
    /// Orders per status, every status named.
    by_status: serde_json::Map<String, serde_json::Value>,
    /// Cancelled orders per reason.
    by_reason: serde_json::Map<String, serde_json::Value>,
    /// Open sagas older than `stuck_after_s`.
    stuck: i64,
    stuck_after_s: i64,
    /// Age of the oldest open saga, in seconds.
    oldest_open_s: Option<f64>,
    /// Dead letters still to handle, and callbacks that failed for good.
    dead_letters: super::dead_letters::Counts,
}

/// `GET /console/api/summary`.
pub(crate) async fn summary(State(state): State<AppState>) -> Result<Json<Summary>, ApiError> {
    Ok(Json(read_summary(&state).await?))
}

/// How old a summary may be when it is handed out again: every open console's live stream
/// asks, and counting 100,000 orders takes ~10 ms, so the consoles of one replica share a count
/// per [`SUMMARY_MAX_AGE`] instead of each counting on its own.
const SUMMARY_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// The summary now, or at most [`SUMMARY_MAX_AGE`] ago (also what the live stream sends).
pub(crate) async fn read_summary(state: &AppState) -> Result<Summary, ApiError> {
    let mut cached = state.console.summary.lock().await;
    if let Some((at, summary)) = cached.as_ref()
        && at.elapsed() < SUMMARY_MAX_AGE
    {
        return Ok(summary.clone());
    }
    let summary = count(state).await?;
    *cached = Some((std::time::Instant::now(), summary.clone()));
    Ok(summary)
}

/// Counts everything the summary shows.
async fn count(state: &AppState) -> Result<Summary, ApiError> {
    let now = platform::time::now();
    let stuck_after = state.console.stuck_after;
    let overview = state
        .db
        .read(move |conn| store::overview(conn, now - stuck_after))
        .await?;
    let counted = |pairs: Vec<(&'static str, i64)>| {
        pairs
            .into_iter()
            .map(|(name, count)| (name.to_owned(), count.into()))
            .collect()
    };
    Ok(Summary {
        by_status: counted(
            overview
                .by_status
                .iter()
                .map(|(status, count)| (status.as_str(), *count))
                .collect(),
        ),
        by_reason: counted(
            overview
                .by_reason
                .iter()
                .map(|(reason, count)| (reason.as_str(), *count))
                .collect(),
        ),
        stuck: overview.stuck,
        stuck_after_s: stuck_after.num_seconds(),
        oldest_open_s: overview
            .oldest_open
            .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0),
        dead_letters: super::dead_letters::counts(state).await?,
    })
}

/// `GET /console/api/orders/{id}/timeline`: any principal's order.
pub(crate) async fn timeline(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> Result<Json<TimelineView>, ApiError> {
    let order_id = crate::api::get_order::parse_order_id(&order_id)?;
    Ok(Json(timeline::view(&state, order_id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        let query: String = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        serde_urlencoded_from(&query)
    }

    fn serde_urlencoded_from(query: &str) -> Filters {
        let uri: axum::http::Uri = format!("/?{query}").parse().expect("uri");
        Query::<Filters>::try_from_uri(&uri).expect("query").0
    }

    #[test]
    fn filters_are_checked_and_named_when_wrong() {
        let now = Utc::now();
        let stuck_after = TimeDelta::seconds(10);
        let checked = filters(&[
            ("status", "open"),
            ("older_than", "60"),
            ("principal", "%20bob%20"),
        ])
        .check(now, stuck_after)
        .expect("valid");
        assert!(checked.open_only && checked.status.is_none());
        assert_eq!(checked.created_before, Some(now - TimeDelta::seconds(60)));
        assert_eq!(checked.principal.as_deref(), Some("bob"));
        let stuck = filters(&[("stuck", "true")])
            .check(now, stuck_after)
            .expect("valid");
        assert!(stuck.open_only);
        assert_eq!(stuck.created_before, Some(now - stuck_after));
        for (name, value) in [
            ("status", "lost"),
            ("reason", "bored"),
            ("older_than", "-1"),
            ("stuck", "yes"),
            ("limit", "0"),
            ("cursor", "not-a-cursor"),
        ] {
            let error = filters(&[(name, value)])
                .check(now, stuck_after)
                .expect_err(name);
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }
}
