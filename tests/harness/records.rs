//! What the services keep of an order where no API shows it: stock levels, payments, refunds,
//! reservations. Each is one named query on the service's own database returning a typed row,
//! so that a test asks `stack.payment_for(&order)?` and never writes SQL itself. The queries
//! are portable SQL and run on SQLite and Postgres alike.

use std::fmt::Debug;

use anyhow::{Context, Result};
use events::CancellationReason;
use platform::sql::{OptionalExtension, Params, Row};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::db::Bound;
use crate::{ServiceKind, Stack, eventually};

/// Polls `read` (one of the typed views of a service's records) until `done` holds for what it
/// gives, failing after [`crate::DEADLINE`] with what it gave last.
pub async fn wait_for<T: Debug>(
    read: impl Fn() -> Result<T>,
    done: impl Fn(&T) -> bool,
) -> Result<T> {
    eventually(|| {
        let seen = match read() {
            Ok(value) if done(&value) => Ok(value),
            Ok(value) => Err(format!("last seen: {value:?}")),
            Err(error) => Err(format!("{error:#}")),
        };
        std::future::ready(seen)
    })
    .await
}

/// What inventory-svc holds of one SKU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stock {
    /// Free to reserve.
    pub available: i64,
    /// Held by reservations of confirmed orders.
    pub reserved: i64,
    /// What the catalog gave at first start: always `available + reserved`.
    pub initial: i64,
}

/// Where payment-svc's payment of an order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The provider was asked; no outcome yet.
    Charging,
    /// The provider charged the customer.
    Charged,
    /// The provider declined or failed the charge.
    Failed,
    /// Charged, and a refund is under way.
    Refunding,
    /// Charged and given back.
    Refunded,
}

/// payment-svc's record of an order's payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    /// Where it is.
    pub status: PaymentStatus,
    /// What was charged, in minor units.
    pub amount_minor: i64,
    /// The provider's charge, once it charged.
    pub charge_id: Option<String>,
    /// How often the charge request was sent to the provider.
    pub submissions: i64,
}

/// Where a refund is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Asked of the provider; no answer yet.
    Refunding,
    /// The provider gave the money back.
    Refunded,
}

/// payment-svc's record of an order's refund (compensation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    /// Where it is.
    pub status: RefundStatus,
    /// Why the order was cancelled.
    pub reason: CancellationReason,
    /// What is given back, in minor units.
    pub amount_minor: i64,
}

/// Where inventory-svc's reservation for an order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// The stock is held for the order.
    Reserved,
    /// There was not enough stock.
    Rejected,
    /// Held, then given back when the order was cancelled.
    Released,
    /// The order was cancelled before its payment came: a late payment reserves nothing.
    Cancelled,
}

/// inventory-svc's record of an order's reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Where it is.
    pub status: ReservationStatus,
}

impl Stack {
    /// The stock of `sku`.
    pub fn stock(&self, sku: &str) -> Result<Stock> {
        self.with_db(ServiceKind::Inventory, |conn| {
            Ok(conn.query_row(
                "SELECT available, reserved, initial FROM stock WHERE sku = ?1",
                &[sku],
                |row| {
                    Ok(Stock {
                        available: row.get(0)?,
                        reserved: row.get(1)?,
                        initial: row.get(2)?,
                    })
                },
            )?)
        })
        .with_context(|| format!("the stock of {sku}"))
    }

    /// payment-svc's payment of `order_id`, if it has one.
    pub fn payment_for(&self, order_id: &str) -> Result<Option<PaymentRecord>> {
        let payments = self.payments_where("WHERE order_id = ?1", &[order_id])?;
        Ok(payments.into_iter().next().map(|(_, payment)| payment))
    }

    /// payment-svc's payments matching `condition` (a `WHERE` clause, or none), by order id.
    pub(crate) fn payments_where<P: Params + ?Sized>(
        &self,
        condition: &str,
        params: &P,
    ) -> Result<Vec<(String, PaymentRecord)>> {
        let sql = format!(
            "SELECT order_id, status, amount_minor, charge_id, submissions FROM payments \
             {condition} ORDER BY order_id"
        );
        let params = Bound(params.values()?);
        let rows: Vec<(String, String, i64, Option<String>, i64)> =
            self.with_db(ServiceKind::Payment, |conn| {
                Ok(conn.query_map(&sql, &params, |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?)
            })?;
        rows.into_iter()
            .map(|(order_id, status, amount_minor, charge_id, submissions)| {
                let payment = PaymentRecord {
                    status: parse(&status)?,
                    amount_minor,
                    charge_id,
                    submissions,
                };
                Ok((order_id, payment))
            })
            .collect()
    }

    /// payment-svc's refund of `order_id`, if it has one.
    pub fn refund_for(&self, order_id: &str) -> Result<Option<Refund>> {
        let refunds = self.refunds_where("WHERE order_id = ?1", &[order_id])?;
        Ok(refunds.into_iter().next().map(|(_, refund)| refund))
    }

    /// payment-svc's refunds matching `condition` (a `WHERE` clause, or none), by order id.
    pub(crate) fn refunds_where<P: Params + ?Sized>(
        &self,
        condition: &str,
        params: &P,
    ) -> Result<Vec<(String, Refund)>> {
        let sql = format!(
            "SELECT order_id, status, reason, amount_minor FROM refunds {condition} \
             ORDER BY order_id"
        );
        let params = Bound(params.values()?);
        let rows: Vec<(String, String, String, i64)> =
            self.with_db(ServiceKind::Payment, |conn| {
                Ok(conn.query_map(&sql, &params, |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?)
            })?;
        rows.into_iter()
            .map(|(order_id, status, reason, amount_minor)| {
                let refund = Refund {
                    status: parse(&status)?,
                    reason: parse(&reason)?,
                    amount_minor,
                };
                Ok((order_id, refund))
            })
            .collect()
    }

    /// inventory-svc's reservation for `order_id`, if it has one.
    pub fn reservation_for(&self, order_id: &str) -> Result<Option<Reservation>> {
        self.with_db(ServiceKind::Inventory, |conn| {
            let status = conn
                .query_row(
                    "SELECT status FROM reservations WHERE order_id = ?1",
                    &[order_id],
                    |row| text(row, 0),
                )
                .optional()?;
            status
                .map(|status| {
                    Ok(Reservation {
                        status: parse(&status)?,
                    })
                })
                .transpose()
        })
    }

    /// When order-api gives up on `order_id`'s saga.
    pub fn saga_deadline(&self, order_id: &str) -> Result<chrono::DateTime<chrono::FixedOffset>> {
        let deadline: String = self.with_db(ServiceKind::OrderApi, |conn| {
            Ok(conn.query_row(
                "SELECT deadline_at FROM orders WHERE order_id = ?1",
                &[order_id],
                |row| row.get(0),
            )?)
        })?;
        Ok(chrono::DateTime::parse_from_rfc3339(&deadline)?)
    }

    /// How many provider notifications (webhooks) payment-svc applied for `order_id`: each at
    /// most once, however often the provider delivered it.
    pub fn notifications_for(&self, order_id: &str) -> Result<i64> {
        self.query_i64(
            ServiceKind::Payment,
            "SELECT COUNT(*) FROM provider_notifications WHERE order_id = ?1",
            &[order_id],
        )
    }

    /// How many times payment-svc recorded provider notification `notification_id` as applied:
    /// once, however often it was delivered.
    pub fn notification_applied(&self, notification_id: &str) -> Result<i64> {
        self.query_i64(
            ServiceKind::Payment,
            "SELECT COUNT(*) FROM provider_notifications WHERE notification_id = ?1",
            &[notification_id],
        )
    }

    /// How many orders order-api holds for `user_id`: the check that duplicates made one order.
    pub fn orders_of_user(&self, user_id: &str) -> Result<i64> {
        self.query_i64(
            ServiceKind::OrderApi,
            "SELECT COUNT(*) FROM orders WHERE user_id = ?1",
            &[user_id],
        )
    }

    /// How many events of `order_id`'s saga order-api recorded for its timeline.
    pub fn saga_events_for(&self, order_id: &str) -> Result<i64> {
        self.query_i64(
            ServiceKind::OrderApi,
            "SELECT COUNT(*) FROM saga_events WHERE order_id = ?1",
            &[order_id],
        )
    }

    /// The orders order-api cancelled because their saga ran out of time: (order id, payment
    /// method), by id.
    pub fn timed_out_orders(&self) -> Result<Vec<(String, String)>> {
        self.with_db(ServiceKind::OrderApi, |conn| {
            Ok(conn.query_map(
                "SELECT order_id, payment_method FROM orders \
                 WHERE cancellation_reason = 'timeout' ORDER BY order_id",
                &[],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?)
        })
    }

    /// `kind`'s leases on its singleton jobs: (name, holder `<host>/<pid>/<random>`), by name.
    pub fn leases(&self, kind: ServiceKind) -> Result<Vec<(String, String)>> {
        self.with_db(kind, |conn| {
            Ok(conn.query_map(
                "SELECT name, holder FROM leases ORDER BY name",
                &[],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?)
        })
    }

    /// How many rows `table` of `kind`'s database holds: for the guarantees that are counts
    /// (no order stored for a refused request, one payment however often `order.created` came,
    /// an outbox drained).
    pub fn rows_in(&self, kind: ServiceKind, table: &'static str) -> Result<i64> {
        self.query_i64(kind, &format!("SELECT COUNT(*) FROM {table}"), &[])
    }

    /// How often `kind` was handed event `event_id` again after it had handled it (its inbox's
    /// count), or `None` if it never handled it.
    pub fn redeliveries(&self, kind: ServiceKind, event_id: &str) -> Result<Option<i64>> {
        self.with_db(kind, |conn| {
            Ok(conn
                .query_row(
                    "SELECT redeliveries FROM inbox WHERE event_id = ?1",
                    &[event_id],
                    |row| row.get(0),
                )
                .optional()?)
        })
    }

    /// What waits in `kind`'s outbox, oldest first, one line per row (id, type, topic, key,
    /// when it was written): for a failure that finds events left unpublished.
    pub fn outbox_rows(&self, kind: ServiceKind) -> Result<Vec<String>> {
        self.with_db(kind, |conn| {
            Ok(conn.query_map(
                "SELECT id, event_type, topic, msg_key, created_at FROM outbox ORDER BY id",
                &[],
                |row| {
                    Ok(format!(
                        "#{} {} to {} (key {}) written at {}",
                        row.get::<i64>(0)?,
                        text(row, 1)?,
                        text(row, 2)?,
                        text(row, 3)?,
                        text(row, 4)?,
                    ))
                },
            )?)
        })
    }

    /// How many of `kind`'s outgoing messages keyed `key` (an order id) wait in its outbox.
    pub fn outbox_for(&self, kind: ServiceKind, key: &str) -> Result<i64> {
        self.query_i64(
            kind,
            "SELECT COUNT(*) FROM outbox WHERE msg_key = ?1",
            &[key],
        )
    }
}

fn text(row: &Row<'_>, index: usize) -> platform::sql::Result<String> {
    row.get(index)
}

/// A status or reason column's text as its enum.
pub(crate) fn parse<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .with_context(|| format!("unexpected value {text:?}"))
}
