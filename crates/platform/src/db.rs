//! A service's own SQLite database: one file, WAL mode, migrated at start-up.
//!
//! SQLite calls block, so every call runs on tokio's blocking pool. One connection serialises
//! writers, which is what SQLite does anyway; WAL lets other processes (tests, `sqlite3`) read
//! while the service writes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::Notify;

use crate::{PlatformError, inbox, outbox};

/// Handle to a service's database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    /// The connection. A std mutex, because it is only locked inside blocking tasks.
    conn: Arc<Mutex<Connection>>,
    /// Woken after every committed write, so the outbox relay publishes without polling delay.
    committed: Arc<Notify>,
    /// Where the file is, for logs and readiness.
    path: PathBuf,
    /// Rows waiting in the outbox, as last counted by the relay; read on the hot path to shed
    /// load before the backlog grows without bound.
    outbox_backlog: Arc<AtomicI64>,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and applies the shared outbox and inbox
    /// tables plus `migrations`, each an idempotent SQL batch (`CREATE TABLE IF NOT EXISTS` …).
    pub fn open(path: &Path, migrations: &[&str]) -> Result<Self, PlatformError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        // `DB_BUSY_TIMEOUT_MS`: how long a write waits for a lock before failing (the failure is
        // transient: handlers retry, then dead-letter).
        conn.busy_timeout(crate::config::env_millis(
            "DB_BUSY_TIMEOUT_MS",
            Duration::from_secs(5),
        )?)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL is durable against process crashes in WAL mode (the case we test); a power loss
        // can lose the last transactions, which the outbox and inbox then redo or re-receive.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(outbox::MIGRATION)?;
        conn.execute_batch(inbox::MIGRATION)?;
        for migration in migrations {
            conn.execute_batch(migration)?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            committed: Arc::new(Notify::new()),
            path: path.to_owned(),
            outbox_backlog: Arc::new(AtomicI64::new(0)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool (reads, or writes that need no
    /// transaction).
    pub async fn call<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        // Blocking tasks do not inherit the caller's span; carry it so that log lines written
        // inside a transaction keep the handler's `order_id` and `correlation_id`.
        let span = tracing::Span::current();
        let result = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            // A panic while holding the lock leaves SQLite consistent (its transaction rolls
            // back), so a poisoned lock is safe to take over.
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await;
        match result {
            Ok(result) => result,
            Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
        }
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`): committed if `f` returns `Ok`,
    /// rolled back otherwise. Wakes the outbox relay after a commit.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let result = self
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            })
            .await;
        if result.is_ok() {
            self.committed.notify_one();
        }
        result
    }

    /// Resolves after the next committed write transaction (or immediately if one committed
    /// since the last call).
    pub async fn committed(&self) {
        self.committed.notified().await;
    }

    /// Rows waiting in the outbox, as last counted by the relay (cheap: no query).
    pub fn outbox_backlog(&self) -> i64 {
        self.outbox_backlog.load(Ordering::Relaxed)
    }

    /// Counts rows just committed to the outbox, until the relay's next exact count.
    pub fn note_enqueued(&self, rows: i64) {
        self.outbox_backlog.fetch_add(rows, Ordering::Relaxed);
    }

    pub(crate) fn set_outbox_backlog(&self, rows: i64) {
        self.outbox_backlog.store(rows, Ordering::Relaxed);
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.call(|conn| conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)))
            .await
            .is_ok()
    }
}

/// The current time as stored in every table: RFC 3339 with microseconds, UTC, so text order is
/// time order.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
