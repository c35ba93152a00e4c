use events::{Currency, Money, OrderId};
use platform::sql::Result;

use super::*;
use crate::saga::OrderStatus;
use crate::testing::{self, new_order, new_order_by, step};

#[test]
fn a_transition_changes_only_the_status_it_was_decided_on() -> Result<()> {
    let (_scratch, db) = testing::scratch();
    let conn = db.conn();
    let order_id = OrderId::new();
    new_order(&conn, order_id)?;
    let locked = status_for_update(&conn, order_id)?;
    assert_eq!(
        locked.map(|locked| (locked.status, locked.last_seq)),
        Some((OrderStatus::Pending, 1))
    );
    let processing = step(order_id, 2, OrderStatus::PaymentProcessing);
    assert!(record_transition(&conn, OrderStatus::Pending, &processing)?);
    // Decided on `pending`, which the order has left: nothing is written.
    let late = step(order_id, 3, OrderStatus::Cancelled);
    assert!(!record_transition(&conn, OrderStatus::Pending, &late)?);
    let locked = status_for_update(&conn, order_id)?;
    assert_eq!(
        locked.map(|locked| (locked.status, locked.last_seq)),
        Some((OrderStatus::PaymentProcessing, 2))
    );
    let history = history_after(&conn, order_id, 0)?;
    assert_eq!(history.len(), 2);
    // The acceptance time is the first entry's, as the saga's duration counts from it.
    assert_eq!(locked.map(|locked| locked.accepted_at), Some(history[0].at));
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
                let Some(Locked {
                    status,
                    last_seq: seq,
                    ..
                }) = status_for_update(tx, order_id)?
                else {
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

/// Every page of `principal`'s orders (with `status`, if given) `limit` at a time, as the API
/// walks them: each page starts after the last key of the one before. `between` runs after each
/// page, so that a test can change the orders while they are listed.
fn every_page(
    conn: &platform::sql::Connection,
    principal: &str,
    status: Option<OrderStatus>,
    limit: u32,
    mut between: impl FnMut() -> Result<()>,
) -> Result<Vec<Vec<OrderId>>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = Page {
            principal: Some(principal),
            status,
            after,
            limit,
            ..Page::default()
        };
        let orders = list_orders(&conn.conn(), &page)?;
        let Some(last) = orders.last() else {
            return Ok(pages);
        };
        after = Some(last.key());
        pages.push(orders.iter().map(|order| order.order_id).collect());
        between()?;
    }
}

#[test]
fn a_listing_pages_through_a_principals_orders_newest_first_each_once() -> Result<()> {
    let (_scratch, db) = testing::scratch();
    // Three orders accepted in one transaction (one time: the id breaks the tie), four in
    // transactions of their own, and Bob's in between.
    let mut alices = Vec::new();
    let tied = db.conn();
    for _ in 0..3 {
        let order_id = OrderId::new();
        new_order_by(&tied, order_id, "alice")?;
        alices.push(order_id);
    }
    let mut bobs = Vec::new();
    for _ in 0..4 {
        let (alice, bob) = (OrderId::new(), OrderId::new());
        new_order_by(&db.conn(), alice, "alice")?;
        new_order_by(&db.conn(), bob, "bob")?;
        alices.push(alice);
        bobs.push(bob);
    }
    let newest_first = |ids: &[OrderId]| -> Result<Vec<OrderId>> {
        let mut keyed = Vec::new();
        for &order_id in ids {
            let order = load_order(&db.conn(), order_id)?.expect("the order exists");
            keyed.push((order.created_at, order_id));
        }
        keyed.sort_by(|a, b| b.cmp(a));
        Ok(keyed.into_iter().map(|(_, order_id)| order_id).collect())
    };
    let expected = newest_first(&alices)?;

    // Orders placed while Alice pages are newer than every page she holds: they shift nothing.
    let late = std::cell::RefCell::new(Vec::new());
    let pages = every_page(&db, "alice", None, 3, || {
        let order_id = OrderId::new();
        late.borrow_mut().push(order_id);
        new_order_by(&db.conn(), order_id, "alice").map(drop)
    })?;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(pages.concat(), expected);
    assert_eq!(late.borrow().len(), 3);

    // Bob sees his orders only, and Alice's newest page now starts with what she placed last.
    let bobs_pages = every_page(&db, "bob", None, 10, || Ok(()))?;
    assert_eq!(bobs_pages, [newest_first(&bobs)?]);
    let first = &every_page(&db, "alice", None, 1, || Ok(()))?[0];
    assert_eq!(first, &newest_first(&late.borrow())?[..1]);
    assert!(every_page(&db, "carol", None, 10, || Ok(()))?.is_empty());
    Ok(())
}

#[test]
fn a_listing_filters_by_status() -> Result<()> {
    let (_scratch, db) = testing::scratch();
    let conn = db.conn();
    let ids: Vec<OrderId> = (0..4).map(|_| OrderId::new()).collect();
    for &order_id in &ids {
        new_order(&db.conn(), order_id)?;
    }
    for &order_id in &ids[1..3] {
        let processing = step(order_id, 2, OrderStatus::PaymentProcessing);
        assert!(record_transition(&conn, OrderStatus::Pending, &processing)?);
    }
    let listed = |status| -> Result<Vec<OrderId>> {
        let mut ids = every_page(&db, "alice", Some(status), 1, || Ok(()))?.concat();
        ids.sort();
        Ok(ids)
    };
    let mut processing = ids[1..3].to_vec();
    processing.sort();
    assert_eq!(listed(OrderStatus::PaymentProcessing)?, processing);
    let mut pending = vec![ids[0], ids[3]];
    pending.sort();
    assert_eq!(listed(OrderStatus::Pending)?, pending);
    assert!(listed(OrderStatus::Confirmed)?.is_empty());
    let summary = &list_orders(
        &conn,
        &Page {
            principal: Some("alice"),
            status: Some(OrderStatus::PaymentProcessing),
            limit: 1,
            ..Page::default()
        },
    )?[0];
    assert_eq!(summary.status, OrderStatus::PaymentProcessing);
    assert_eq!(summary.total, Money::new(2500, Currency::USD));
    assert_eq!(summary.user_id.as_str(), "u-1");
    assert_eq!(summary.cancellation_reason, None);
    Ok(())
}

/// SQLite says how it runs a statement: a page is read from the principal's index, in its
/// order, with no sort of all the principal's orders.
#[test]
fn a_page_is_read_from_the_principals_index() -> Result<()> {
    let (_scratch, db) = testing::scratch();
    let conn = db.conn();
    if conn.dialect() != platform::sql::Dialect::Sqlite {
        return Ok(());
    }
    let plan: Vec<String> = conn.query_map(
        "EXPLAIN QUERY PLAN SELECT order_id FROM orders
         WHERE principal = ?1 AND (created_at, order_id) < (?2, ?3)
         ORDER BY created_at DESC, order_id DESC LIMIT ?4",
        platform::params!["alice", "2026-01-01T00:00:00.000000Z", "ord_0", 20],
        |row| row.get(3),
    )?;
    let plan = plan.join("\n");
    assert!(plan.contains("orders_by_principal"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    Ok(())
}

/// Every page the console asks for is read from an index, in its order: no scan of the whole
/// table and no sort of it, so a page costs the same with 100,000 orders as with 100. (A filter
/// on an unindexed column — reason, principal — walks an index and checks each order it meets,
/// which stops once the page is full.)
#[test]
fn the_console_s_pages_are_read_from_indexes() -> Result<()> {
    use chrono::TimeDelta;

    use super::listing::plan;

    let (_scratch, db) = testing::scratch();
    let conn = db.conn();
    if conn.dialect() != platform::sql::Dialect::Sqlite {
        return Ok(());
    }
    // Statistics as a large shop would have them, so that the planner chooses as it would there.
    conn.execute_batch("ANALYZE")?;
    let now = conn.now();
    let after = Some(crate::store::OrderKey {
        created_at: now,
        order_id: OrderId::new(),
    });
    let pages = [
        ("everything", Page::default()),
        (
            "a later page",
            Page {
                after,
                ..Page::default()
            },
        ),
        (
            "one status",
            Page {
                status: Some(OrderStatus::Cancelled),
                after,
                ..Page::default()
            },
        ),
        (
            "a reason",
            Page {
                reason: Some(events::CancellationReason::Timeout),
                ..Page::default()
            },
        ),
        (
            "one principal",
            Page {
                principal: Some("bob"),
                after,
                ..Page::default()
            },
        ),
        (
            "stuck",
            Page {
                open_only: true,
                created_before: Some(now - TimeDelta::seconds(10)),
                ..Page::default()
            },
        ),
        (
            "an age window",
            Page {
                created_before: Some(now - TimeDelta::seconds(60)),
                created_since: Some(now - TimeDelta::seconds(3600)),
                ..Page::default()
            },
        ),
    ];
    for (name, page) in pages {
        let page = Page { limit: 50, ..page };
        let plan = plan(&conn, &page)?.join("\n");
        assert!(plan.contains("USING"), "{name}: no index\n{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{name}: a sort\n{plan}");
    }
    Ok(())
}
