//! A service's own database: a SQLite file (WAL mode) or a Postgres database, migrated at
//! start-up.
//!
//! Database calls block, so they run on threads of their own, each owning one connection (see
//! [`writer`] and [`reader`]): one writer connection serialises a replica's writers, which is
//! what SQLite does anyway, and write transactions that wait together are committed together;
//! a second, read-only connection serves reads beside it. With SQLite, WAL lets other processes (tests,
//! `sqlite3`) read while the service writes. With Postgres, several replicas of a service share
//! one database; what only one of them may do at a time is guarded by a [`lease`]. The threads
//! take the jobs of HTTP requests before background work (see [`queue`]), and report how long
//! jobs wait for them (see [`stats`]).

mod backlog;
mod checkpoint;
mod deferred;
pub mod lease;
mod migrations;
mod names;
pub mod notify;
mod queue;
mod reader;
mod settings;
mod stats;
#[cfg(feature = "test-util")]
pub mod testing;
mod writer;

pub use deferred::after_commit;
pub use migrations::Migration;
pub use names::thread_prefix;
pub use queue::interactive;
#[cfg(test)]
pub(crate) use queue::is_interactive;
pub use settings::{DbSettings, Synchronous};
pub(crate) use stats::COMMIT_BUCKETS;
pub use stats::{COMMIT_TRANSACTIONS, CONNECTION_WAIT};

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use names::thread_name;
use writer::{Job, Write};

use crate::sql::{Access, Conn, Connection, DbTarget, Dialect, ErrorKind, SqlError};
use crate::{PlatformError, inbox, outbox};

/// Handle to a service's database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    /// The queues of the writer thread(s), each owning a connection.
    jobs: queue::Senders,
    /// The queues of the thread that owns a second, read-only connection: it reads the last
    /// committed state while the writer writes, so reads neither wait for nor split the
    /// writer's batches.
    reads: queue::Senders,
    /// Woken after every committed write, so the outbox relay publishes without polling delay.
    committed: Arc<Notify>,
    /// SQLite: keeps the WAL checkpointing thread running while the database is in use.
    _checkpoints: Option<mpsc::Sender<()>>,
    /// Where the data is, for logs and readiness.
    target: DbTarget,
    /// Rows waiting in the outbox, as last counted by the relay; read on the hot path to shed
    /// load before the backlog grows without bound.
    outbox_backlog: Arc<backlog::Backlog>,
    /// How long a [`lease`] taken on this database lasts without renewal.
    lease_ttl: Duration,
    /// The labels of its metrics.
    stats: stats::DbMetrics,
}

impl Db {
    /// Opens the database at `target` with the default [`DbSettings`] (see [`Db::open_with`]).
    pub fn open(target: &DbTarget, migrations: &[Migration]) -> Result<Self, PlatformError> {
        Self::open_with(target, &DbSettings::default(), migrations)
    }

    /// Opens (creating if needed) the database at `target` and applies the migrations it has
    /// not seen yet: the shared outbox, inbox and lease tables, then `migrations` (see
    /// [`Migration`]).
    pub fn open_with(
        target: &DbTarget,
        settings: &DbSettings,
        migrations: &[Migration],
    ) -> Result<Self, PlatformError> {
        let busy_timeout = settings.busy_timeout;
        let synchronous = settings.synchronous.unwrap_or_default();
        let mut all = vec![
            outbox::MIGRATION,
            inbox::MIGRATION,
            lease::MIGRATION,
            outbox::MIGRATION_SOURCE,
        ];
        all.extend_from_slice(migrations);
        let committed = Arc::new(Notify::new());
        let stats = stats::DbMetrics::new(&settings.service);
        // SQLite: one writer (it has one write lock anyway) that commits in batches, and one
        // reader. Postgres: `DB_POOL_SIZE` connections of each kind, each committing on its own
        // (see `writer::run`).
        let (writers, readers, batching) = match target.dialect() {
            Dialect::Sqlite => (1, 1, true),
            Dialect::Postgres => {
                let size = settings.pool_size.max(1);
                (size, size.div_ceil(2), false)
            }
        };
        let (jobs, write_queue) = queue::channel();
        let mut pending = Some(all);
        for n in 0..writers {
            let notify = Arc::clone(&committed);
            let stats = stats.clone();
            // The first connection migrates; the others open once the schema exists.
            let migrations = pending.take();
            spawn(
                &thread_name(&settings.thread_prefix, "write", n, writers),
                target,
                Access::ReadWrite,
                &write_queue,
                move |conn| {
                    // Migrations wait as long as it takes for the other replicas' (an advisory
                    // lock, on Postgres) and for the locks of running ones: the lock timeout of
                    // the service's own work applies only after them. SQLite needs its busy
                    // timeout (and WAL) for them.
                    if conn.dialect() == Dialect::Sqlite {
                        configure(conn, busy_timeout, synchronous)?;
                    }
                    if let Some(migrations) = migrations {
                        migrations::apply(conn, &migrations)?;
                    }
                    if conn.dialect() == Dialect::Postgres {
                        configure(conn, busy_timeout, synchronous)?;
                    }
                    Ok(move |conn, queue| writer::run(conn, queue, &notify, &stats, batching))
                },
            )?;
        }
        let (reads, read_queue) = queue::channel();
        for n in 0..readers {
            spawn(
                &thread_name(&settings.thread_prefix, "read", n, readers),
                target,
                Access::ReadOnly,
                &read_queue,
                move |conn| {
                    configure(conn, busy_timeout, synchronous)?;
                    Ok(reader::run)
                },
            )?;
        }
        let checkpoints = match target.dialect() {
            Dialect::Sqlite => checkpoint::start(
                target,
                settings.checkpoint_interval,
                thread_name(&settings.thread_prefix, "ckpt", 0, 1),
                synchronous,
            )?,
            Dialect::Postgres => None,
        };
        Ok(Self {
            jobs,
            reads,
            committed,
            _checkpoints: checkpoints,
            target: target.clone(),
            outbox_backlog: Arc::default(),
            lease_ttl: settings.lease_ttl,
            stats,
        })
    }

    /// How long a lease taken on this database lasts without renewal.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// Where the data is.
    pub fn target(&self) -> &DbTarget {
        &self.target
    }

    /// The dialect of the database, for the few statements that differ.
    pub fn dialect(&self) -> Dialect {
        self.target.dialect()
    }

    /// Runs `f` with the writer's connection, outside any transaction (work that needs no
    /// transaction or manages its own).
    pub async fn call<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
        F: FnOnce(&Conn<'_>) -> Result<T, E> + Send + 'static,
    {
        self.call_on(stats::Connection::Write, f).await
    }

    /// Runs `f` with the read-only connection: it sees everything committed before it starts
    /// (writes fail). For reads on the hot path — orders, histories, sweeps — so that they run
    /// beside the writer instead of queueing behind it.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
        F: FnOnce(&Conn<'_>) -> Result<T, E> + Send + 'static,
    {
        self.call_on(stats::Connection::Read, f).await
    }

    /// Runs `f` on a thread of `connection`, outside any batch.
    async fn call_on<T, E, F>(&self, connection: stats::Connection, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
        F: FnOnce(&Conn<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        // The database threads do not inherit the caller's span; carry it so that log lines
        // written there keep the handler's `order_id` and `correlation_id`.
        let span = tracing::Span::current();
        let (queued, interactive, stats) =
            (Instant::now(), queue::is_interactive(), self.stats.clone());
        let job = Job::Call(Box::new(move |conn: Conn<'_>| {
            stats.started(connection, interactive, queued);
            let _entered = span.enter();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&conn)));
            let _ = reply.send(result);
        }));
        let queue = match connection {
            stats::Connection::Write => &self.jobs,
            stats::Connection::Read => &self.reads,
        };
        Self::submit(queue, job, interactive, answer).await?
    }

    /// Runs `f` in a write transaction: committed if `f` returns `Ok`, rolled back otherwise.
    /// `Ok` comes back only once the changes are committed — possibly together with other
    /// transactions that were waiting at the same time, which `f` cannot observe (see
    /// [`writer`]). Wakes the outbox relay after a commit.
    ///
    /// `f` may run more than once: when another transaction of its batch fails, the batch is
    /// undone and run again (a panic is not run again). So what `f` does besides its database
    /// work must bear repeating; what should happen only once the changes are committed (a log
    /// line saying what was done, say) goes into [`after_commit`], which keeps the work of
    /// the last run only.
    ///
    /// On SQLite the transaction holds the write lock from its start (`BEGIN IMMEDIATE`), so it
    /// sees no concurrent writer. On Postgres it runs at `READ COMMITTED` beside the other
    /// replicas' transactions: a read that decides a write locks its rows (`SELECT … FOR
    /// UPDATE` where [`Conn::dialect`] is Postgres) or the write re-checks its condition
    /// (`UPDATE … WHERE status = …`), and constraints stay the last word.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
        F: FnMut(&Conn<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let (queued, interactive, stats) =
            (Instant::now(), queue::is_interactive(), self.stats.clone());
        let (mut f, mut queued) = (f, Some(queued));
        let f = move |tx: &Conn<'_>| {
            // The wait counts once, however often the transaction runs.
            if let Some(queued) = queued.take() {
                stats.started(stats::Connection::Write, interactive, queued);
            }
            f(tx)
        };
        let job = Job::Write(Box::new(Write::new(f, reply, tracing::Span::current())));
        let (result, kept) = Self::submit(&self.jobs, job, interactive, answer)
            .await
            .unwrap_or_else(|gone| (Err(E::from(gone)), Vec::new()));
        // What `f` kept for after the commit ([`after_commit`]) runs here, in the caller's task:
        // not on the writer thread, which every write of the service waits for.
        deferred::run(kept);
        result
    }

    /// Hands `job` to the thread behind `queue` (ahead of background work if `interactive`)
    /// and waits for its answer: `Err` if that thread has stopped.
    async fn submit<R>(
        queue: &queue::Senders,
        job: Job,
        interactive: bool,
        answer: oneshot::Receiver<std::thread::Result<R>>,
    ) -> Result<R, SqlError> {
        let gone = || SqlError::new(ErrorKind::Other, "the database thread has stopped");
        if queue.send(job, interactive).is_err() {
            return Err(gone());
        }
        match answer.await {
            Ok(Ok(result)) => Ok(result),
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
        self.outbox_backlog.rows()
    }

    /// Counts rows just committed to the outbox, until the relay's next exact count.
    pub fn note_enqueued(&self, rows: i64) {
        self.outbox_backlog.note(rows);
    }

    /// Taken before a count of the outbox begins (see [`Self::set_outbox_backlog`]).
    pub(crate) fn outbox_mark(&self) -> backlog::Mark {
        self.outbox_backlog.mark()
    }

    /// Stores a count of the outbox begun after `mark`; rows noted since are kept on top.
    pub(crate) fn set_outbox_backlog(&self, rows: i64, mark: backlog::Mark) {
        self.outbox_backlog.counted(rows, mark);
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.call(|conn| conn.query_row("SELECT 1", &[], |row| row.get::<i64>(0)))
            .await
            .is_ok()
    }
}

/// Starts the thread `name` that owns a connection to `target`: it connects and runs `init`
/// (whose error comes back here), then serves `queue` with the loop `init` gave.
///
/// The connection is made on its own thread because the Postgres client blocks on a runtime of
/// its own, which must not run inside the caller's async runtime.
fn spawn<I, L>(
    name: &str,
    target: &DbTarget,
    access: Access,
    queue: &queue::Queue,
    init: I,
) -> Result<(), PlatformError>
where
    I: FnOnce(&Connection) -> Result<L, PlatformError> + Send + 'static,
    L: FnOnce(Connection, queue::Queue) + Send + 'static,
{
    let (ready, started) = mpsc::channel();
    let target = target.clone();
    let queue = Arc::clone(queue);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let opened = Connection::open(&target, access)
                .map_err(PlatformError::from)
                .and_then(|conn| init(&conn).map(|serve| (conn, serve)));
            match opened {
                Ok((conn, serve)) => {
                    let _ = ready.send(Ok(()));
                    serve(conn, queue);
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                }
            }
        })?;
    started.recv().unwrap_or_else(|_| {
        Err(PlatformError::Database(SqlError::new(
            ErrorKind::Other,
            "the database thread ended while starting",
        )))
    })?;
    Ok(())
}

/// Per-connection settings.
fn configure(
    conn: &Connection,
    busy_timeout: Duration,
    synchronous: Synchronous,
) -> Result<(), PlatformError> {
    let Some(sqlite) = conn.sqlite() else {
        // Postgres: lock waits are bounded the same way as SQLite's busy timeout, on this
        // connection and on every one that replaces it.
        let millis = busy_timeout.as_millis();
        conn.session_setting(&format!("SET lock_timeout = {millis}"))?;
        return Ok(());
    };
    sqlite.busy_timeout(busy_timeout).map_err(SqlError::from)?;
    if sqlite
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(SqlError::from)?
    {
        return Ok(());
    }
    sqlite
        .pragma_update(None, "journal_mode", "WAL")
        .map_err(SqlError::from)?;
    // `DB_SYNCHRONOUS`: FULL (the default) syncs the WAL at every commit, so what a caller was
    // told is committed survives a power loss too — consumers store their Kafka offset and the
    // relay deletes its outbox row on that word. Group commit shares one sync among the
    // transactions of a batch. NORMAL syncs only at checkpoints and when the WAL starts over:
    // durable against process crashes, but a power loss can lose acknowledged work, which
    // nothing would redo. OFF never syncs: a power loss can also leave the database corrupt.
    sqlite
        .pragma_update(None, "synchronous", synchronous.pragma())
        .map_err(SqlError::from)?;
    sqlite
        .pragma_update(None, "foreign_keys", "ON")
        .map_err(SqlError::from)?;
    // When a transaction of a group-committed batch fails, the batch runs again with each
    // transaction in a savepoint, and SQLite keeps the pages a savepoint changes in a statement
    // journal to undo it with. In a temporary file
    // (the default) that is a write per page on top of the WAL's; memory is enough for a
    // batch, and the journal is of no use after a crash anyway.
    sqlite
        .pragma_update(None, "temp_store", "MEMORY")
        .map_err(SqlError::from)?;
    Ok(())
}
