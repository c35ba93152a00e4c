//! What the database tests share: order-api's schema on a fresh database of either kind.

use events::{Currency, Money, OrderId, PaymentMethod, PricedLineItem, Sku, UserId};
use platform::Db;
use platform::sql::{Access, Conn, Connection, DbTarget, Result, ScratchDb};

use crate::app::MIGRATIONS;
use crate::saga::OrderStatus;
use crate::store::HistoryEntry;

/// A scratch database with order-api's tables (not the platform's), for tests of single
/// statements (see [`ScratchDb`]). Blocks: not for async tests.
pub(crate) fn scratch() -> (ScratchDb, Connection) {
    let scratch = ScratchDb::new("order_api");
    let conn = Connection::open(scratch.target(), Access::ReadWrite).expect("the database opens");
    for migration in MIGRATIONS {
        conn.conn()
            .execute_batch(&migration.sql_for(conn.dialect()))
            .expect("the schema applies");
    }
    (scratch, conn)
}

/// A fresh, migrated database (see [`ScratchDb`]); opening its target again gives a second
/// replica of the service.
pub(crate) fn fresh_db() -> (ScratchDb, DbTarget, Db) {
    let scratch = ScratchDb::new("order_api");
    let target = scratch.target().clone();
    let db = Db::open(&target, MIGRATIONS).expect("the database opens");
    (scratch, target, db)
}

/// Stores a new order of one line, placed by `alice` at the transaction's time and already a
/// second past its deadline, so that the deadline reaper finds it at once.
pub(crate) fn new_order(tx: &Conn<'_>, order_id: OrderId) -> Result<HistoryEntry> {
    new_order_by(tx, order_id, "alice")
}

/// Like [`new_order`], placed by `principal`.
pub(crate) fn new_order_by(
    tx: &Conn<'_>,
    order_id: OrderId,
    principal: &str,
) -> Result<HistoryEntry> {
    let items = [PricedLineItem {
        sku: Sku::parse("SKU-1").expect("a valid sku"),
        quantity: 2,
        unit_price: Money::new(1250, Currency::USD),
    }];
    crate::store::insert_order(
        tx,
        &crate::store::NewOrder {
            order_id,
            principal,
            user_id: &UserId::parse("u-1").expect("a valid user id"),
            payment_method: &PaymentMethod::parse("pm_card").expect("a valid payment method"),
            items: &items,
            total: Money::new(2500, Currency::USD),
            deadline: tx.now() - chrono::TimeDelta::seconds(1),
        },
    )
}

/// The history entry `seq` of `order_id`, reaching `status`, `seq` seconds into 2026.
pub(crate) fn step(order_id: OrderId, seq: i64, status: OrderStatus) -> HistoryEntry {
    HistoryEntry {
        order_id,
        seq,
        status,
        reason: None,
        cause: "test".to_owned(),
        event_id: None,
        at: platform::time::parse("2026-01-01T00:00:00Z").expect("a valid time")
            + chrono::TimeDelta::seconds(seq),
    }
}
