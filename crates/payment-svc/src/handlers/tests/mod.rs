//! Two replicas of payment-svc on one database: each `Payments` below has a database handle and
//! a provider of its own, as two processes do. With SQLite their transactions take turns; with
//! Postgres (`TEST_POSTGRES_URL` naming a server's admin database) they run side by side.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use events::{
    CancellationReason, Envelope, EventKind, OrderCancelled, OrderId, PaymentFailureReason,
    StockRejected, StockRejectionReason,
};
use platform::Db;
use platform::db::lease::Lease;
use platform::db::testing::{count, events_of};
use platform::kafka::{EventHandler, HandlerError, MessageInfo};
use platform::params;
use platform::sql::ScratchDb;
use test_support::eventually_within;

use super::Payments;
use crate::provider::{
    Accepted, ChargeRequest, Notification, Outcome, PaymentProvider, ProviderError, RefundRequest,
};
use crate::{recovery, store};

fn scratch(prefix: &str) -> ScratchDb {
    ScratchDb::new(prefix)
}

/// Provider requests a replica runs at once.
const SLOTS: usize = 16;

/// A provider that accepts every request, tells no outcome, and remembers what it was asked.
#[derive(Debug, Default)]
struct Recorder {
    charges: Mutex<Vec<OrderId>>,
    refunds: Mutex<Vec<OrderId>>,
}

impl Recorder {
    fn charges(&self) -> Vec<OrderId> {
        self.charges.lock().expect("not poisoned").clone()
    }

    fn refunds(&self) -> Vec<OrderId> {
        self.refunds.lock().expect("not poisoned").clone()
    }
}

impl PaymentProvider for Recorder {
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        self.charges
            .lock()
            .expect("not poisoned")
            .push(request.order_id);
        Box::pin(async move {
            Ok(Accepted {
                id: charge_id(request.order_id),
                outcome: None,
            })
        })
    }

    fn refund(&self, request: RefundRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        self.refunds
            .lock()
            .expect("not poisoned")
            .push(request.order_id);
        Box::pin(async move {
            Ok(Accepted {
                id: format!("re_{}", request.order_id),
                outcome: None,
            })
        })
    }
}

fn charge_id(order_id: OrderId) -> String {
    format!("ch_{}", order_id.to_string().replace('_', ""))
}

/// A replica: its handlers and its provider.
#[derive(Clone)]
struct Replica {
    payments: Payments,
    provider: Arc<Recorder>,
}

fn two_replicas(scratch: &ScratchDb) -> [Replica; 2] {
    [0, 1].map(|_| {
        let db = Db::open(scratch.target(), store::MIGRATIONS).expect("the database opens");
        let provider = Arc::new(Recorder::default());
        Replica {
            payments: Payments::new(db, provider.clone(), SLOTS, None),
            provider,
        }
    })
}

fn created(order_id: OrderId) -> Envelope {
    events::testing::order_created_envelope(order_id, 2500)
}

fn cancelled(order_id: OrderId) -> Envelope {
    let cancelled = OrderCancelled {
        order_id,
        reason: CancellationReason::Timeout,
    };
    Envelope::new("/test", cancelled, None)
}

fn succeeded(order_id: OrderId, notification_id: &str) -> Notification {
    Notification {
        notification_id: notification_id.to_owned(),
        order_id,
        outcome: Outcome::ChargeSucceeded {
            charge_id: charge_id(order_id),
        },
    }
}

/// Handles `envelope` as the consumer does: transient failures (a deadlock between two
/// replicas' batches, a lock wait that ran out) are tried again.
async fn deliver(replica: &Replica, envelope: Envelope, offset: i64) {
    let info = MessageInfo {
        topic: "test".into(),
        partition: 0,
        offset,
    };
    for _ in 0..20 {
        match replica.payments.handle(envelope.clone(), &info).await {
            Ok(()) => return,
            Err(HandlerError::Transient(_) | HandlerError::Unavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(error) => panic!("handling failed: {error}"),
        }
    }
    panic!("handling kept failing");
}

/// Applies `notification` as the webhook endpoint does; the provider retries failures.
async fn notify(replica: &Replica, notification: Notification) {
    for _ in 0..20 {
        match replica.payments.requests.apply(notification.clone()).await {
            Ok(()) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("the notification kept failing");
}

/// Runs `tasks` at once and waits for all of them.
async fn all<F>(tasks: impl IntoIterator<Item = F>)
where
    F: Future<Output = ()> + Send + 'static,
{
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    for handle in handles {
        handle.await.expect("the task ends");
    }
}

/// Polls `condition` until it holds; fails the test after 10 s.
async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    eventually_within(Duration::from_secs(10), || {
        std::future::ready(if condition() {
            Ok(())
        } else {
            Err(what.to_owned())
        })
    })
    .await
    .expect("the condition holds");
}

/// Waits until `seen` (requests made in the background) reaches `expected` and no replica has
/// a provider request in flight any more: a handler takes its request's slot before it returns,
/// so a request too many would have shown by then.
async fn settle(replicas: &[Replica; 2], expected: usize, seen: impl Fn() -> usize) {
    let idle = || {
        replicas
            .iter()
            .all(|replica| replica.payments.requests.free_slots() == SLOTS)
    };
    eventually_within(Duration::from_secs(10), || {
        let requests = seen();
        std::future::ready(if requests >= expected && idle() {
            Ok(())
        } else {
            Err(format!(
                "{requests} of {expected} provider requests, idle: {}",
                idle()
            ))
        })
    })
    .await
    .expect("the replicas settle");
}

fn charges(replicas: &[Replica; 2]) -> Vec<OrderId> {
    let mut all = replicas[0].provider.charges();
    all.extend(replicas[1].provider.charges());
    all
}

fn refunds(replicas: &[Replica; 2]) -> Vec<OrderId> {
    let mut all = replicas[0].provider.refunds();
    all.extend(replicas[1].provider.refunds());
    all
}

/// Each order once, whatever the list's order.
fn distinct(mut ids: Vec<OrderId>) -> usize {
    ids.sort_by_key(ToString::to_string);
    ids.dedup();
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_seen_by_both_replicas_is_charged_once() {
    let scratch = scratch("payment_charge_once");
    let replicas = two_replicas(&scratch);
    let orders: Vec<OrderId> = (0..12).map(|_| OrderId::new()).collect();
    // Each order.created to both replicas (a redelivery after a rebalance), and a second
    // order.created of the same order (another event id) too.
    let deliveries = orders.iter().enumerate().flat_map(|(n, order_id)| {
        let event = created(*order_id);
        let offset = 2 * n as i64;
        [
            (0, event.clone(), offset),
            (1, event, offset),
            (n % 2, created(*order_id), offset + 1),
        ]
    });
    all(deliveries.map(|(replica, envelope, offset)| {
        let replica = replicas[replica].clone();
        async move { deliver(&replica, envelope, offset).await }
    }))
    .await;
    settle(&replicas, orders.len(), || charges(&replicas).len()).await;

    let charged = charges(&replicas);
    assert_eq!(charged.len(), orders.len(), "one charge request per order");
    assert_eq!(distinct(charged), orders.len());
    let db = &replicas[0].payments.db;
    assert_eq!(
        events_of(db, EventKind::PaymentInitiated).await,
        12,
        "one payment.initiated per order"
    );
    assert_eq!(count(db, "SELECT COUNT(*) FROM payments").await, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_racing_the_charges_success_is_refunded_once() {
    let scratch = scratch("payment_cancel_race");
    let replicas = two_replicas(&scratch);
    let orders: Vec<OrderId> = (0..16).map(|_| OrderId::new()).collect();
    for (n, order_id) in orders.iter().enumerate() {
        deliver(&replicas[0], created(*order_id), n as i64).await;
    }
    settle(&replicas, orders.len(), || charges(&replicas).len()).await;
    // The charge's success reaches one replica (a webhook) while the other handles the
    // order's cancellation: whichever comes first, the order must get its money back.
    let work = orders.iter().enumerate().flat_map(|(n, order_id)| {
        let (webhook, consumer) = (replicas[n % 2].clone(), replicas[(n + 1) % 2].clone());
        let notification = succeeded(*order_id, &format!("wh_{n}"));
        let cancellation = cancelled(*order_id);
        let offset = 100 + n as i64;
        [
            tokio::spawn(async move { notify(&webhook, notification).await }),
            tokio::spawn(async move { deliver(&consumer, cancellation, offset).await }),
        ]
    });
    all(work.map(|handle| async move { handle.await.expect("the task ends") })).await;
    settle(&replicas, orders.len(), || refunds(&replicas).len()).await;

    let db = &replicas[0].payments.db;
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM payments WHERE status = 'refunding'"
        )
        .await,
        16,
        "every cancelled order is being refunded"
    );
    assert_eq!(count(db, "SELECT COUNT(*) FROM refunds").await, 16);
    let refunded = refunds(&replicas);
    assert_eq!(refunded.len(), orders.len(), "one refund request per order");
    assert_eq!(distinct(refunded), orders.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_outcome_told_to_both_replicas_completes_the_payment_once() {
    let scratch = scratch("payment_outcome_once");
    let replicas = two_replicas(&scratch);
    let orders: Vec<OrderId> = (0..12).map(|_| OrderId::new()).collect();
    for (n, order_id) in orders.iter().enumerate() {
        deliver(&replicas[n % 2], created(*order_id), n as i64).await;
    }
    // The webhook at one replica, the same outcome learnt by asking again at the other (each
    // under its own notification id), and the webhook's retry at the other too.
    let work = orders.iter().enumerate().flat_map(|(n, order_id)| {
        [
            (0, succeeded(*order_id, &format!("wh_{n}"))),
            (1, succeeded(*order_id, &format!("sync_{n}"))),
            (1, succeeded(*order_id, &format!("wh_{n}"))),
        ]
    });
    all(work.map(|(replica, notification)| {
        let replica = replicas[replica].clone();
        async move { notify(&replica, notification).await }
    }))
    .await;

    let db = &replicas[0].payments.db;
    assert_eq!(events_of(db, EventKind::PaymentCompleted).await, 12);
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM payments WHERE status = 'charged'").await,
        12
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_sweeps_and_hands_over_at_shutdown() {
    let scratch = scratch("payment_sweep_lease");
    let replicas = two_replicas(&scratch);
    let order_id = OrderId::new();
    deliver(&replicas[0], created(order_id), 0).await;
    settle(&replicas, 1, || charges(&replicas).len()).await;
    let sweep = |replica: &Replica, shutdown: &CancellationToken| {
        let lease = Lease::with_ttl(
            &replica.payments.db,
            recovery::LEASE,
            Duration::from_secs(30),
        );
        tokio::spawn(recovery::run_sweep(
            replica.payments.requests.clone(),
            lease,
            Duration::from_millis(20),
            // Every request is stale at once: each round re-sends it.
            Duration::ZERO,
            shutdown.clone(),
        ))
    };
    let (first_stops, second_stops) = (CancellationToken::new(), CancellationToken::new());
    let first = sweep(&replicas[0], &first_stops);
    // Its first re-sent request shows that the first sweep holds the lease.
    wait_for("the first sweep re-sends", || {
        replicas[0].provider.charges().len() > 1
    })
    .await;
    let second = sweep(&replicas[1], &second_stops);
    let before = replicas[0].provider.charges().len();
    // While the holder sweeps round after round (one every 20 ms), the other sends nothing.
    wait_for("the holder sweeps three more rounds", || {
        replicas[0].provider.charges().len() >= before + 3
    })
    .await;
    assert_eq!(
        replicas[1].provider.charges().len(),
        0,
        "the other replica does not sweep"
    );

    // The holder stops and gives the lease up: the other takes over without waiting 30 s.
    first_stops.cancel();
    first.await.expect("the sweep ends");
    settle(&replicas, 1, || replicas[1].provider.charges().len()).await;
    assert!(!replicas[1].provider.charges().is_empty(), "taken over");
    second_stops.cancel();
    second.await.expect("the sweep ends");
}

async fn status_of(db: &Db, order_id: OrderId) -> String {
    db.read(move |conn| {
        conn.query_row(
            "SELECT status FROM payments WHERE order_id = ?1",
            params![order_id],
            |row| row.get::<String>(0),
        )
    })
    .await
    .expect("the payment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_live_their_whole_lives_across_replicas() {
    let scratch = scratch("payment_lives");
    let replicas = two_replicas(&scratch);
    let (paid, declined) = (OrderId::new(), OrderId::new());
    deliver(&replicas[0], created(paid), 0).await;
    deliver(&replicas[1], created(declined), 1).await;
    notify(&replicas[1], succeeded(paid, "wh_ok")).await;
    let failure = Outcome::ChargeFailed {
        charge_id: charge_id(declined),
        reason: PaymentFailureReason::Declined,
        detail: "Do not honour".into(),
    };
    notify(
        &replicas[0],
        Notification {
            notification_id: "wh_no".into(),
            order_id: declined,
            outcome: failure,
        },
    )
    .await;
    // Paid, then out of stock: refunded.
    let rejected = StockRejected {
        order_id: paid,
        reason: StockRejectionReason::OutOfStock,
        shortages: Vec::new(),
    };
    deliver(&replicas[1], Envelope::new("/test", rejected, None), 2).await;
    settle(&replicas, 1, || refunds(&replicas).len()).await;
    assert_eq!(refunds(&replicas), vec![paid]);

    // The refund's outcome is not heard: the sweep asks again.
    let shutdown = CancellationToken::new();
    let db = replicas[0].payments.db.clone();
    let sweep = tokio::spawn(recovery::run_sweep(
        replicas[0].payments.requests.clone(),
        Lease::with_ttl(&db, recovery::LEASE, Duration::from_secs(30)),
        Duration::from_millis(20),
        Duration::ZERO,
        shutdown.clone(),
    ));
    settle(&replicas, 2, || refunds(&replicas).len()).await;
    shutdown.cancel();
    sweep.await.expect("the sweep ends");
    assert!(refunds(&replicas).len() >= 2, "the refund was asked again");
    assert_eq!(distinct(refunds(&replicas)), 1);

    let refunded = Outcome::RefundSucceeded {
        refund_id: format!("re_{paid}"),
    };
    let notification = Notification {
        notification_id: "wh_refund".into(),
        order_id: paid,
        outcome: refunded,
    };
    notify(&replicas[1], notification.clone()).await;
    notify(&replicas[0], notification).await;
    assert_eq!(status_of(&db, paid).await, "refunded");
    assert_eq!(status_of(&db, declined).await, "failed");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM refunds WHERE status = 'refunded'"
        )
        .await,
        1
    );
    for kind in [
        EventKind::PaymentCompleted,
        EventKind::PaymentFailed,
        EventKind::PaymentRefunded,
    ] {
        assert_eq!(events_of(&db, kind).await, 1, "{kind:?} once");
    }
    assert_eq!(charges(&replicas).len(), 2, "no charge asked twice");
}

mod causation;
mod refund;
