//! The SQL edge of payment-svc's tables, on a real database: what is written reads back as
//! written, timestamps keep the one stored text form, and a corrupt row is an error.

use events::{CancellationReason, Currency, EventId, LineItem, Money, OrderId, PaymentMethod, Sku};
use platform::Db;
use platform::params;
use platform::sql::{ErrorKind, ScratchDb};

use super::{
    MIGRATIONS, Payment, PaymentStatus, Refund, insert_payment, insert_refund, lock_payment,
    stale_charges, stale_refunds, transition,
};

fn open(scratch: &ScratchDb) -> Db {
    Db::open(scratch.target(), MIGRATIONS).expect("the database opens")
}

fn payment(order_id: OrderId) -> Payment {
    Payment {
        order_id,
        amount: Money::new(2500, Currency::USD),
        payment_method: PaymentMethod::parse("pm_visa_4242").expect("a valid method"),
        items: vec![LineItem {
            sku: Sku::parse("WIDGET-1").expect("a valid sku"),
            quantity: 2,
        }],
        status: PaymentStatus::Charging,
        charge_id: None,
        webhook_url: Some("http://127.0.0.1:1/webhooks/payments".into()),
        causation_id: Some(EventId::new()),
    }
}

/// A charged payment of its own order and its refund, as the handlers leave them.
async fn refunding(db: &Db) -> OrderId {
    let order_id = OrderId::new();
    db.transaction(move |tx| {
        insert_payment(tx, &payment(order_id))?;
        transition(
            tx,
            order_id,
            PaymentStatus::Charging,
            PaymentStatus::Refunding,
            Some("ch_1"),
            None,
        )?;
        let refund = Refund {
            order_id,
            amount: Money::new(2500, Currency::USD),
            charge_id: "ch_1".into(),
            reason: CancellationReason::OutOfStock,
            webhook_url: None,
            causation_id: Some(EventId::new()),
        };
        insert_refund(tx, &refund)
    })
    .await
    .expect("written");
    order_id
}

#[tokio::test]
async fn a_payment_reads_back_as_written_with_its_transactions_time() {
    let scratch = ScratchDb::new("payment_store_round_trip");
    let db = open(&scratch);
    let order_id = OrderId::new();
    let written = db
        .transaction(move |tx| {
            insert_payment(tx, &payment(order_id))?;
            Ok::<_, platform::sql::SqlError>(tx.now())
        })
        .await
        .expect("written");

    let read = db
        .transaction(move |tx| lock_payment(tx, order_id))
        .await
        .expect("read")
        .expect("the payment");
    let expected = payment(order_id);
    assert_eq!(read.order_id, order_id);
    assert_eq!(read.amount, expected.amount);
    assert_eq!(read.payment_method, expected.payment_method);
    assert_eq!(read.items, expected.items);
    assert_eq!(read.status, PaymentStatus::Charging);
    assert_eq!(read.webhook_url, expected.webhook_url);

    // The stored form existing databases hold: RFC 3339, six fractional digits, `Z`.
    let (created, updated) = db
        .read(move |conn| {
            conn.query_row(
                "SELECT created_at, updated_at FROM payments WHERE order_id = ?1",
                params![order_id],
                |row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)),
            )
        })
        .await
        .expect("the timestamps");
    assert_eq!(created, platform::time::format(written));
    assert_eq!(created, updated, "one time per transaction");
    assert_eq!(created.len(), "2026-12-05T13:36:39.123456Z".len());
    assert!(created.ends_with('Z'), "{created}");
}

#[tokio::test]
async fn a_corrupt_row_is_an_error_and_the_sweep_still_gets_the_others() {
    let scratch = ScratchDb::new("payment_store_corrupt");
    let db = open(&scratch);
    let (sound, corrupt) = (refunding(&db).await, refunding(&db).await);
    db.transaction(move |tx| {
        tx.execute(
            "UPDATE payments SET currency = 'dollars' WHERE order_id = ?1",
            params![corrupt],
        )?;
        tx.execute(
            "UPDATE refunds SET reason = 'whim' WHERE order_id = ?1",
            params![corrupt],
        )
    })
    .await
    .expect("corrupted");

    let locked = db.transaction(move |tx| lock_payment(tx, corrupt)).await;
    let kind = locked.err().map(|error| error.kind());
    assert_eq!(kind, Some(ErrorKind::Conversion), "not a default currency");

    let later = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    let refunds = db
        .read(move |conn| stale_refunds(conn, later, 10))
        .await
        .expect("the query runs");
    let (read, failed): (Vec<_>, Vec<_>) = refunds.into_iter().partition(Result::is_ok);
    let read: Vec<OrderId> = read.into_iter().flatten().map(|r| r.order_id).collect();
    assert_eq!(read, vec![sound]);
    assert_eq!(failed.len(), 1, "the corrupt refund is an error of its own");

    // Payments in `refunding` are not stale charges: none is listed, sound or not.
    let charges = db
        .read(move |conn| stale_charges(conn, later, 10))
        .await
        .expect("the query runs");
    assert!(charges.is_empty());
}
