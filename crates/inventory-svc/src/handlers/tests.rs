//! Two replicas of inventory-svc on one database: each `Inventory` below has a database handle
//! of its own, as two processes do. With SQLite their transactions take turns; with Postgres
//! (`TEST_POSTGRES_URL` naming a server's admin database) they really run side by side.

use std::time::Duration;

use events::{
    CancellationReason, Currency, Envelope, EventKind, LineItem, Money, OrderCancelled, OrderId,
    PaymentCompleted, Sku,
};
use platform::Db;
use platform::db::testing::{count, events_of};
use platform::kafka::{EventHandler, HandlerError, MessageInfo};
use platform::sql::ScratchDb;

use super::Inventory;
use crate::store::{self, StockLevel};

fn scratch(prefix: &str) -> ScratchDb {
    ScratchDb::new(prefix)
}

/// Two replicas sharing `stock` (SKU, units).
async fn two_replicas(scratch: &ScratchDb, stock: &[(&str, u32)]) -> [Inventory; 2] {
    let first = Db::open(scratch.target(), &[store::MIGRATION]).expect("the database opens");
    let second = Db::open(scratch.target(), &[store::MIGRATION]).expect("it opens again");
    let stock: Vec<(String, u32)> = stock.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect();
    first
        .transaction(move |tx| {
            for (sku, units) in &stock {
                tx.execute(
                    "INSERT INTO stock (sku, available, initial) VALUES (?1, ?2, ?2)",
                    platform::params![sku, units],
                )?;
            }
            Ok::<_, platform::sql::SqlError>(())
        })
        .await
        .expect("stock is seeded");
    [Inventory::new(first), Inventory::new(second)]
}

fn sku(text: &str) -> Sku {
    Sku::parse(text).expect("a valid sku")
}

fn paid(order_id: OrderId, items: &[(&str, u32)]) -> Envelope {
    let items = items
        .iter()
        .map(|(s, quantity)| LineItem {
            sku: sku(s),
            quantity: *quantity,
        })
        .collect();
    let payment = PaymentCompleted {
        order_id,
        payment_id: format!("ch_{order_id}"),
        amount: Money::new(100, Currency::USD),
        items,
    };
    Envelope::new("/test", payment, None)
}

fn cancelled(order_id: OrderId) -> Envelope {
    let cancelled = OrderCancelled {
        order_id,
        reason: CancellationReason::Timeout,
    };
    Envelope::new("/test", cancelled, None)
}

/// Handles `envelope` as the consumer does: transient failures (a deadlock between two
/// replicas' batches, a lock wait that ran out) are tried again.
async fn deliver(inventory: &Inventory, envelope: Envelope, offset: i64) {
    let info = MessageInfo {
        topic: "test".into(),
        partition: 0,
        offset,
    };
    for _ in 0..20 {
        match inventory.handle(envelope.clone(), &info).await {
            Ok(()) => return,
            Err(HandlerError::Transient(_) | HandlerError::Unavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(error) => panic!("handling failed: {error}"),
        }
    }
    panic!("handling kept failing");
}

/// Runs `tasks` at once, each on the runtime's threads, and waits for all of them.
async fn all<F>(tasks: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("the task ends"));
    }
    outputs
}

/// (available, reserved, initial) of `sku`; a negative level fails to read.
async fn level(db: &Db, sku: &'static str) -> (u32, u32, u32) {
    let level = db
        .read(move |conn| {
            conn.query_row(
                &format!("SELECT {} FROM stock WHERE sku = ?1", StockLevel::COLUMNS),
                &[sku],
                StockLevel::from_row,
            )
        })
        .await
        .expect("the stock row");
    (level.available, level.reserved, level.initial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_reserving_at_once_never_oversell() {
    let scratch = scratch("inventory_oversell");
    let replicas = two_replicas(&scratch, &[("WIDGET-1", 10), ("GADGET-2", 7)]).await;
    // 24 orders of 1 or 2 units of each, the lines in either order: far more than there is.
    let orders: Vec<(OrderId, Envelope)> = (0..24)
        .map(|n| {
            let order_id = OrderId::new();
            let units = 1 + n % 2;
            let lines = if n % 3 == 0 {
                [("GADGET-2", units), ("WIDGET-1", units)]
            } else {
                [("WIDGET-1", units), ("GADGET-2", units)]
            };
            (order_id, paid(order_id, &lines))
        })
        .collect();
    all(orders.iter().enumerate().map(|(n, (_, envelope))| {
        let (inventory, envelope) = (replicas[n % 2].clone(), envelope.clone());
        async move { deliver(&inventory, envelope, n as i64).await }
    }))
    .await;

    let db = &replicas[0].db;
    for sku in ["WIDGET-1", "GADGET-2"] {
        let (available, reserved, initial) = level(db, sku).await;
        assert_eq!(
            available + reserved,
            initial,
            "{sku}: units appeared or vanished"
        );
        let lines = db
            .read(move |conn| {
                conn.query_row(
                    "SELECT COALESCE(SUM(i.quantity), 0) FROM reservation_items i
                     JOIN reservations r ON r.order_id = i.order_id
                     WHERE r.status = 'reserved' AND i.sku = ?1",
                    &[sku],
                    |row| row.get::<i64>(0),
                )
            })
            .await
            .expect("the sum");
        assert_eq!(
            lines,
            i64::from(reserved),
            "{sku}: reserved units without their lines"
        );
    }
    assert_eq!(count(db, "SELECT COUNT(*) FROM reservations").await, 24);
    let reserved = events_of(db, EventKind::StockReserved).await;
    let rejected = events_of(db, EventKind::StockRejected).await;
    assert_eq!(reserved + rejected, 24, "one decision announced per order");
    assert_eq!(
        reserved,
        count(
            db,
            "SELECT COUNT(*) FROM reservations WHERE status = 'reserved'"
        )
        .await
    );
    assert!(
        reserved > 0 && rejected > 0,
        "{reserved} reserved, {rejected} rejected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_racing_its_payment_leaves_nothing_reserved() {
    let scratch = scratch("inventory_cancel_race");
    let replicas = two_replicas(&scratch, &[("WIDGET-1", 100)]).await;
    let orders: Vec<OrderId> = (0..20).map(|_| OrderId::new()).collect();
    // Each order's payment on one replica and its cancellation on the other, at the same time.
    let deliveries = orders.iter().enumerate().flat_map(|(n, order_id)| {
        let offset = 2 * n as i64;
        [
            (n % 2, paid(*order_id, &[("WIDGET-1", 2)]), offset),
            ((n + 1) % 2, cancelled(*order_id), offset + 1),
        ]
    });
    all(deliveries.map(|(replica, envelope, offset)| {
        let inventory = replicas[replica].clone();
        async move { deliver(&inventory, envelope, offset).await }
    }))
    .await;

    let db = &replicas[0].db;
    assert_eq!(
        level(db, "WIDGET-1").await,
        (100, 0, 100),
        "stock is all back"
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM reservations WHERE status IN ('cancelled', 'released')"
        )
        .await,
        20,
        "every order ends cancelled or released"
    );
    assert_eq!(
        events_of(db, EventKind::StockReleased).await,
        count(
            db,
            "SELECT COUNT(*) FROM reservations WHERE status = 'released'"
        )
        .await,
        "each release announced once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_delivered_to_both_replicas_reserves_once_and_releases_once() {
    let scratch = scratch("inventory_redelivery");
    let replicas = two_replicas(&scratch, &[("WIDGET-1", 10)]).await;
    let order_id = OrderId::new();
    let payment = paid(order_id, &[("WIDGET-1", 3)]);
    tokio::join!(
        deliver(&replicas[0], payment.clone(), 0),
        deliver(&replicas[1], payment, 0),
    );
    let db = &replicas[0].db;
    assert_eq!(level(db, "WIDGET-1").await, (7, 3, 10));
    // Two cancellations of one order (a different event each): one release.
    tokio::join!(
        deliver(&replicas[0], cancelled(order_id), 1),
        deliver(&replicas[1], cancelled(order_id), 2),
    );
    assert_eq!(level(db, "WIDGET-1").await, (10, 0, 10));
    assert_eq!(events_of(db, EventKind::StockReserved).await, 1);
    assert_eq!(events_of(db, EventKind::StockReleased).await, 1);
}

#[tokio::test]
async fn seeding_twice_keeps_the_stock() {
    let scratch = scratch("inventory_seed");
    let replicas = two_replicas(&scratch, &[]).await;
    let catalog = events::Catalog::built_in().expect("the built-in catalog");
    let products = catalog.products().count();
    let seeds = replicas.iter().map(|inventory| {
        let (db, catalog) = (inventory.db.clone(), catalog.clone());
        async move { db.transaction(move |tx| store::seed(tx, &catalog)).await }
    });
    for seeded in all(seeds).await {
        seeded.expect("seeding is idempotent");
    }
    let db = &replicas[0].db;
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM stock").await,
        i64::try_from(products).expect("a small catalog")
    );
}
