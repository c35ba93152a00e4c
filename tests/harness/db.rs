//! The services' databases as the tests see them: SQLite files in the stack's directory, or —
//! with `TEST_POSTGRES_URL` — Postgres databases of the stack's own, created before the
//! services start and dropped after they stop.
//!
//! The Postgres client is synchronous and blocks on a runtime of its own, which panics on a
//! thread that already runs a tokio runtime (every `#[tokio::test]`). So every connection of the
//! harness is opened, used and closed on a plain thread of its own, never on the test's.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow, bail};
use platform::sql::{
    Access, Conn, Connection, DbTarget, Dialect, ErrorKind, Params, ScratchDb, Value,
};

use crate::ServiceKind;

/// The services with a database, and the variable each reads its database from.
const SERVICES: [(ServiceKind, &str); 3] = [
    (ServiceKind::OrderApi, "ORDER_API_DB"),
    (ServiceKind::Payment, "PAYMENT_SVC_DB"),
    (ServiceKind::Inventory, "INVENTORY_SVC_DB"),
];

/// The databases of one stack, with one connection each kept open for the tests' queries
/// (polling loops query every few milliseconds; a fresh Postgres connection per query would
/// cost a server process each time).
#[derive(Debug)]
pub(crate) struct Databases {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    kind: ServiceKind,
    /// The service's variable (`ORDER_API_DB`).
    var: &'static str,
    target: DbTarget,
    /// Opened on first use; only ever used and dropped on a thread without a runtime. Declared
    /// before `scratch`, so it is closed before the database is dropped.
    connection: Mutex<Option<Connection>>,
    /// The Postgres database the stack created, dropped with it (`KEEP_TEST_DIR` keeps it).
    _scratch: Option<ScratchDb>,
}

impl Databases {
    /// SQLite files in `dir`, or fresh Postgres databases if `TEST_POSTGRES_URL` is set.
    pub(crate) fn create(dir: &Path) -> Result<Self> {
        let postgres = std::env::var("TEST_POSTGRES_URL").is_ok_and(|url| !url.trim().is_empty());
        let mut databases = Self {
            entries: Vec::new(),
        };
        let stack_id = format!("{:016x}", rand::random::<u64>());
        for (kind, var) in SERVICES {
            let entry = if postgres {
                let service = var.strip_suffix("_DB").unwrap_or(var).to_lowercase();
                let name = format!("saga_{stack_id}_{service}");
                // On error the databases created so far are dropped with `databases`.
                let scratch = apart(|| {
                    ScratchDb::try_new(&name)
                        .with_context(|| format!("creating database {name} (TEST_POSTGRES_URL)"))
                })?;
                Entry::new(kind, var, scratch.target().clone(), Some(scratch))
            } else {
                let path = dir.join(format!("{}.db", var.to_lowercase()));
                Entry::new(kind, var, path.into(), None)
            };
            databases.entries.push(entry);
        }
        Ok(databases)
    }

    /// The `ORDER_API_DB=…`-style variable that gives `kind` its database.
    pub(crate) fn env(&self, kind: ServiceKind) -> Result<(String, String)> {
        let entry = self.entry(kind)?;
        let value = match &entry.target {
            DbTarget::Sqlite(path) => path.display().to_string(),
            DbTarget::Postgres(url) => url.clone(),
        };
        Ok((entry.var.to_owned(), value))
    }

    /// Where `kind` keeps its data.
    #[cfg(test)]
    fn target(&self, kind: ServiceKind) -> Result<&DbTarget> {
        Ok(&self.entry(kind)?.target)
    }

    /// Runs `f` with the stack's connection to `kind`'s database, on a thread of its own.
    pub(crate) fn with_db<T, F>(&self, kind: ServiceKind, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce(&Conn<'_>) -> Result<T> + Send,
    {
        let entry = self.entry(kind)?;
        apart(|| {
            let mut connection = entry
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let connection = match &mut *connection {
                Some(connection) => connection,
                empty => empty.insert(
                    Connection::open(&entry.target, Access::ReadWrite)
                        .with_context(|| format!("opening {}", entry.target))?,
                ),
            };
            f(&connection.conn())
        })
    }

    /// Takes `kind`'s database away from its service until the lock is released: see
    /// [`DbLock`].
    pub(crate) fn lock(&self, kind: ServiceKind) -> Result<DbLock> {
        let target = self.entry(kind)?.target.clone();
        let (ready, locked) = mpsc::channel::<Result<()>>();
        let (release, released) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || -> Result<()> {
            let connection = match Connection::open(&target, Access::ReadWrite) {
                Ok(connection) => connection,
                Err(error) => {
                    let _ = ready.send(Err(error.into()));
                    return Ok(());
                }
            };
            let conn = connection.conn();
            let outcome = take_write_lock(&conn);
            let held = outcome.is_ok();
            let _ = ready.send(outcome);
            if held {
                // Released, or the lock was dropped.
                let _ = released.recv();
                conn.execute_batch("ROLLBACK")?;
            }
            Ok(())
        });
        locked
            .recv()
            .map_err(|_| anyhow!("the thread holding the database lock ended"))?
            .with_context(|| format!("locking the database of {kind:?}"))?;
        Ok(DbLock {
            release: Some(release),
            holder: Some(holder),
        })
    }

    fn entry(&self, kind: ServiceKind) -> Result<&Entry> {
        match self.entries.iter().find(|entry| entry.kind == kind) {
            Some(entry) => Ok(entry),
            None => bail!("{kind:?} has no database"),
        }
    }
}

impl Entry {
    fn new(
        kind: ServiceKind,
        var: &'static str,
        target: DbTarget,
        scratch: Option<ScratchDb>,
    ) -> Self {
        Self {
            kind,
            var,
            target,
            connection: Mutex::new(None),
            _scratch: scratch,
        }
    }
}

/// Closes the connections and drops the stack's Postgres databases, off the runtime thread.
/// `Stack` declares its services before its databases, so they have stopped by now.
impl Drop for Databases {
    fn drop(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        let _ = std::thread::spawn(move || drop(entries)).join();
    }
}

/// A transaction that holds a service's database so that every write of the service fails
/// (transiently, after its `DB_BUSY_TIMEOUT_MS`) while reads go on: SQLite's write lock
/// (`BEGIN EXCLUSIVE`), or on Postgres `LOCK TABLE … IN EXCLUSIVE MODE` on every table of the
/// database — a lock that, like SQLite's in WAL mode, still admits plain reads, and that the
/// services' `lock_timeout` gives up on. Held by a thread of its own until [`DbLock::release`]
/// or drop.
#[derive(Debug)]
pub struct DbLock {
    release: Option<mpsc::Sender<()>>,
    holder: Option<JoinHandle<Result<()>>>,
}

impl DbLock {
    /// Rolls the holding transaction back: the service can write again.
    pub fn release(mut self) -> Result<()> {
        self.end()
    }

    fn end(&mut self) -> Result<()> {
        drop(self.release.take());
        match self.holder.take().map(JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

impl Drop for DbLock {
    fn drop(&mut self) {
        if let Err(error) = self.end() {
            eprintln!("releasing the database lock failed: {error}");
        }
    }
}

fn take_write_lock(conn: &Conn<'_>) -> Result<()> {
    match conn.dialect() {
        Dialect::Sqlite => conn.execute_batch("BEGIN EXCLUSIVE")?,
        Dialect::Postgres => {
            let tables: Vec<String> = conn.query_map(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() \
                 ORDER BY tablename",
                &[],
                |row| row.get(0),
            )?;
            if tables.is_empty() {
                bail!("the database has no tables to lock");
            }
            let tables: Vec<String> = tables.iter().map(|table| format!("\"{table}\"")).collect();
            let lock = format!("BEGIN; LOCK TABLE {} IN EXCLUSIVE MODE", tables.join(", "));
            // Taking several locks while a service writes may deadlock; Postgres then aborts
            // one side, which may be this one.
            for attempt in 1.. {
                match conn.execute_batch(&lock) {
                    Ok(()) => break,
                    Err(error) => {
                        let _ = conn.execute_batch("ROLLBACK");
                        if error.kind() != ErrorKind::Transient || attempt == 3 {
                            return Err(error.into());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Runs `f` on a thread of its own (see the module comment), passing its panics on.
fn apart<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(outcome) => outcome,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A statement's parameters, read on the caller's thread into plain values that may cross to
/// the database thread (the `&dyn ToValue` list of `platform::params!` may not).
pub(crate) struct Bound<'a>(pub(crate) Vec<Value<'a>>);

impl Params for Bound<'_> {
    fn values(&self) -> platform::sql::Result<Vec<Value<'_>>> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a service's writer does with a lock it meets: waits 20 ms, then fails.
    fn as_service(target: &DbTarget, sql: &str) -> Result<platform::sql::Result<usize>> {
        apart(|| {
            let connection = Connection::open(target, Access::ReadWrite)?;
            let conn = connection.conn();
            match conn.dialect() {
                Dialect::Sqlite => {
                    conn.query_row("PRAGMA busy_timeout = 20", &[], |row| row.get::<i64>(0))?;
                }
                Dialect::Postgres => conn.execute_batch("SET lock_timeout = 20")?,
            }
            Ok(conn.execute(sql, &[]))
        })
    }

    /// The premise of the dead-letter test, on whichever database `TEST_POSTGRES_URL` selects:
    /// the lock fails the service's writes as transient errors, lets its reads through, and
    /// lets writes through again once released. Runs on a tokio runtime, as the tests do.
    #[tokio::test]
    async fn a_held_lock_fails_writes_transiently_until_released() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let databases = Databases::create(dir.path())?;
        let kind = ServiceKind::Inventory;
        databases.with_db(kind, |conn| {
            if conn.dialect() == Dialect::Sqlite {
                // As the services open their files.
                conn.query_row("PRAGMA journal_mode = WAL", &[], |row| row.get::<String>(0))?;
            }
            conn.execute_batch(
                "CREATE TABLE stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL)",
            )?;
            conn.execute(
                "INSERT INTO stock (sku, available) VALUES (?1, ?2)",
                platform::params!["A", 5],
            )?;
            Ok(())
        })?;
        let target = databases.target(kind)?.clone();
        let update = "UPDATE stock SET available = available - 1";

        let lock = databases.lock(kind)?;
        let refused = as_service(&target, update)?.expect_err("the write waits out the lock");
        assert_eq!(refused.kind(), ErrorKind::Transient, "{refused}");
        // What the dead-letter test finds in the dead letter's headers.
        assert!(refused.to_string().contains("lock"), "{refused}");
        let read = "SELECT available FROM stock WHERE sku = ?1";
        assert_eq!(
            databases.with_db(kind, |conn| Ok(
                conn.query_row(read, &["A"], |row| row.get::<i64>(0))?
            ))?,
            5
        );
        lock.release()?;

        assert_eq!(as_service(&target, update)??, 1);
        let left = databases.with_db(kind, |conn| {
            Ok(conn.query_row(read, &["A"], |row| row.get::<i64>(0))?)
        })?;
        assert_eq!(left, 4);
        Ok(())
    }
}
