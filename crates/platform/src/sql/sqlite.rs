//! The SQLite side of [`super::Conn`]: rusqlite with its statement cache.

use std::path::Path;

use rusqlite::config::DbConfig;
use rusqlite::types::{ToSqlOutput, ValueRef as Raw};
use rusqlite::{ErrorCode, OpenFlags};

use super::{Access, ErrorKind, Result, Row, RowInner, SqlError, Value, ValueRef};

/// Opens the file (a read-write connection creates it).
pub(super) fn open(path: &Path, access: Access) -> Result<rusqlite::Connection> {
    let conn = match access {
        Access::ReadWrite => {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|error| {
                    SqlError::new(
                        ErrorKind::Other,
                        format!("cannot create {}: {error}", dir.display()),
                    )
                })?;
            }
            rusqlite::Connection::open(path)?
        }
        Access::ReadOnly => rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?,
    };
    // Every handler's statements stay prepared.
    conn.set_prepared_statement_cache_capacity(128);
    // And stay compiled: plans come from the SQL text alone, never from the values bound to it
    // (the query planner stability guarantee). By default SQLite ties some plans to the bound
    // values and compiles the statement again whenever they change: `SELECT MAX(seq) … WHERE
    // order_id = ?1`, which every update of an order runs, was compiled anew each time — ~7 % of
    // order-api's writer thread, and parsing on its reader too. No statement of ours needs a
    // plan that depends on a value: the partial indexes serve literal conditions.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

pub(super) fn batch(conn: &rusqlite::Connection, sql: &str) -> Result<()> {
    Ok(conn.execute_batch(sql)?)
}

pub(super) fn cached(conn: &rusqlite::Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Binds a borrowed value without copying it.
struct Bind<'a>(ValueRef<'a>);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            ValueRef::Null => Raw::Null,
            ValueRef::Integer(int) => Raw::Integer(int),
            ValueRef::Real(real) => Raw::Real(real),
            ValueRef::Text(text) => Raw::Text(text.as_bytes()),
            ValueRef::Blob(bytes) => Raw::Blob(bytes),
        }))
    }
}

fn binds<'a>(values: &'a [Value<'_>]) -> Vec<Bind<'a>> {
    values.iter().map(|value| Bind(value.as_ref())).collect()
}

pub(super) fn execute(
    conn: &rusqlite::Connection,
    sql: &str,
    values: &[Value<'_>],
) -> Result<usize> {
    let binds = binds(values);
    Ok(conn
        .prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(binds.iter()))?)
}

pub(super) fn query<T, F>(
    conn: &rusqlite::Connection,
    sql: &str,
    values: &[Value<'_>],
    limit: Option<usize>,
    mut f: F,
) -> Result<Vec<Result<T>>>
where
    F: FnMut(&Row<'_>) -> Result<T>,
{
    let binds = binds(values);
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(binds.iter()))?;
    let mut out = Vec::new();
    while limit.is_none_or(|limit| out.len() < limit) {
        let Some(row) = rows.next()? else { break };
        out.push(f(&Row(RowInner::Sqlite(row))));
    }
    Ok(out)
}

pub(super) fn column<'r>(row: &'r rusqlite::Row<'r>, index: usize) -> Result<ValueRef<'r>> {
    Ok(match row.get_ref(index)? {
        Raw::Null => ValueRef::Null,
        Raw::Integer(int) => ValueRef::Integer(int),
        Raw::Real(real) => ValueRef::Real(real),
        Raw::Text(text) => ValueRef::Text(std::str::from_utf8(text).map_err(|error| {
            SqlError::new(ErrorKind::Conversion, format!("text is not UTF-8: {error}"))
        })?),
        Raw::Blob(bytes) => ValueRef::Blob(bytes),
    })
}

impl From<rusqlite::Error> for SqlError {
    fn from(error: rusqlite::Error) -> Self {
        let kind = match &error {
            rusqlite::Error::QueryReturnedNoRows => ErrorKind::NoRows,
            rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
                ErrorCode::ConstraintViolation => ErrorKind::Constraint,
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Transient,
                // A full disk (`ENOSPC`: SQLITE_FULL) or a write the file-size limit refused
                // (`EFBIG`: SQLITE_IOERR_WRITE and kin) passes once space is freed: SQLite
                // rolls the transaction back and the next one may succeed.
                ErrorCode::DiskFull | ErrorCode::SystemIoFailure => ErrorKind::Unavailable,
                ErrorCode::ReadOnly => ErrorKind::ReadOnly,
                _ => ErrorKind::Other,
            },
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::ToSqlConversionFailure(_) => ErrorKind::Conversion,
            _ => ErrorKind::Other,
        };
        SqlError::new(kind, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// An order's history, as order-api keeps it, with a few orders.
    const SCHEMA: &str = "
        CREATE TABLE history (order_id TEXT NOT NULL, seq INTEGER NOT NULL,
                              PRIMARY KEY (order_id, seq));
        INSERT INTO history VALUES ('ord_1', 1), ('ord_1', 2), ('ord_2', 1);";

    /// The next number of an order's history, as every update of an order reads it.
    const LAST_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM history WHERE order_id = ?1";

    /// How often SQLite compiled [`LAST_SEQ`] again over `runs` executions, each with a new
    /// value.
    fn recompilations(conn: &rusqlite::Connection, runs: u32) -> i32 {
        for run in 0..runs {
            let mut stmt = conn
                .prepare_cached(LAST_SEQ)
                .expect("the statement compiles");
            let last: i64 = stmt
                .query_row([format!("ord_{}", run % 3)], |row| row.get(0))
                .expect("the statement runs");
            assert!(last <= 2);
        }
        conn.prepare_cached(LAST_SEQ)
            .expect("the statement is cached")
            .get_status(StatementStatus::RePrepare)
    }

    /// A statement whose plan SQLite would tie to the value bound to it keeps its compiled form
    /// whatever the value: SQLite's default, as the unconfigured connection shows, compiles it
    /// again at every new value.
    #[test]
    fn a_statement_is_not_compiled_again_for_each_value() {
        let conn = open(Path::new(":memory:"), Access::ReadWrite).expect("the database opens");
        conn.execute_batch(SCHEMA).expect("the schema applies");
        assert_eq!(recompilations(&conn, 20), 0);

        let default = rusqlite::Connection::open_in_memory().expect("the database opens");
        default.execute_batch(SCHEMA).expect("the schema applies");
        assert!(recompilations(&default, 20) >= 10);
    }
}
