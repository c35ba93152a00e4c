use events::{Currency, Money, OrderId};
use platform::sql::Result;

use super::*;
use crate::saga::OrderStatus;
use crate::testing::{self, new_order, step};

#[test]
fn a_transition_changes_only_the_status_it_was_decided_on() -> Result<()> {
    let (_scratch, db) = testing::scratch();
    let conn = db.conn();
    let order_id = OrderId::new();
    new_order(&conn, order_id)?;
    assert_eq!(
        status_for_update(&conn, order_id)?,
        Some((OrderStatus::Pending, 1))
    );
    let processing = step(order_id, 2, OrderStatus::PaymentProcessing);
    assert!(record_transition(&conn, OrderStatus::Pending, &processing)?);
    // Decided on `pending`, which the order has left: nothing is written.
    let late = step(order_id, 3, OrderStatus::Cancelled);
    assert!(!record_transition(&conn, OrderStatus::Pending, &late)?);
    assert_eq!(
        status_for_update(&conn, order_id)?,
        Some((OrderStatus::PaymentProcessing, 2))
    );
    let history = history_after(&conn, order_id, 0)?;
    assert_eq!(history.len(), 2);
    // Two entries with one number: the key refuses the second.
    let twin = step(order_id, 2, OrderStatus::PaymentConfirmed);
    let refused = record_transition(&conn, OrderStatus::PaymentProcessing, &twin);
    assert!(refused.is_err_and(|error| error.is_constraint()));
    assert_eq!(status_for_update(&conn, OrderId::new())?, None);
    Ok(())
}

#[test]
fn an_order_reads_back_as_written() -> Result<()> {
    let (_scratch, db) = testing::scratch();
    let conn = db.conn();
    let order_id = OrderId::new();
    new_order(&conn, order_id)?;
    let order = load_order(&conn, order_id)?.expect("the order exists");
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(order.total, Money::new(2500, Currency::USD));
    assert_eq!(order.items.len(), 1);
    assert_eq!(order.items[0].quantity, 2);
    assert_eq!(order.history.len(), 1);
    assert_eq!(owner_of(&conn, order_id)?.as_deref(), Some("alice"));
    assert_eq!(count_orders(&conn)?, 1);
    // Stored at the transaction's time, to the microsecond.
    let format = platform::time::format;
    assert_eq!(format(order.created_at), format(conn.now()));
    let second = chrono::TimeDelta::seconds(1);
    assert_eq!(count_open_accepted_before(&conn, conn.now() + second)?, 1);
    assert_eq!(count_open_accepted_before(&conn, conn.now())?, 0);
    // Placed a second past its deadline (see `new_order`).
    let due: Vec<OrderId> = overdue(&conn, conn.now(), 10)?
        .into_iter()
        .map(|overdue| overdue.order_id)
        .collect();
    assert_eq!(due, [order_id]);
    assert!(overdue(&conn, conn.now() - second * 2, 10)?.is_empty());
    assert!(load_order(&conn, OrderId::new())?.is_none());
    Ok(())
}

/// Replies to one order handled at once by two replicas (two `Db`s on one database) take
/// turns: each decides on the status and history the one before it left, so every step is taken
/// once and the history has no gaps and no repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transitions_of_one_order_take_turns() {
    let (_dir, target, first) = testing::fresh_db();
    let second = platform::Db::open(&target, crate::app::MIGRATIONS).expect("a second replica");
    let order_id = OrderId::new();
    first
        .transaction(move |tx| new_order(tx, order_id))
        .await
        .expect("the order is stored");
    let advance = |db: &platform::Db| {
        let db = db.clone();
        tokio::spawn(async move {
            db.transaction(move |tx| {
                let Some((status, seq)) = status_for_update(tx, order_id)? else {
                    return Ok(None);
                };
                // Holds the order while the other replica's transaction arrives, so that it has
                // to wait and then decide on what this one leaves.
                std::thread::sleep(std::time::Duration::from_millis(20));
                let next = match status {
                    OrderStatus::Pending => OrderStatus::PaymentProcessing,
                    OrderStatus::PaymentProcessing => OrderStatus::PaymentConfirmed,
                    OrderStatus::PaymentConfirmed => OrderStatus::Confirmed,
                    OrderStatus::Confirmed | OrderStatus::Cancelled => return Ok(None),
                };
                record_transition(tx, status, &step(order_id, seq + 1, next)).map(Some)
            })
            .await
        })
    };
    let mut advanced = 0;
    for _round in 0..3 {
        for task in [advance(&first), advance(&second)] {
            match task.await.expect("the task ends") {
                Ok(Some(true)) => advanced += 1,
                Ok(Some(false)) => panic!("a transition was decided on a status already left"),
                Ok(None) => {}
                Err(error) => panic!("a transition failed: {error}"),
            }
        }
    }
    assert_eq!(advanced, 3, "three steps from pending to confirmed");
    let history = first
        .read(move |conn| history_after(conn, order_id, 0))
        .await
        .expect("the history reads");
    let seqs: Vec<i64> = history.iter().map(|entry| entry.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(
        history.last().map(|entry| entry.status),
        Some(OrderStatus::Confirmed)
    );
}
