//! A Postgres connection that dies (a server restart, a failover, `pg_terminate_backend`) is
//! replaced: the transaction that was on it fails, and the ones after it work, on every
//! connection of the pool.
//!
//! Needs Postgres: ignored by a plain `cargo test`, run by `scripts/test.sh` against a server
//! of its own; run by hand (`--ignored`) without `TEST_POSTGRES_URL` it fails, saying so.

use futures::future::join_all;
use platform::Db;
use platform::db::Migration;
use platform::sql::{Access, Connection, DbTarget, ErrorKind, ScratchDb, SqlError};

const TABLE: Migration = Migration::new(
    "test/t/1",
    "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL);",
);

/// Ends the server process behind connection `pid`, from a connection of its own.
fn terminate(admin: &str, pid: i64) -> Result<(), SqlError> {
    let admin = Connection::open(&DbTarget::Postgres(admin.to_owned()), Access::ReadWrite)?;
    admin
        .conn()
        .query_row("SELECT pg_terminate_backend(?1)::text", &[pid], |_| Ok(()))
}

async fn write(db: &Db, k: i64) -> Result<usize, SqlError> {
    db.transaction(move |tx| tx.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", &[k]))
        .await
}

/// The Postgres server's admin URL, or a failure saying how to get one.
fn require_postgres() -> String {
    let url = std::env::var("TEST_POSTGRES_URL").unwrap_or_default();
    assert!(
        !url.trim().is_empty(),
        "this test needs Postgres: set TEST_POSTGRES_URL to a server's admin database \
         (postgres://postgres:…@127.0.0.1:5432/postgres), or run scripts/test.sh, which starts \
         a throwaway server and runs it"
    );
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres (TEST_POSTGRES_URL): scripts/test.sh runs it"]
async fn a_connection_killed_in_a_transaction_or_between_reads_is_replaced() {
    let admin = require_postgres();
    let scratch = ScratchDb::new("reconnect");
    let db = Db::open(scratch.target(), &[TABLE]).expect("the database opens");

    // A transaction whose connection dies half-way fails, and leaves nothing behind.
    let url = admin.clone();
    let died = db
        .transaction(move |tx| {
            tx.execute("INSERT INTO t (k, v) VALUES (0, 'lost')", &[])?;
            let pid: i64 = tx.query_row("SELECT pg_backend_pid()", &[], |row| row.get(0))?;
            let url = url.clone();
            std::thread::spawn(move || terminate(&url, pid))
                .join()
                .expect("the thread ends")?;
            tx.execute("INSERT INTO t (k, v) VALUES (-1, 'lost')", &[])
        })
        .await;
    // It fails as a database that is not there, which a consumer waits out instead of
    // spending the message's attempts on it.
    assert_eq!(
        died.err().map(|error| error.kind()),
        Some(ErrorKind::Unavailable),
        "a transaction on a dead connection fails, the database unavailable"
    );

    // Then every writer connection works again, the replaced one included: more writes at
    // once than the pool has connections.
    let writes = join_all((1..=16).map(|k| write(&db, k))).await;
    for written in writes {
        written.expect("writes work after the loss");
    }

    // A read connection killed between reads: at most the next read fails, then it is back.
    let pid: i64 = db
        .read(|conn| conn.query_row("SELECT pg_backend_pid()", &[], |row| row.get(0)))
        .await
        .expect("a read");
    let url = admin.clone();
    tokio::task::spawn_blocking(move || terminate(&url, pid))
        .await
        .expect("the task ends")
        .expect("terminated");
    let mut counted = None;
    for _ in 0..3 {
        if let Ok(n) = db
            .read(|conn| conn.query_row("SELECT COUNT(*) FROM t", &[], |row| row.get::<i64>(0)))
            .await
        {
            counted = Some(n);
            break;
        }
    }
    assert_eq!(
        counted,
        Some(16),
        "reads work again, and the lost rows are not there"
    );
}
