//! inventory-svc's tables. `available` can never go negative: a CHECK constraint backs the
//! all-or-nothing logic of the reservation handler.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use events::{LineItem, OrderId, StockShortage};
use platform::catalog::Catalog;
use platform::db::Migration;

pub(crate) const MIGRATION: Migration = Migration::new(
    "inventory-svc/stock/1",
    "
CREATE TABLE IF NOT EXISTS stock (
    sku       TEXT PRIMARY KEY,
    available INTEGER NOT NULL CHECK (available >= 0),
    reserved  INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    -- What the catalog gave at first start, for audits: initial = available + reserved.
    initial   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    order_id   TEXT PRIMARY KEY,
    -- reserved → released when its order is cancelled; `cancelled` marks an order cancelled
    -- before its payment arrived, so that a late payment reserves nothing.
    status     TEXT NOT NULL CHECK (status IN ('reserved', 'rejected', 'released', 'cancelled')),
    reason     TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reservation_items (
    order_id TEXT NOT NULL REFERENCES reservations (order_id),
    sku      TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);
",
);

/// Gives every catalog SKU its initial stock, once: a restart keeps the current levels.
pub(crate) fn seed(conn: &Connection, catalog: &Catalog) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "INSERT INTO stock (sku, available, initial) VALUES (?1, ?2, ?2) ON CONFLICT (sku) DO NOTHING",
    )?;
    for product in catalog.products() {
        stmt.execute(params![product.sku.as_str(), product.initial_stock])?;
    }
    Ok(())
}

/// Whether the order already has a reservation decision.
pub(crate) fn has_reservation(tx: &Transaction<'_>, order_id: OrderId) -> rusqlite::Result<bool> {
    tx.prepare_cached("SELECT 1 FROM reservations WHERE order_id = ?1")?
        .query_row(params![order_id.to_string()], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

/// The lines that cannot be reserved now; `unknown` lists SKUs not stocked at all.
pub(crate) fn shortages(
    tx: &Transaction<'_>,
    items: &[LineItem],
) -> rusqlite::Result<(Vec<StockShortage>, bool)> {
    let mut stmt = tx.prepare_cached("SELECT available FROM stock WHERE sku = ?1")?;
    let mut shortages = Vec::new();
    let mut unknown = false;
    for item in items {
        let available: Option<i64> = stmt
            .query_row(params![item.sku.as_str()], |row| row.get(0))
            .optional()?;
        let available = available.unwrap_or_else(|| {
            unknown = true;
            0
        });
        if available < i64::from(item.quantity) {
            shortages.push(StockShortage {
                sku: item.sku.clone(),
                requested: item.quantity,
                available: u32::try_from(available).unwrap_or(0),
            });
        }
    }
    Ok((shortages, unknown))
}

/// Moves every line from available to reserved and records the reservation.
pub(crate) fn reserve(
    tx: &Transaction<'_>,
    order_id: OrderId,
    items: &[LineItem],
    now: &str,
) -> rusqlite::Result<()> {
    let id = order_id.to_string();
    tx.prepare_cached(
        "INSERT INTO reservations (order_id, status, created_at) VALUES (?1, 'reserved', ?2)",
    )?
    .execute(params![id, now])?;
    let mut take = tx.prepare_cached(
        "UPDATE stock SET available = available - ?2, reserved = reserved + ?2 WHERE sku = ?1",
    )?;
    let mut line = tx.prepare_cached(
        "INSERT INTO reservation_items (order_id, sku, quantity) VALUES (?1, ?2, ?3)",
    )?;
    for item in items {
        take.execute(params![item.sku.as_str(), item.quantity])?;
        line.execute(params![id, item.sku.as_str(), item.quantity])?;
    }
    Ok(())
}

/// Records that nothing was reserved for the order, and why.
pub(crate) fn reject(
    tx: &Transaction<'_>,
    order_id: OrderId,
    reason: &str,
    now: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO reservations (order_id, status, reason, created_at) VALUES (?1, 'rejected', ?2, ?3)")?.execute(
        params![order_id.to_string(), reason, now],
    )?;
    Ok(())
}

/// The reservation's status, if the order has one.
pub(crate) fn reservation_status(
    tx: &Transaction<'_>,
    order_id: OrderId,
) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("SELECT status FROM reservations WHERE order_id = ?1")?
        .query_row(params![order_id.to_string()], |row| row.get(0))
        .optional()
}

/// Gives a `reserved` reservation back to stock and marks it `released`; returns its lines.
pub(crate) fn release(
    tx: &Transaction<'_>,
    order_id: OrderId,
    reason: &str,
) -> rusqlite::Result<Vec<LineItem>> {
    let id = order_id.to_string();
    let changed = tx.prepare_cached("UPDATE reservations SET status = 'released', reason = ?2 WHERE order_id = ?1 AND status = 'reserved'")?.execute(
        params![id, reason],
    )?;
    if changed == 0 {
        return Ok(Vec::new());
    }
    let mut lines =
        tx.prepare_cached("SELECT sku, quantity FROM reservation_items WHERE order_id = ?1")?;
    let items = lines
        .query_map(params![id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, u32>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut give_back = tx.prepare_cached(
        "UPDATE stock SET available = available + ?2, reserved = reserved - ?2 WHERE sku = ?1",
    )?;
    let mut released = Vec::with_capacity(items.len());
    for (sku, quantity) in items {
        give_back.execute(params![sku, quantity])?;
        if let Ok(sku) = events::Sku::parse(sku) {
            released.push(LineItem { sku, quantity });
        }
    }
    Ok(released)
}

/// Records that the order was cancelled before any reservation decision.
pub(crate) fn mark_cancelled(
    tx: &Transaction<'_>,
    order_id: OrderId,
    reason: &str,
    now: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO reservations (order_id, status, reason, created_at) VALUES (?1, 'cancelled', ?2, ?3)
         ON CONFLICT (order_id) DO NOTHING")?.execute(
        params![order_id.to_string(), reason, now],
    )?;
    Ok(())
}
