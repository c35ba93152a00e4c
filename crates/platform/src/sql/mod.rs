//! One small SQL interface over the two databases a service can use: an embedded SQLite file
//! (the default: nothing to install) and Postgres (for production, and for several replicas of
//! a service sharing one database).
//!
//! Stores are written once, against [`Conn`]: `execute`, `query_row` and `query_map` with `?1`
//! placeholders (rewritten to `$1` for Postgres) and [`params!`](crate::params). Statements are
//! prepared once per connection and cached. The SQL the stores use is the common dialect —
//! `ON CONFLICT`, `RETURNING`, text timestamps — and the few differences are named by
//! [`Dialect`]. Schemas are written once too; [`translate_ddl`] maps SQLite's type names onto
//! Postgres'.

mod dialect;
mod postgres;
#[cfg(feature = "test-util")]
mod scratch;
mod sqlite;
mod target;
mod tls;
mod types;
mod value;

use std::cell::RefCell;
use std::fmt;

use chrono::{DateTime, Utc};

pub use dialect::{Dialect, translate_ddl};
#[cfg(feature = "test-util")]
pub use scratch::ScratchDb;
pub use target::{DbTarget, create_postgres_database};
pub use value::{FromValue, Params, ToValue, Value, ValueRef};

/// What a database call fails with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    kind: ErrorKind,
    message: String,
}

/// The kinds of [`SqlError`] callers act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `query_row` found no row (see [`OptionalExtension::optional`]).
    NoRows,
    /// A uniqueness, check or foreign-key constraint refused the write.
    Constraint,
    /// Locks, serialization conflicts, deadlocks: trying again may work.
    Transient,
    /// The database cannot store anything now (a full disk, a write the file-size limit
    /// refused, an I/O error, a Postgres server gone or unreachable): nothing a caller does
    /// helps, every write fails alike until the condition passes — then the next one may
    /// succeed.
    Unavailable,
    /// A value could not be bound or read as the type asked for.
    Conversion,
    /// A write reached a read-only connection.
    ReadOnly,
    /// Anything else (bad SQL, a misused connection).
    Other,
}

impl SqlError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether a constraint refused the write.
    pub fn is_constraint(&self) -> bool {
        self.kind == ErrorKind::Constraint
    }
}

/// The result of a database call.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// Turns "no row" into `None`.
pub trait OptionalExtension<T> {
    /// `Ok(None)` where the query found no row; other errors stay errors.
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.kind == ErrorKind::NoRows => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Calls `deliver` with every notification on `channel` of the Postgres database `url` (see
/// [`crate::db::notify`]); blocks until `deliver` or `wanted` says to stop.
pub(crate) fn listen(
    url: &str,
    channel: &str,
    deliver: impl FnMut(Option<String>) -> bool,
    wanted: impl Fn() -> bool,
) {
    postgres::listen(url, channel, deliver, wanted);
}

/// An open connection, owned by the thread that uses it.
#[derive(Debug)]
pub struct Connection {
    inner: Owned,
}

#[derive(Debug)]
enum Owned {
    Sqlite(rusqlite::Connection),
    // Boxed: a session with its statement cache is much larger than a SQLite handle.
    Postgres(Box<RefCell<postgres::Session>>),
}

/// How a connection is used: the services' writers, readers, or a tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads and writes.
    ReadWrite,
    /// Reads only: writes fail.
    ReadOnly,
}

impl Connection {
    /// Connects to `target` (creating a SQLite file if it is missing).
    pub fn open(target: &DbTarget, access: Access) -> Result<Self> {
        let inner = match target {
            DbTarget::Sqlite(path) => Owned::Sqlite(sqlite::open(path, access)?),
            DbTarget::Postgres(url) => Owned::Postgres(Box::new(RefCell::new(
                postgres::Session::connect(url, access)?,
            ))),
        };
        Ok(Self { inner })
    }

    /// The connection's statements, with the time they run at: the database thread takes one
    /// per transaction, so every row a transaction writes carries the same [`Conn::now`].
    pub fn conn(&self) -> Conn<'_> {
        let inner = match &self.inner {
            Owned::Sqlite(conn) => Inner::Sqlite(conn),
            Owned::Postgres(session) => Inner::Postgres(session),
        };
        Conn {
            inner,
            now: crate::time::now(),
        }
    }

    /// The dialect this connection speaks.
    pub fn dialect(&self) -> Dialect {
        self.conn().dialect()
    }

    /// The SQLite connection, for SQLite-only settings.
    pub(crate) fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Owned::Sqlite(conn) => Some(conn),
            Owned::Postgres(_) => None,
        }
    }

    /// Starts a write transaction (SQLite: `BEGIN IMMEDIATE`, taking the write lock at once).
    pub(crate) fn begin(&self) -> Result<()> {
        match &self.inner {
            Owned::Sqlite(conn) => sqlite::cached(conn, "BEGIN IMMEDIATE"),
            Owned::Postgres(session) => session.borrow_mut().control("BEGIN"),
        }
    }

    /// Ends the transaction, keeping its changes.
    pub(crate) fn commit(&self) -> Result<()> {
        match &self.inner {
            Owned::Sqlite(conn) => sqlite::cached(conn, "COMMIT"),
            Owned::Postgres(session) => session.borrow_mut().commit(),
        }
    }

    /// Ends the transaction, undoing its changes.
    pub(crate) fn rollback(&self) -> Result<()> {
        match &self.inner {
            Owned::Sqlite(conn) => sqlite::cached(conn, "ROLLBACK"),
            Owned::Postgres(session) => session.borrow_mut().control("ROLLBACK"),
        }
    }

    /// Runs one of the fixed statements of the batch protocol (`SAVEPOINT job`, …).
    pub(crate) fn control(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Owned::Sqlite(conn) => sqlite::cached(conn, sql),
            Owned::Postgres(session) => session.borrow_mut().control(sql),
        }
    }

    /// Runs a session setting (`SET …`) that must hold on every connection, including the new
    /// one after a reconnect (Postgres; SQLite has no reconnects).
    pub(crate) fn session_setting(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Owned::Sqlite(conn) => sqlite::batch(conn, sql),
            Owned::Postgres(session) => session.borrow_mut().setting(sql),
        }
    }

    /// Whether a transaction is open (a call that began one and did not end it leaves it so).
    pub(crate) fn in_transaction(&self) -> bool {
        match &self.inner {
            Owned::Sqlite(conn) => !conn.is_autocommit(),
            Owned::Postgres(session) => session.borrow().in_transaction(),
        }
    }

    /// Whether a call left a transaction open, including one it began itself with
    /// `execute_batch("BEGIN …")`, which Postgres does not report: it is asked (one query).
    pub(crate) fn left_open(&self) -> bool {
        match &self.inner {
            Owned::Sqlite(conn) => !conn.is_autocommit(),
            Owned::Postgres(session) => session.borrow_mut().left_open(),
        }
    }

    /// Whether the open transaction can no longer do anything but roll back (to a savepoint).
    ///
    /// SQLite undoes the whole transaction on I/O errors and the like, and leaves it after a
    /// failed statement; Postgres keeps it but refuses every statement after a failed one until
    /// it is rolled back to a savepoint — the work a caller did after a failure it ignored is
    /// then lost, and the caller must hear so.
    pub(crate) fn poisoned(&self) -> Poisoned {
        match &self.inner {
            Owned::Sqlite(conn) if conn.is_autocommit() => Poisoned::Lost,
            Owned::Sqlite(_) => Poisoned::No,
            Owned::Postgres(session) if session.borrow().lost() => Poisoned::Lost,
            Owned::Postgres(session) if session.borrow().aborted() => Poisoned::SinceSavepoint,
            Owned::Postgres(_) => Poisoned::No,
        }
    }
}

/// See [`Connection::poisoned`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Poisoned {
    /// The transaction works.
    No,
    /// The database rolled the whole transaction back.
    Lost,
    /// Statements fail until a rollback to the last savepoint.
    SinceSavepoint,
}

/// The statements of a [`Connection`]: what stores are written against.
#[derive(Clone, Copy)]
pub struct Conn<'c> {
    inner: Inner<'c>,
    now: DateTime<Utc>,
}

#[derive(Clone, Copy)]
enum Inner<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres(&'c RefCell<postgres::Session>),
}

impl fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Conn({:?})", self.dialect())
    }
}

impl<'c> Conn<'c> {
    /// The time of this transaction: taken once when it began, so that the rows it writes agree
    /// (an order's `updated_at` and its timeline entry, an outbox row and its inbox mark).
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The dialect, for the few statements that differ.
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Sqlite(_) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute<P: Params + ?Sized>(&self, sql: &str, params: &P) -> Result<usize> {
        let values = params.values()?;
        match self.inner {
            Inner::Sqlite(conn) => sqlite::execute(conn, sql, &values),
            Inner::Postgres(session) => session.borrow_mut().execute(sql, &values),
        }
    }

    /// Runs a query and reads its first row with `f`; [`ErrorKind::NoRows`] if it has none.
    pub fn query_row<T, P, F>(&self, sql: &str, params: &P, f: F) -> Result<T>
    where
        P: Params + ?Sized,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        let mut f = Some(f);
        let mut rows = self.query_map_limit(sql, params, Some(1), |row| {
            f.take().map_or_else(
                || Err(SqlError::new(ErrorKind::Other, "row read twice")),
                |f| f(row),
            )
        })?;
        rows.pop().unwrap_or_else(|| {
            Err(SqlError::new(
                ErrorKind::NoRows,
                "the query returned no row",
            ))
        })
    }

    /// Runs a query and reads every row with `f`.
    pub fn query_map<T, P, F>(&self, sql: &str, params: &P, f: F) -> Result<Vec<T>>
    where
        P: Params + ?Sized,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        self.query_map_limit(sql, params, None, f)?
            .into_iter()
            .collect()
    }

    fn query_map_limit<T, P, F>(
        &self,
        sql: &str,
        params: &P,
        limit: Option<usize>,
        f: F,
    ) -> Result<Vec<Result<T>>>
    where
        P: Params + ?Sized,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        let values = params.values()?;
        match self.inner {
            Inner::Sqlite(conn) => sqlite::query(conn, sql, &values, limit, f),
            Inner::Postgres(session) => session.borrow_mut().query(sql, &values, limit, f),
        }
    }

    /// Runs several statements without parameters (schemas, test set-ups).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self.inner {
            Inner::Sqlite(conn) => sqlite::batch(conn, sql),
            Inner::Postgres(session) => session.borrow_mut().batch(sql),
        }
    }
}

/// One row of a query's result.
pub struct Row<'r>(RowInner<'r>);

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r ::postgres::Row),
}

impl fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Row")
    }
}

impl Row<'_> {
    /// Column `index` (from 0) as a `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = match &self.0 {
            RowInner::Sqlite(row) => sqlite::column(row, index),
            RowInner::Postgres(row) => return postgres::column(row, index),
        }?;
        T::from_value(value).map_err(|error| in_column(error, index))
    }
}

fn in_column(error: SqlError, index: usize) -> SqlError {
    SqlError::new(error.kind, format!("column {index}: {}", error.message))
}
