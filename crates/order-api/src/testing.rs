//! What the database tests share: order-api's schema on a fresh database of either kind.

use events::{Currency, Money, OrderId, PricedLineItem, Sku};
use platform::Db;
use platform::sql::{Access, Conn, Connection, DbTarget, Result};

use crate::saga::OrderStatus;
use crate::store::HistoryEntry;

/// order-api's migrations, in the order the service applies them.
pub(crate) fn migrations() -> [platform::db::Migration; 3] {
    [
        crate::store::MIGRATION,
        crate::idempotency::MIGRATION,
        crate::webhooks::MIGRATION,
    ]
}

/// A scratch database with order-api's tables (not the platform's), for tests of single
/// statements: in memory, or a new Postgres database when `TEST_POSTGRES_URL` is set (see
/// [`fresh_db`]). Blocks: not for async tests.
pub(crate) fn scratch() -> Connection {
    let target = match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin) => postgres_database(&admin),
        Err(_) => DbTarget::parse(":memory:"),
    };
    let conn = Connection::open(&target, Access::ReadWrite).expect("the database opens");
    for migration in migrations() {
        conn.conn()
            .execute_batch(&migration.sql_for(conn.dialect()))
            .expect("the schema applies");
    }
    conn
}

/// A new database on the Postgres server whose admin database is `admin`.
fn postgres_database(admin: &str) -> DbTarget {
    let name = format!("order_api_{}", uuid::Uuid::new_v4().simple());
    platform::sql::create_postgres_database(admin, &name).expect("the database is created")
}

/// A fresh, migrated database: a SQLite file in a temporary directory, or — when
/// `TEST_POSTGRES_URL` names a Postgres server's admin database — a new database on that server.
/// Opening the returned target again gives a second replica of the service.
pub(crate) fn fresh_db() -> (tempfile::TempDir, DbTarget, Db) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let target = match std::env::var("TEST_POSTGRES_URL") {
        // The Postgres client blocks on a runtime of its own: not on a test's.
        Ok(admin) => std::thread::spawn(move || postgres_database(&admin))
            .join()
            .expect("the thread ends"),
        Err(_) => DbTarget::from(dir.path().join("order-api.db")),
    };
    let db = Db::open(&target, &migrations()).expect("the database opens");
    (dir, target, db)
}

/// Stores a new order of one line, placed by `alice`, due 30 s after 2026-01-01T00:00:00Z.
pub(crate) fn new_order(tx: &Conn<'_>, order_id: OrderId) -> Result<HistoryEntry> {
    let items = [PricedLineItem {
        sku: Sku::parse("SKU-1").expect("a valid sku"),
        quantity: 2,
        unit_price: Money::new(1250, Currency::USD),
    }];
    crate::store::insert_order(
        tx,
        &crate::store::NewOrder {
            order_id,
            principal: "alice",
            user_id: "u-1",
            payment_method: "card",
            items: &items,
            total: Money::new(2500, Currency::USD),
            now: "2026-01-01T00:00:00.000000Z",
            deadline: "2026-01-01T00:00:30.000000Z",
        },
    )
}

/// The history entry `seq` of `order_id`, reaching `status`.
pub(crate) fn step(order_id: OrderId, seq: i64, status: OrderStatus) -> HistoryEntry {
    HistoryEntry {
        order_id,
        seq,
        status,
        reason: None,
        cause: "test".to_owned(),
        event_id: None,
        at: format!("2026-01-01T00:00:{seq:02}.000000Z"),
    }
}
