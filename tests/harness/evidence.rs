//! Everything each service's own database says about one order, as text: what a failed
//! invariant prints next to the order it failed for, so that the failure can be debugged from
//! the test's output alone.

use std::fmt::Write as _;

use anyhow::Result;

use crate::{ServiceKind, Stack};

/// (service, heading, query on its database): each row becomes one line of text. Every column
/// is cast to text, so one reader serves all and both databases (SQLite, Postgres) agree.
const QUERIES: [(ServiceKind, &str, &str); 8] = [
    (
        ServiceKind::OrderApi,
        "order",
        "SELECT status, COALESCE(cancellation_reason, '-'), CAST(total_minor AS TEXT) \
         FROM orders WHERE order_id = ?1",
    ),
    (
        ServiceKind::OrderApi,
        "status history",
        "SELECT CAST(seq AS TEXT), status, COALESCE(reason, '-'), cause, CAST(at AS TEXT) \
         FROM order_history WHERE order_id = ?1 ORDER BY seq",
    ),
    (ServiceKind::OrderApi, "events handled by order-api", INBOX),
    (
        ServiceKind::Payment,
        "payment",
        "SELECT status, CAST(amount_minor AS TEXT), payment_method FROM payments \
         WHERE order_id = ?1",
    ),
    (
        ServiceKind::Payment,
        "refund",
        "SELECT status, CAST(amount_minor AS TEXT), reason, COALESCE(refund_id, '-'), \
         CAST(submissions AS TEXT) FROM refunds WHERE order_id = ?1",
    ),
    (ServiceKind::Payment, "events handled by payment-svc", INBOX),
    (
        ServiceKind::Inventory,
        "reservation",
        "SELECT status, COALESCE(reason, '-'), CAST(created_at AS TEXT) FROM reservations WHERE order_id = ?1",
    ),
    (
        ServiceKind::Inventory,
        "events handled by inventory-svc",
        INBOX,
    ),
];

/// The events a service handled for the order, in the order it handled them.
const INBOX: &str = "SELECT event_type, event_id, \
     topic || '/' || CAST(partition AS TEXT) || '@' || CAST(kafka_offset AS TEXT), \
     CAST(processed_at AS TEXT), 'redelivered ' || CAST(redeliveries AS TEXT) \
     FROM inbox WHERE order_id = ?1 ORDER BY processed_at";

impl Stack {
    /// What every service's database holds about `order_id`, one indented line per row.
    pub fn evidence(&self, order_id: &str) -> Result<String> {
        let mut text = String::new();
        for (kind, heading, sql) in QUERIES {
            let rows: Vec<String> = self.with_db(kind, |conn| {
                Ok(conn.query_map(sql, &[order_id], |row| {
                    let mut cells = Vec::new();
                    let mut i = 0;
                    while let Ok(cell) = row.get::<String>(i) {
                        cells.push(cell);
                        i += 1;
                    }
                    Ok(cells.join("  "))
                })?)
            })?;
            let _ = writeln!(text, "    {heading}:");
            if rows.is_empty() {
                let _ = writeln!(text, "      (none)");
            }
            for row in rows {
                let _ = writeln!(text, "      {row}");
            }
        }
        Ok(text)
    }
}
