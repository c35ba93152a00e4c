//! `GET /api/orders`: the caller's orders, newest first, a page at a time.
//!
//! A page ends with `next_cursor` (and an RFC 8288 `Link: <…>; rel="next"` header) when more
//! orders follow. The cursor is opaque to clients: the base64url of the last order's key
//! `(created_at, order_id)`, from which the next page starts (see [`crate::store::listing`]'s
//! keyset). Clients must not build one, so its form may change; a cursor that does not decode
//! is answered `400`, like a bad `status` or `limit`.

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use events::{Currency, OrderId, UserId};

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::saga::OrderStatus;
use crate::store::{self, OrderKey, OrderSummary, Page};

/// Orders per page when the request does not say.
const DEFAULT_LIMIT: u32 = 20;

/// The most orders one page may hold.
const MAX_LIMIT: u32 = 100;

/// The query. Every field is read as text and parsed here, so that each bad value is answered
/// with a `detail` that names it and says what would do.
#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The query, parsed.
#[derive(Debug, PartialEq, Eq)]
struct Listing {
    status: Option<OrderStatus>,
    limit: u32,
    after: Option<OrderKey>,
}

impl TryFrom<ListParams> for Listing {
    type Error = ApiError;

    fn try_from(params: ListParams) -> Result<Self, ApiError> {
        let status = params
            .status
            .map(|text| {
                OrderStatus::parse(&text).ok_or_else(|| {
                    ApiError::BadQuery(format!(
                        "status {text:?} is not an order status (pending, payment_processing, \
                         payment_confirmed, confirmed or cancelled)."
                    ))
                })
            })
            .transpose()?;
        let limit = parse_limit(params.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(Self {
            status,
            limit,
            after,
        })
    }
}

/// One order of the page: its state and where to follow it, without its lines and history
/// (`status_url` has them).
#[derive(Debug, Serialize)]
struct SummaryView {
    order_id: OrderId,
    user_id: UserId,
    status: &'static str,
    cancellation_reason: Option<&'static str>,
    total: f64,
    total_minor: i64,
    currency: Currency,
    created_at: String,
    updated_at: String,
    status_url: String,
    events_url: String,
}

impl From<OrderSummary> for SummaryView {
    fn from(order: OrderSummary) -> Self {
        let status_url = format!("/api/orders/{}", order.order_id);
        Self {
            order_id: order.order_id,
            user_id: order.user_id,
            status: order.status.as_str(),
            cancellation_reason: order.cancellation_reason.map(|reason| reason.as_str()),
            total: order.total.to_major(),
            total_minor: order.total.amount_minor,
            currency: order.total.currency,
            created_at: platform::time::format(order.created_at),
            updated_at: platform::time::format(order.updated_at),
            events_url: format!("{status_url}/events"),
            status_url,
        }
    }
}

/// The answer.
#[derive(Debug, Serialize)]
struct PageView {
    items: Vec<SummaryView>,
    /// Where the next page starts; `null` on the last page.
    next_cursor: Option<String>,
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let listing = Listing::try_from(params)?;
    let (status, after, limit) = (listing.status, listing.after, listing.limit);
    // One order more than the page holds says whether another page follows, so the last page
    // says so itself instead of sending the client for an empty one.
    let mut orders = state
        .db
        .read(move |conn| {
            let page = Page {
                principal: Some(&principal.0),
                status,
                after,
                limit: limit + 1,
                ..Page::default()
            };
            store::list_orders(conn, &page)
        })
        .await?;
    let more = orders.len() > limit as usize;
    orders.truncate(limit as usize);
    let next_cursor = more
        .then(|| orders.last().map(|last| encode_cursor(last.key())))
        .flatten();
    let link = next_cursor
        .as_deref()
        .map(|cursor| next_link(&listing, cursor));
    let page = Json(PageView {
        items: orders.into_iter().map(SummaryView::from).collect(),
        next_cursor,
    });
    Ok(match link {
        Some(link) => ([(header::LINK, link)], page).into_response(),
        None => page.into_response(),
    })
}

/// The `Link` header to the next page: the same query, from `cursor`.
fn next_link(listing: &Listing, cursor: &str) -> String {
    // Statuses and base64url need no percent-encoding.
    let status = listing
        .status
        .map(|status| format!("status={status}&"))
        .unwrap_or_default();
    format!(
        "</api/orders?{status}limit={}&cursor={cursor}>; rel=\"next\"",
        listing.limit
    )
}

/// The cursor of a page that starts after `key`.
/// A page's `limit`: `default` when not given, else a whole number from 1 to `max`.
pub(crate) fn parse_limit(text: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match text {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse()
            .ok()
            .filter(|limit| (1..=max).contains(limit))
            .ok_or_else(|| {
                ApiError::BadQuery(format!(
                    "limit {text:?} is not a whole number from 1 to {max}."
                ))
            }),
    }
}

pub(crate) fn encode_cursor(key: OrderKey) -> String {
    let text = format!(
        "{} {}",
        platform::time::format(key.created_at),
        key.order_id
    );
    URL_SAFE_NO_PAD.encode(text)
}

/// The key `cursor` encodes.
pub(crate) fn decode_cursor(cursor: &str) -> Result<OrderKey, ApiError> {
    let key = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (created_at, order_id) = text.split_once(' ')?;
            Some(OrderKey {
                created_at: platform::time::parse(created_at).ok()?,
                order_id: order_id.parse().ok()?,
            })
        });
    key.ok_or_else(|| {
        ApiError::BadQuery(format!(
            "cursor {cursor:?} is not a cursor this API gave; pass next_cursor as it came."
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(status: Option<&str>, limit: Option<&str>, cursor: Option<&str>) -> ListParams {
        ListParams {
            status: status.map(str::to_owned),
            limit: limit.map(str::to_owned),
            cursor: cursor.map(str::to_owned),
        }
    }

    #[test]
    fn a_cursor_decodes_to_the_key_it_encodes() {
        let key = OrderKey {
            created_at: platform::time::parse("2026-01-02T03:04:05.123456Z").expect("a time"),
            order_id: OrderId::new(),
        };
        let cursor = encode_cursor(key);
        assert!(
            cursor
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'),
            "{cursor}"
        );
        assert_eq!(decode_cursor(&cursor).ok(), Some(key));
    }

    #[test]
    fn malformed_cursors_are_refused() {
        let order_id = OrderId::new();
        for text in [
            "not base64!".to_owned(),
            URL_SAFE_NO_PAD.encode("no separator"),
            URL_SAFE_NO_PAD.encode(format!("yesterday {order_id}")),
            URL_SAFE_NO_PAD.encode("2026-01-02T03:04:05.123456Z ord_nothex"),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x20]),
            String::new(),
        ] {
            assert!(
                matches!(decode_cursor(&text), Err(ApiError::BadQuery(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_query_defaults_and_bounds() {
        let parsed = Listing::try_from(params(None, None, None)).ok();
        let expected = Listing {
            status: None,
            limit: DEFAULT_LIMIT,
            after: None,
        };
        assert_eq!(parsed, Some(expected));
        let parsed = Listing::try_from(params(Some("confirmed"), Some("100"), None)).ok();
        assert_eq!(
            parsed.and_then(|listing| listing.status),
            Some(OrderStatus::Confirmed)
        );
        for (status, limit) in [
            (Some("done"), None),
            (Some("Confirmed"), None),
            (None, Some("0")),
            (None, Some("101")),
            (None, Some("-1")),
            (None, Some("ten")),
        ] {
            assert!(
                matches!(
                    Listing::try_from(params(status, limit, None)),
                    Err(ApiError::BadQuery(_))
                ),
                "{status:?} {limit:?}"
            );
        }
    }

    #[test]
    fn the_next_link_keeps_the_query() {
        let listing = Listing {
            status: Some(OrderStatus::Pending),
            limit: 5,
            after: None,
        };
        assert_eq!(
            next_link(&listing, "abc"),
            "</api/orders?status=pending&limit=5&cursor=abc>; rel=\"next\""
        );
    }
}
