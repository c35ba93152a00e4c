//! Listing the caller's orders (`GET /api/orders`), a page at a time.
//!
//! The API pages by cursor, not by offset: a page starts after the last order of the page
//! before, so orders placed while a client pages never shift a later page. The cursor is
//! opaque; a caller passes [`OrderPage::next_cursor`] back as it came.

use chrono::{DateTime, Utc};
use events::{CancellationReason, Currency, Money, OrderId, UserId};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::read_json;
use crate::{Client, Error, OrderStatus};

/// Which orders [`Client::list_orders`] asks for, and from where.
///
/// ```
/// use shop_client::{ListOptions, OrderStatus};
///
/// let options = ListOptions::default().status(OrderStatus::Cancelled).limit(50);
/// assert_eq!(options.limit, Some(50));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only orders in this status; `None` for all.
    pub status: Option<OrderStatus>,
    /// Orders per page, 1 to 100; `None` for the server's default (20).
    pub limit: Option<u32>,
    /// Where to start: the `next_cursor` of the page before; `None` for the first page.
    pub cursor: Option<String>,
}

impl ListOptions {
    /// Only orders in `status`.
    #[must_use]
    pub fn status(mut self, status: OrderStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// At most `limit` orders per page.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The page after the one whose `next_cursor` this is.
    #[must_use]
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }
}

/// One page of orders, newest first.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct OrderPage {
    /// The orders of this page.
    pub items: Vec<OrderSummary>,
    /// Pass as [`ListOptions::cursor`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// An order as a list shows it: its state, without lines or history
/// ([`Client::get_order`] has them). It serialises back to the API's JSON.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(from = "WireSummary", into = "WireSummary")]
pub struct OrderSummary {
    /// The order.
    pub order_id: OrderId,
    /// Who placed it.
    pub user_id: UserId,
    /// Where its saga is now.
    pub status: OrderStatus,
    /// Why it was cancelled, once it is.
    pub cancellation_reason: Option<CancellationReason>,
    /// What it costs, exactly (from `total_minor` and `currency`).
    pub total: Money,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The JSON of a summary: the amount in major and minor units, and the order's URLs, which
/// [`OrderSummary`] leaves out because the client builds them itself.
#[derive(Deserialize, Serialize)]
struct WireSummary {
    order_id: OrderId,
    user_id: UserId,
    status: OrderStatus,
    cancellation_reason: Option<CancellationReason>,
    /// The same as `total_minor`, in major units; read, but `total_minor` is the exact one.
    #[serde(default)]
    total: f64,
    total_minor: i64,
    currency: Currency,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<WireSummary> for OrderSummary {
    fn from(wire: WireSummary) -> Self {
        Self {
            order_id: wire.order_id,
            user_id: wire.user_id,
            status: wire.status,
            cancellation_reason: wire.cancellation_reason,
            total: Money::new(wire.total_minor, wire.currency),
            created_at: wire.created_at,
            updated_at: wire.updated_at,
        }
    }
}

impl From<OrderSummary> for WireSummary {
    fn from(summary: OrderSummary) -> Self {
        Self {
            order_id: summary.order_id,
            user_id: summary.user_id,
            status: summary.status,
            cancellation_reason: summary.cancellation_reason,
            total: summary.total.to_major(),
            total_minor: summary.total.amount_minor,
            currency: summary.total.currency,
            created_at: summary.created_at,
            updated_at: summary.updated_at,
        }
    }
}

impl Client {
    /// One page of the caller's orders, newest first (by acceptance time, then id).
    ///
    /// ```no_run
    /// # async fn run(client: shop_client::Client) -> Result<(), shop_client::Error> {
    /// use shop_client::ListOptions;
    ///
    /// // Every order, page by page.
    /// let mut options = ListOptions::default().limit(100);
    /// loop {
    ///     let page = client.list_orders(&options).await?;
    ///     for order in &page.items {
    ///         println!("{} {}", order.order_id, order.status);
    ///     }
    ///     match page.next_cursor {
    ///         Some(cursor) => options = options.cursor(cursor),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a limit outside 1 to 100 or a cursor the API did not give;
    /// [`Error::Unauthorized`]; transport failures and `429`/`503` after the retries.
    pub async fn list_orders(&self, options: &ListOptions) -> Result<OrderPage, Error> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(status) = options.status {
            query.push(("status", status.as_str().to_owned()));
        }
        if let Some(limit) = options.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &options.cursor {
            query.push(("cursor", cursor.clone()));
        }
        let response = self
            .send(|| {
                Ok(self
                    .request(Method::GET, "api/orders")?
                    .timeout(self.request_timeout())
                    .query(&query))
            })
            .await?;
        if !response.status().is_success() {
            return Err(Error::from_response(response).await);
        }
        read_json(response, "a page of orders").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_page_as_the_api_writes_it() -> Result<(), serde_json::Error> {
        let json = r#"{"items":[{"order_id":"ord_0190aaaa000070008000000000000000",
            "user_id":"usr_1","status":"cancelled","cancellation_reason":"out_of_stock",
            "total":49.98,"total_minor":4998,"currency":"EUR",
            "created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:01Z",
            "status_url":"/api/orders/ord_0190aaaa000070008000000000000000",
            "events_url":"/api/orders/ord_0190aaaa000070008000000000000000/events"}],
            "next_cursor":"MjAy"}"#;
        let page: OrderPage = serde_json::from_str(json)?;
        assert_eq!(page.next_cursor.as_deref(), Some("MjAy"));
        let order = &page.items[0];
        assert_eq!(order.status, OrderStatus::Cancelled);
        assert_eq!(
            order.cancellation_reason,
            Some(CancellationReason::OutOfStock)
        );
        assert_eq!(order.total.amount_minor, 4998);
        let again = serde_json::to_value(&page)?;
        assert_eq!(again["items"][0]["total_minor"], 4998);
        assert_eq!(again["items"][0]["total"], 49.98);
        Ok(())
    }
}
