//! inventory-svc's tables. `available` can never go negative: a CHECK constraint backs the
//! all-or-nothing logic of the reservation handler.
//!
//! On Postgres several replicas reserve from the same stock at once. A reservation locks the
//! stock rows it reads (in SKU order, so that two reservations never wait for each other in a
//! circle), decides on what it locked, and takes the stock with updates that are conditional on
//! enough being left; the CHECK constraint stays the last word. Every reservation decision is
//! claimed by inserting its row, which only one transaction can do.
//!
//! Values are bound and read as their types (`OrderId`, `Sku`, the transaction's
//! [`Conn::now`]); rows come back as the records of [`records`].

mod records;

use std::collections::BTreeMap;

use events::{Catalog, LineItem, OrderId, StockShortage};
use platform::db::Migration;
use platform::params;
use platform::sql::{Conn, Dialect, ErrorKind, OptionalExtension, Result, SqlError};

pub(crate) use records::{ReservationItem, ReservationStatus, StockLevel};

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

/// Gives every catalog SKU its initial stock, once: a restart keeps the current levels, and of
/// replicas starting together the first one's rows stand (the others' inserts do nothing).
pub(crate) fn seed(tx: &Conn<'_>, catalog: &Catalog) -> Result<()> {
    for product in catalog.products() {
        tx.execute(
            "INSERT INTO stock (sku, available, initial) VALUES (?1, ?2, ?2)
             ON CONFLICT (sku) DO NOTHING",
            params![product.sku, product.initial_stock],
        )?;
    }
    Ok(())
}

/// Whether the order already has a reservation decision. A fast path only: the decision is
/// claimed by [`reserve`], [`reject`] or [`mark_cancelled`] inserting the row.
pub(crate) fn has_reservation(tx: &Conn<'_>, order_id: OrderId) -> Result<bool> {
    tx.query_row(
        "SELECT 1 FROM reservations WHERE order_id = ?1",
        params![order_id],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// The lines that cannot be reserved now; `unknown` says some SKU is not stocked at all.
///
/// The stock rows of `items` are locked until the end of `tx` (on Postgres; SQLite has one
/// writer), so what is found available stays available until [`reserve`] takes it. They are
/// locked in SKU order: two reservations sharing SKUs lock them in the same order, so neither
/// holds one that the other waits for while waiting for one the other holds.
pub(crate) fn shortages(tx: &Conn<'_>, items: &[LineItem]) -> Result<(Vec<StockShortage>, bool)> {
    let lock = match tx.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    };
    let sql = format!(
        "SELECT {} FROM stock WHERE sku = ?1{lock}",
        StockLevel::COLUMNS
    );
    // Keyed by the SKU's text: sorted by bytes, the order every stock-locking transaction uses.
    let mut levels: BTreeMap<&str, Option<StockLevel>> = BTreeMap::new();
    for item in items {
        levels.insert(item.sku.as_str(), None);
    }
    for (sku, level) in &mut levels {
        *level = tx
            .query_row(&sql, params![*sku], StockLevel::from_row)
            .optional()?;
    }
    let mut shortages = Vec::new();
    let mut unknown = false;
    for item in items {
        let level = levels.get(item.sku.as_str()).and_then(Option::as_ref);
        let available = level.map_or_else(
            || {
                unknown = true;
                0
            },
            |level| level.available,
        );
        if available < item.quantity {
            shortages.push(StockShortage {
                sku: item.sku.clone(),
                requested: item.quantity,
                available,
            });
        }
    }
    Ok((shortages, unknown))
}

/// Records the reservation and moves every line from available to reserved; `false` (and
/// nothing changed) if the order already has a reservation decision.
///
/// Call it after [`shortages`] found none, in the same transaction: the stock rows are locked
/// then. Each take is still conditional on enough being left, and a take that finds too little
/// (or no row) fails the whole transaction as transient, so that it is decided again; stock
/// never goes below zero either way.
pub(crate) fn reserve(tx: &Conn<'_>, order_id: OrderId, items: &[LineItem]) -> Result<bool> {
    let claimed = tx.execute(
        "INSERT INTO reservations (order_id, status, created_at) VALUES (?1, 'reserved', ?2)
         ON CONFLICT (order_id) DO NOTHING",
        params![order_id, tx.now()],
    )?;
    if claimed == 0 {
        return Ok(false);
    }
    let mut sorted: Vec<&LineItem> = items.iter().collect();
    sorted.sort_by(|a, b| a.sku.as_str().cmp(b.sku.as_str()));
    for item in sorted {
        let taken = tx.execute(
            "UPDATE stock SET available = available - ?2, reserved = reserved + ?2
             WHERE sku = ?1 AND available >= ?2",
            params![item.sku, item.quantity],
        )?;
        if taken == 0 {
            return Err(SqlError::new(
                ErrorKind::Transient,
                format!("stock of {} ran short while reserving it", item.sku),
            ));
        }
        tx.execute(
            "INSERT INTO reservation_items (order_id, sku, quantity) VALUES (?1, ?2, ?3)",
            params![order_id, item.sku, item.quantity],
        )?;
    }
    Ok(true)
}

/// Records that nothing was reserved for the order, and why; `false` if the order already has
/// a reservation decision.
pub(crate) fn reject(tx: &Conn<'_>, order_id: OrderId, reason: &str) -> Result<bool> {
    decide_without_stock(tx, order_id, "rejected", reason)
}

/// The reservation's status, if the order has one.
pub(crate) fn reservation_status(
    tx: &Conn<'_>,
    order_id: OrderId,
) -> Result<Option<ReservationStatus>> {
    tx.query_row(
        "SELECT status FROM reservations WHERE order_id = ?1",
        params![order_id],
        |row| row.get(0),
    )
    .optional()
}

/// Gives a `reserved` reservation back to stock and marks it `released`; returns its lines, or
/// `None` if it was not `reserved` (already released, by this replica or another).
///
/// The conditional status change is the claim: a second release of the same reservation waits
/// for the first one's commit, then finds it `released` and gives nothing back.
pub(crate) fn release(
    tx: &Conn<'_>,
    order_id: OrderId,
    reason: &str,
) -> Result<Option<Vec<LineItem>>> {
    let changed = tx.execute(
        "UPDATE reservations SET status = 'released', reason = ?2
         WHERE order_id = ?1 AND status = 'reserved'",
        params![order_id, reason],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    // In SKU order, like every other transaction that locks stock rows: sorted here, by bytes,
    // as the others sort theirs (a database's collation may order `AB-2` and `AB1` otherwise).
    let mut items = tx.query_map(
        &format!(
            "SELECT {} FROM reservation_items WHERE order_id = ?1",
            ReservationItem::COLUMNS
        ),
        params![order_id],
        ReservationItem::from_row,
    )?;
    items.sort_by(|a, b| a.sku.as_str().cmp(b.sku.as_str()));
    let mut released = Vec::with_capacity(items.len());
    for item in items {
        tx.execute(
            "UPDATE stock SET available = available + ?2, reserved = reserved - ?2 WHERE sku = ?1",
            params![item.sku, item.quantity],
        )?;
        released.push(LineItem::from(item));
    }
    Ok(Some(released))
}

/// Records that the order was cancelled before any reservation decision; `false` if it had
/// one after all (decided meanwhile, perhaps by another replica: the insert waited for it).
pub(crate) fn mark_cancelled(tx: &Conn<'_>, order_id: OrderId, reason: &str) -> Result<bool> {
    decide_without_stock(tx, order_id, "cancelled", reason)
}

/// Records the order's reservation decision as `status` with nothing reserved, unless it has
/// one already (the unique order id makes the first decision win).
fn decide_without_stock(
    tx: &Conn<'_>,
    order_id: OrderId,
    status: &str,
    reason: &str,
) -> Result<bool> {
    let claimed = tx.execute(
        "INSERT INTO reservations (order_id, status, reason, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (order_id) DO NOTHING",
        params![order_id, status, reason, tx.now()],
    )?;
    Ok(claimed == 1)
}
