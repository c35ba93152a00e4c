//! SQLite's WAL is checkpointed beside the writer: what was committed reaches the database file
//! without waiting for SQLite's own checkpoint at 1,000 pages, and the WAL still starts over
//! under constant writes and reads instead of growing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use platform::Db;
use platform::db::{DbSettings, Migration, Synchronous};
use platform::params;
use platform::sql::{DbTarget, SqlError};
use test_support::eventually_within;

const TABLE: Migration = Migration::new(
    "test/t/1",
    "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL);",
);

fn open(dir: &Path) -> (PathBuf, Db) {
    open_with(dir, &DbSettings::default())
}

fn open_with(dir: &Path, settings: &DbSettings) -> (PathBuf, Db) {
    let path = dir.join("checkpoint.db");
    let db = Db::open_with(&DbTarget::Sqlite(path.clone()), settings, &[TABLE])
        .expect("the database opens");
    (path, db)
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

/// Inserts `rows` rows of `bytes` bytes each, keys from `first`, in one transaction.
async fn insert(db: &Db, first: i64, rows: i64, bytes: usize) {
    db.transaction(move |tx| {
        for k in first..first + rows {
            tx.execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                params![k, "x".repeat(bytes)],
            )?;
        }
        Ok::<_, SqlError>(())
    })
    .await
    .expect("insert");
}

#[tokio::test(flavor = "multi_thread")]
async fn commits_reach_the_database_file_long_before_sqlite_would_checkpoint() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let (path, db) = open(dir.path());
    reaches_the_database_file(&path, &db).await;
}

/// `off` (`shopctl up`'s setting) is what the writer runs with, and the checkpoints, which
/// then sync nothing either, still copy the WAL into the database file.
#[tokio::test(flavor = "multi_thread")]
async fn with_syncs_off_the_checkpoints_still_copy_the_wal() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let settings = DbSettings {
        synchronous: Some(Synchronous::Off),
        ..DbSettings::default()
    };
    let (path, db) = open_with(dir.path(), &settings);
    let level = db
        .transaction(|tx| tx.query_row("PRAGMA synchronous", &[], |row| row.get::<i64>(0)))
        .await
        .expect("the pragma");
    assert_eq!(level, 0, "SQLite's OFF");
    reaches_the_database_file(&path, &db).await;
}

/// Commits ~100 pages, a tenth of what makes SQLite checkpoint in a commit, and waits for them
/// in the database file at `path`.
async fn reaches_the_database_file(path: &Path, db: &Db) {
    let before = size(path);
    for chunk in 0..10 {
        insert(db, chunk * 10, 10, 4_000).await;
    }
    let wanted = before + 90 * 4_096;
    eventually_within(Duration::from_secs(10), || {
        let now = size(path);
        std::future::ready(if now >= wanted {
            Ok(())
        } else {
            Err(format!(
                "the database file stayed at {now} bytes (from {before}); the rows are only in the WAL"
            ))
        })
    })
    .await
    .expect("the commits reach the database file");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wal_starts_over_under_constant_writes_and_reads() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let (path, db) = open(dir.path());
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                db.read(|conn| {
                    conn.query_row("SELECT MAX(k) FROM t", &[], |row| row.get::<Option<i64>>(0))
                })
                .await
                .expect("a read");
            }
        })
    };
    // ~10,000 pages in all (40 MB of WAL if it never started over), written at a steady pace
    // in rounds of concurrent transactions (group-committed) while the reader reads all along.
    // At this rate (tens of MB/s, far above a service's) the WAL holds more than SQLite's
    // 1,000 pages before each restart, but it must start over again and again; a WAL that
    // never did (a passive checkpoint alone, under constant writes) reaches the full 40 MB.
    let mut largest = 0;
    for round in 0..60 {
        join_all((0..60).map(|n| insert(&db, (round * 60 + n) * 3, 3, 3_000))).await;
        largest = largest.max(size(&wal));
        // Pacing, not waiting for an outcome: a service's load has gaps between batches.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    reader.await.expect("the reader");
    let rows = db
        .read(|conn| conn.query_row("SELECT COUNT(*) FROM t", &[], |row| row.get::<i64>(0)))
        .await
        .expect("count");
    assert_eq!(rows, 10_800);
    assert!(
        largest < 30 * 1024 * 1024,
        "the WAL grew to {largest} bytes: it did not start over"
    );
}
