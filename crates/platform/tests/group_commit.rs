//! The database thread's group commit: transactions that wait together commit together, yet
//! each one still commits or fails on its own, and a caller hears `Ok` only after its commit.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::join_all;
use platform::Db;
use platform::db::Migration;
use platform::sql::ScratchDb;
use platform::sql::{ErrorKind, SqlError};

const TABLE: Migration = Migration::new(
    "test/t/1",
    "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL);",
);

fn open() -> (ScratchDb, Db) {
    let scratch = ScratchDb::new("group_commit");
    let db = Db::open(scratch.target(), &[TABLE]).expect("the database opens");
    (scratch, db)
}

fn refused() -> SqlError {
    SqlError::new(ErrorKind::Other, "refused by the test")
}

async fn count(db: &Db) -> i64 {
    db.call(|conn| conn.query_row("SELECT COUNT(*) FROM t", &[], |row| row.get(0)))
        .await
        .expect("count")
}

/// Polls `future` once. A database call sends its job before it first waits, so afterwards the
/// job is in the queue, in the order of these calls.
async fn queued<F: Future>(future: F) -> Pin<Box<F>> {
    let mut future = Box::pin(future);
    assert!(
        futures::poll!(future.as_mut()).is_pending(),
        "answered before the hold was released"
    );
    future
}

/// Holds the database thread until the returned sender is used (or dropped), so that the
/// transactions queued meanwhile are committed as one batch; the future ends with the hold.
async fn hold(db: &Db) -> (impl Future<Output = ()>, mpsc::Sender<()>) {
    let (release, released) = mpsc::channel::<()>();
    let held = queued(db.call(move |_| {
        // Either a release or the sender's drop ends the hold.
        let _ = released.recv();
        Ok::<_, SqlError>(())
    }))
    .await;
    (held.map(|result| result.expect("hold")), release)
}

#[tokio::test]
async fn a_failing_transaction_in_a_batch_leaves_the_others_committed() {
    let (_dir, db) = open();
    let (held, release) = hold(&db).await;
    let mut writes = Vec::new();
    for k in 0..200_i64 {
        writes.push(
            queued(db.transaction(move |tx| {
                tx.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", &[k])?;
                if k % 10 == 3 {
                    // Written, then refused: this one's row must not survive.
                    return Err(refused());
                }
                if k % 10 == 7 {
                    // A constraint violation inside the batch: the same key twice.
                    tx.execute("INSERT INTO t (k, v) VALUES (?1, 'again')", &[k])?;
                }
                Ok(k)
            }))
            .await,
        );
    }
    release.send(()).expect("the hold is waiting");
    held.await;
    let results = join_all(writes).await;
    let committed: Vec<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    assert_eq!(
        committed.len(),
        160,
        "every transaction but the refused ones"
    );
    assert!(committed.iter().all(|k| k % 10 != 3 && k % 10 != 7));
    assert_eq!(count(&db).await, 160);
    let refused_rows: i64 = db
        .call(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM t WHERE k % 10 IN (3, 7) OR v = 'again'",
                &[],
                |row| row.get(0),
            )
        })
        .await
        .expect("query");
    assert_eq!(refused_rows, 0, "nothing of a failed transaction is kept");
}

#[tokio::test]
async fn a_panic_inside_a_transaction_reaches_its_caller_and_spares_the_batch() {
    let (_dir, db) = open();
    let (held, release) = hold(&db).await;
    let panicking = queued(std::panic::AssertUnwindSafe(db.transaction(|tx| {
        tx.execute("INSERT INTO t (k, v) VALUES (1, 'x')", &[])?;
        panic!("a bug in a handler");
        #[allow(unreachable_code)]
        Ok::<_, SqlError>(())
    })))
    .await;
    let mut others = Vec::new();
    for k in 2..50_i64 {
        others.push(
            queued(
                db.transaction(move |tx| tx.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", &[k])),
            )
            .await,
        );
    }
    release.send(()).expect("the hold is waiting");
    held.await;
    let others = join_all(others).await;
    let panic = panicking
        .catch_unwind()
        .await
        .expect_err("the panic comes back to the caller");
    assert!(panic.downcast_ref::<&str>() == Some(&"a bug in a handler"));
    assert!(others.iter().all(Result::is_ok));
    assert_eq!(
        count(&db).await,
        48,
        "the batch without the panicking transaction"
    );
    // The database thread survived the panic.
    db.transaction(|tx| tx.execute("INSERT INTO t (k, v) VALUES (1, 'after')", &[]))
        .await
        .expect("still usable");
    assert_eq!(count(&db).await, 49);
}

/// How a test transaction ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Commit,
    Refuse,
    Panic,
}

/// Runs a batch of transactions that each insert their index and end as `ends` says; returns
/// how often each closure ran, after checking that each success was committed once and each
/// failure came back to its caller. `None` on Postgres, where each transaction commits on its
/// own (see `platform::db`): there every closure must have run once.
async fn batch_of(ends: &[End]) -> Option<Vec<usize>> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (_dir, db) = open();
    let runs: Arc<Vec<AtomicUsize>> = Arc::new(ends.iter().map(|_| AtomicUsize::new(0)).collect());
    let (held, release) = hold(&db).await;
    let mut writes = Vec::new();
    for (index, &end) in ends.iter().enumerate() {
        let runs = runs.clone();
        let k = i64::try_from(index).expect("small");
        writes.push(
            queued(std::panic::AssertUnwindSafe(db.transaction(move |tx| {
                runs[index].fetch_add(1, Ordering::SeqCst);
                tx.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", &[k])?;
                match end {
                    End::Commit => Ok(k),
                    End::Refuse => Err(refused()),
                    End::Panic => panic!("a bug in a handler"),
                }
            })))
            .await,
        );
    }
    release.send(()).expect("the hold is waiting");
    held.await;
    for (write, &end) in writes.into_iter().zip(ends) {
        let result = write.catch_unwind().await;
        match end {
            End::Commit => assert!(matches!(result, Ok(Ok(_))), "committed"),
            End::Refuse => assert!(matches!(result, Ok(Err(_))), "its own error"),
            End::Panic => assert!(result.is_err(), "the panic comes back"),
        }
    }
    let commits = ends.iter().filter(|&&end| end == End::Commit).count();
    assert_eq!(
        count(&db).await,
        i64::try_from(commits).expect("small"),
        "every success, once"
    );
    let runs: Vec<usize> = runs.iter().map(|n| n.load(Ordering::SeqCst)).collect();
    if db.dialect() == platform::sql::Dialect::Postgres {
        assert!(runs.iter().all(|&n| n == 1), "{runs:?}");
        return None;
    }
    Some(runs)
}

/// A batch runs its transactions without savepoints: when one fails, the batch is undone and
/// its transactions run again, each in a savepoint of its own, the failing one too (what it
/// failed on may have changed), then the rest of the batch, once. A closure that panicked is
/// not run again.
#[tokio::test]
async fn a_failure_in_a_batch_runs_the_others_again_and_commits_them_once() {
    use End::{Commit as C, Panic as P, Refuse as R};
    // The first pass stops at the refusal; the second runs 0–4 again, then the rest, where a
    // refusal and a panic are each undone alone.
    let Some(runs) = batch_of(&[C, C, C, C, R, C, R, C, P, C]).await else {
        return;
    };
    assert_eq!(runs, [2, 2, 2, 2, 2, 1, 1, 1, 1, 1]);
    // The first pass stops at the panic, which the second does not run again.
    assert_eq!(
        batch_of(&[C, C, P, C, R, C]).await,
        Some(vec![2, 2, 1, 1, 1, 1])
    );
    // A first transaction that fails is rolled back alone, nothing runs again.
    assert_eq!(batch_of(&[R, C, C]).await, Some(vec![1, 1, 1]));
}

#[tokio::test]
async fn a_lone_failing_transaction_is_rolled_back() {
    let (_dir, db) = open();
    let result = db
        .transaction(|tx| {
            tx.execute("INSERT INTO t (k, v) VALUES (1, 'x')", &[])?;
            Err::<(), _>(refused())
        })
        .await;
    assert!(result.is_err());
    assert_eq!(count(&db).await, 0);
}

#[tokio::test]
async fn a_commit_wakes_whoever_waits_for_one() {
    let (_dir, db) = open();
    let waiter = tokio::spawn({
        let db = db.clone();
        async move { db.committed().await }
    });
    db.transaction(|tx| tx.execute("INSERT INTO t (k, v) VALUES (1, 'x')", &[]))
        .await
        .expect("insert");
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken by the commit")
        .expect("waiter task");
}

#[tokio::test]
async fn a_call_that_leaves_a_transaction_open_does_not_block_later_writes() {
    // Open and working, and open and aborted by a failed statement (Postgres then refuses
    // everything until a rollback).
    for left_open in [
        "BEGIN; INSERT INTO t (k, v) VALUES (1000, 'forgotten');",
        "BEGIN; INSERT INTO t (k, v) VALUES (1000, 'forgotten'); SELECT 1/0;",
    ] {
        let (_dir, db) = open();
        let _ = db.call(move |conn| conn.execute_batch(left_open)).await;
        // More writes at once than a Postgres pool has connections, so that one of them runs
        // on the connection the call left behind.
        let writes = (0..16_i64).map(|k| {
            let db = db.clone();
            async move {
                db.transaction(move |tx| tx.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", &[k]))
                    .await
            }
        });
        for written in join_all(writes).await {
            written.expect("later writes still work");
        }
        assert_eq!(count(&db).await, 16, "the open transaction was rolled back");
    }
}

#[tokio::test]
async fn reads_see_what_was_committed_and_cannot_write() {
    let (_dir, db) = open();
    db.transaction(|tx| tx.execute("INSERT INTO t (k, v) VALUES (1, 'x')", &[]))
        .await
        .expect("insert");
    let seen: i64 = db
        .read(|conn| conn.query_row("SELECT COUNT(*) FROM t", &[], |row| row.get(0)))
        .await
        .expect("read");
    assert_eq!(seen, 1, "a read after a commit sees it");
    let written = db
        .read(|conn| conn.execute("INSERT INTO t (k, v) VALUES (2, 'x')", &[]))
        .await;
    assert!(written.is_err(), "the read connection is read-only");
    assert_eq!(count(&db).await, 1);
}

/// Postgres refuses every statement after a failed one until a rollback, and would turn the
/// `COMMIT` into a silent rollback; SQLite carries on. Either way a transaction that ignores a
/// failed statement keeps all of its other work or none of it, and never takes its batch down.
#[tokio::test]
async fn a_transaction_that_ignores_a_failed_statement_is_kept_whole_or_not_at_all() {
    let (_dir, db) = open();
    db.transaction(|tx| tx.execute("INSERT INTO t (k, v) VALUES (1, 'first')", &[]))
        .await
        .expect("insert");
    let (held, release) = hold(&db).await;
    let before =
        queued(db.transaction(|tx| tx.execute("INSERT INTO t (k, v) VALUES (2, 'x')", &[]))).await;
    let ignoring = queued(db.transaction(|tx| {
        tx.execute("INSERT INTO t (k, v) VALUES (3, 'x')", &[])?;
        let duplicate = tx.execute("INSERT INTO t (k, v) VALUES (1, 'again')", &[]);
        assert!(duplicate.is_err_and(|error| error.is_constraint()));
        // Whatever the database thinks of it, this closure carries on.
        let _ = tx.execute("INSERT INTO t (k, v) VALUES (4, 'x')", &[]);
        Ok::<_, SqlError>(())
    }))
    .await;
    let after =
        queued(db.transaction(|tx| tx.execute("INSERT INTO t (k, v) VALUES (5, 'x')", &[]))).await;
    release.send(()).expect("the hold is waiting");
    held.await;
    before.await.expect("the transaction before it commits");
    let ignoring = ignoring.await;
    after.await.expect("the transaction after it commits");
    let kept: i64 = db
        .read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM t WHERE k IN (3, 4)", &[], |row| {
                row.get(0)
            })
        })
        .await
        .expect("count");
    match ignoring {
        Ok(()) => assert_eq!(kept, 2, "kept whole"),
        Err(_) => assert_eq!(kept, 0, "not at all"),
    }
    assert_eq!(count(&db).await, 3 + kept);
}

/// A transaction that arrives while a batch runs joins it before its commit instead of waiting
/// for the next one. Seen from the reader: while the late transaction runs, the batch's first
/// transaction is not committed yet. On SQLite only, whatever `TEST_POSTGRES_URL` says:
/// Postgres commits each transaction on its own (see `writer::run`).
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_arriving_during_a_batch_joins_its_commit() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let target = platform::sql::DbTarget::Sqlite(dir.path().join("group_commit.db"));
    let db = Db::open(&target, &[TABLE]).expect("the database opens");
    let (first, first_running, go_first) = paused_insert(&db, 1);
    let first = tokio::spawn(queued(first).await);
    ran(first_running).await;
    let (late, late_running, go_late) = paused_insert(&db, 2);
    let late = tokio::spawn(queued(late).await);
    go_first.send(()).expect("the first transaction waits");
    ran(late_running).await;
    let seen: i64 = db
        .read(|conn| conn.query_row("SELECT COUNT(*) FROM t", &[], |row| row.get(0)))
        .await
        .expect("read");
    assert_eq!(
        seen, 0,
        "the first is not committed before the late one ran"
    );
    go_late.send(()).expect("the late transaction waits");
    first.await.expect("join").expect("the first commits");
    late.await.expect("join").expect("the late one commits");
    assert_eq!(count(&db).await, 2);
}

/// A transaction inserting `k` that reports on the returned receiver once it ran, then holds
/// the database thread, inside its batch, until the returned sender is used.
fn paused_insert(
    db: &Db,
    k: i64,
) -> (
    impl Future<Output = Result<(), SqlError>> + Send + 'static,
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
) {
    let (ran, running) = mpsc::channel();
    let (go, waits) = mpsc::channel::<()>();
    let db = db.clone();
    let transaction = async move {
        db.transaction(move |tx| {
            tx.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", &[k])?;
            ran.send(()).expect("the test waits");
            let _ = waits.recv();
            Ok::<_, SqlError>(())
        })
        .await
    };
    (transaction, running, go)
}

/// Waits (off the runtime's threads) until a [`paused_insert`] reports that it ran.
async fn ran(running: mpsc::Receiver<()>) {
    tokio::task::spawn_blocking(move || running.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("the transaction runs");
}

#[tokio::test]
async fn work_kept_for_after_the_commit_runs_in_the_caller_only_for_committed_transactions() {
    use std::sync::{Arc, Mutex};
    let (_dir, db) = open();
    /// Who ran each kept piece of work: the key and the thread's name.
    type Ran = Arc<Mutex<Vec<(i64, Option<String>)>>>;
    let ran: Ran = Arc::default();
    let (held, release) = hold(&db).await;
    let mut writes = Vec::new();
    for k in 0..20_i64 {
        let ran = ran.clone();
        writes.push(
            queued(db.transaction(move |tx| {
                tx.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", &[k])?;
                let ran = ran.clone();
                platform::db::after_commit(move || {
                    let thread = std::thread::current().name().map(str::to_owned);
                    ran.lock().expect("lock").push((k, thread));
                });
                if k % 4 == 1 {
                    // Undone: its kept work must not run (nor that of the runs of the others
                    // undone with it).
                    return Err(refused());
                }
                Ok(k)
            }))
            .await,
        );
    }
    assert!(
        ran.lock().expect("lock").is_empty(),
        "nothing runs before the commit"
    );
    release.send(()).expect("the hold is waiting");
    held.await;
    let results = join_all(writes).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 15);
    let ran = ran.lock().expect("lock").clone();
    let mut keys: Vec<i64> = ran.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    let expected: Vec<i64> = (0..20).filter(|k| k % 4 != 1).collect();
    assert_eq!(keys, expected, "once per committed transaction");
    assert!(
        ran.iter().all(|(_, thread)| !thread
            .as_deref()
            .is_some_and(|name| name.starts_with("db-"))),
        "kept work runs in the caller, not on the database thread: {ran:?}"
    );
}
