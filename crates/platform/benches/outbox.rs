//! The write path every saga hop takes: a transaction that records an effect and queues an
//! event, then the outbox relay that publishes it.
//!
//! - `group_commit`: 256 one-row write transactions submitted at once (as concurrent handlers
//!   and requests do) against the same 256 awaited one after the other; the difference is what
//!   committing waiting transactions together saves.
//! - `outbox`: 500 saga events queued in one transaction, then published by the relay to the
//!   embedded broker and deleted after the broker's acknowledgement — the relay's batch path.
//!
//! Run with `cargo bench -p platform` (add `-- --quick` for a fast look).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use embedded_broker::EmbeddedBroker;
use events::{Envelope, OrderId};
use platform::Db;
use platform::config::KafkaConfig;
use platform::db::Migration;
use platform::kafka::EventProducer;
use platform::outbox::{self, RelayConfig};

const TABLE: Migration = Migration::new(
    "bench/effects/1",
    "CREATE TABLE effects (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
);
const TRANSACTIONS: usize = 256;
const BATCH: usize = 500;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn order_created() -> Envelope {
    events::testing::order_created_envelope(OrderId::new(), 2499)
}

async fn insert(db: &Db) {
    db.transaction(|tx| {
        tx.execute("INSERT INTO effects (v) VALUES ('x')", &[])
            .map(|_| ())
    })
    .await
    .expect("insert");
}

fn group_commit(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = Db::open(&dir.path().join("bench.db").into(), &[TABLE]).expect("the database opens");
    let mut group = c.benchmark_group("group_commit");
    group.throughput(Throughput::Elements(TRANSACTIONS as u64));
    group.bench_function("256 transactions at once", |b| {
        b.to_async(&rt)
            .iter(|| join_all((0..TRANSACTIONS).map(|_| insert(&db))));
    });
    group.bench_function("256 transactions one by one", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..TRANSACTIONS {
                insert(&db).await;
            }
        });
    });
    group.finish();
}

fn outbox_relay(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let broker = EmbeddedBroker::start(1).expect("the embedded broker starts");
    let db = Db::open(&dir.path().join("bench.db").into(), &[]).expect("the database opens");
    let mut kafka = KafkaConfig {
        client_id: "bench".to_owned(),
        ..KafkaConfig::default()
    }
    .with_bootstrap(broker.bootstrap_servers());
    kafka.linger = Duration::from_millis(1);
    let shutdown = CancellationToken::new();
    let relay = {
        let _guard = rt.enter();
        let producer = EventProducer::new(&kafka).expect("a producer");
        tokio::spawn(outbox::run_relay(
            db.clone(),
            producer,
            RelayConfig::default(),
            shutdown.clone(),
        ))
    };
    let mut group = c.benchmark_group("outbox");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("500 events queued, published and acknowledged", |b| {
        b.to_async(&rt).iter_custom(|iterations| {
            let db = db.clone();
            async move {
                let mut spent = Duration::ZERO;
                for _ in 0..iterations {
                    let events: Vec<Envelope> = (0..BATCH).map(|_| order_created()).collect();
                    let started = Instant::now();
                    db.transaction(move |tx| {
                        for envelope in &events {
                            outbox::enqueue(tx, envelope)?;
                        }
                        Ok::<_, platform::sql::SqlError>(())
                    })
                    .await
                    .expect("enqueue");
                    while db.call(outbox::backlog).await.expect("backlog") > 0 {
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                    spent += started.elapsed();
                }
                spent
            }
        });
    });
    group.finish();
    shutdown.cancel();
    rt.block_on(relay).expect("the relay stops");
}

criterion_group!(benches, group_commit, outbox_relay);
criterion_main!(benches);
