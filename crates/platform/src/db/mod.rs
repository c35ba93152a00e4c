//! A service's own SQLite database: one file, WAL mode, migrated at start-up.
//!
//! SQLite calls block, so they run on a thread of their own that owns the one connection (see
//! [`writer`]): one connection serialises writers, which is what SQLite does anyway, and write
//! transactions that wait together are committed together. WAL lets other processes (tests,
//! `sqlite3`) read while the service writes.

mod migrations;
mod writer;

pub use migrations::Migration;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction};
use tokio::sync::{Notify, oneshot};

use writer::{Job, Write};

use crate::{PlatformError, inbox, outbox};

/// Handle to a service's database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    /// The queue of the thread that owns the connection.
    jobs: Sender<Job>,
    /// The queue of the thread that owns a second, read-only connection: WAL lets it read the
    /// last committed state while the writer writes, so reads neither wait for nor split the
    /// writer's batches.
    reads: Sender<Job>,
    /// Woken after every committed write, so the outbox relay publishes without polling delay.
    committed: Arc<Notify>,
    /// Where the file is, for logs and readiness.
    path: PathBuf,
    /// Rows waiting in the outbox, as last counted by the relay; read on the hot path to shed
    /// load before the backlog grows without bound.
    outbox_backlog: Arc<AtomicI64>,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and applies the migrations it has not
    /// seen yet: the shared outbox and inbox tables, then `migrations` (see [`Migration`]).
    pub fn open(path: &Path, migrations: &[Migration]) -> Result<Self, PlatformError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut conn = Connection::open(path)?;
        // `DB_BUSY_TIMEOUT_MS`: how long a write waits for a lock before failing (the failure is
        // transient: handlers retry, then dead-letter).
        let busy_timeout = crate::config::env_millis("DB_BUSY_TIMEOUT_MS", Duration::from_secs(5))?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // `DB_SYNCHRONOUS`: FULL (the default) syncs the WAL at every commit, so what a caller was
        // told is committed survives a power loss too — consumers store their Kafka offset and
        // the relay deletes its outbox row on that word. Group commit shares one sync among the
        // transactions of a batch. NORMAL syncs only at checkpoints: durable against process
        // crashes, but a power loss can lose acknowledged work, which nothing would redo.
        conn.pragma_update(None, "synchronous", synchronous()?)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut all = vec![outbox::MIGRATION, inbox::MIGRATION];
        all.extend_from_slice(migrations);
        migrations::apply(&mut conn, &all)?;
        // Every handler's statements stay prepared.
        conn.set_prepared_statement_cache_capacity(128);
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(busy_timeout)?;
        reader.set_prepared_statement_cache_capacity(64);
        let (reads, read_queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-read".to_owned())
            .spawn(move || writer::run_reads(reader, read_queue))?;
        let (jobs, queue) = mpsc::channel();
        let committed = Arc::new(Notify::new());
        let notify = Arc::clone(&committed);
        std::thread::Builder::new()
            .name("sqlite".to_owned())
            .spawn(move || writer::run(conn, queue, notify))?;
        Ok(Self {
            jobs,
            reads,
            committed,
            path: path.to_owned(),
            outbox_backlog: Arc::new(AtomicI64::new(0)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection, outside any transaction (reads, or writes that need no
    /// transaction or manage their own).
    pub async fn call<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        Self::call_on(&self.jobs, f).await
    }

    /// Runs `f` with the read-only connection: it sees everything committed before it starts
    /// (writes fail). For reads on the hot path — orders, histories, sweeps — so that they run
    /// beside the writer instead of queueing behind it.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        Self::call_on(&self.reads, move |conn: &mut Connection| f(conn)).await
    }

    /// Runs `f` on the thread behind `queue`, outside any batch.
    async fn call_on<T, E, F>(queue: &Sender<Job>, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        // The database threads do not inherit the caller's span; carry it so that log lines
        // written there keep the handler's `order_id` and `correlation_id`.
        let span = tracing::Span::current();
        let job = Job::Call(Box::new(move |conn: &mut Connection| {
            let _entered = span.enter();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
            let _ = reply.send(result);
        }));
        Self::submit(queue, job, answer).await
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`): committed if `f` returns `Ok`,
    /// rolled back otherwise. `Ok` comes back only once the changes are committed — possibly
    /// together with other transactions that were waiting at the same time, which `f` cannot
    /// observe (see [`writer`]). Wakes the outbox relay after a commit.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job::Write(Box::new(Write {
            f,
            reply,
            span: tracing::Span::current(),
        }));
        Self::submit(&self.jobs, job, answer).await
    }

    async fn submit<T, E>(
        queue: &Sender<Job>,
        job: Job,
        answer: oneshot::Receiver<std::thread::Result<Result<T, E>>>,
    ) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        let gone = || {
            E::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE),
                Some("the database thread has stopped".to_owned()),
            ))
        };
        if queue.send(job).is_err() {
            return Err(gone());
        }
        match answer.await {
            Ok(Ok(result)) => result,
            // A panic inside `f` is the caller's panic (the database rolled its work back).
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(gone()),
        }
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
        self.call(|conn| {
            conn.prepare_cached("SELECT 1")?
                .query_row([], |row| row.get::<_, i64>(0))
        })
        .await
        .is_ok()
    }
}

/// The `DB_SYNCHRONOUS` setting: `full` (default) or `normal`.
fn synchronous() -> Result<&'static str, PlatformError> {
    let value = crate::config::env_or("DB_SYNCHRONOUS", "full");
    match value.to_ascii_lowercase().as_str() {
        "full" => Ok("FULL"),
        "normal" => Ok("NORMAL"),
        _ => Err(PlatformError::Config {
            name: "DB_SYNCHRONOUS".to_owned(),
            value,
            reason: "expected full or normal".to_owned(),
        }),
    }
}

/// The current time as stored in every table: RFC 3339 with microseconds, UTC, so text order is
/// time order.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
