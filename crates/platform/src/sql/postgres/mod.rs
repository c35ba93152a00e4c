//! The Postgres side of [`super::Conn`]: the synchronous `postgres` client (it blocks, like
//! rusqlite, so it lives on the same kind of database thread), a statement cache, and the
//! transaction state that Postgres does not report back.

mod values;

use std::collections::HashMap;
use std::error::Error as _;
use std::time::Duration;

use ::postgres::config::SslMode;
use ::postgres::{Client, Config, NoTls, Statement};

use super::dialect::placeholders;
use super::{Access, ErrorKind, Result, Row, RowInner, SqlError, Value, tls};

pub(super) use values::column;
use values::{binds, refs};

/// One connection and what it knows about its own state.
pub(super) struct Session {
    config: Config,
    access: Access,
    /// `None` once the connection is lost: the next statement outside a transaction reconnects.
    client: Option<Client>,
    /// Prepared statements by their SQL as the stores wrote it.
    statements: HashMap<String, Statement>,
    in_transaction: bool,
    /// A statement failed inside the transaction: Postgres refuses every further one until a
    /// rollback (to a savepoint), and would turn a `COMMIT` into a silent rollback.
    aborted: bool,
    /// Session settings (`SET …`) applied again on every new connection.
    settings: Vec<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access", &self.access)
            .field("connected", &self.client.is_some())
            .field("in_transaction", &self.in_transaction)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(super) fn connect(url: &str, access: Access) -> Result<Self> {
        let mut config: Config = url.parse().map_err(|error| {
            SqlError::new(
                ErrorKind::Other,
                format!(
                    "invalid Postgres URL {}: {error}",
                    super::target::redact(url)
                ),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name(env!("CARGO_PKG_NAME"));
        }
        // A connection whose peer vanished without a word (a partition, a dead host) is
        // noticed in about half a minute instead of the kernel's two hours: a lost connection
        // is then reconnected, and a listener catches up.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config
                .keepalives(true)
                .keepalives_idle(Duration::from_secs(15));
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(30));
        }
        let mut session = Self {
            config,
            access,
            client: None,
            statements: HashMap::new(),
            in_transaction: false,
            aborted: false,
            settings: Vec::new(),
        };
        session.client()?;
        Ok(session)
    }

    /// Runs a session setting now and again after every reconnect.
    pub(super) fn setting(&mut self, sql: &str) -> Result<()> {
        self.batch(sql)?;
        self.settings.push(sql.to_owned());
        Ok(())
    }

    /// The transaction died with its connection: everything it did is rolled back, and its
    /// owner must hear so.
    pub(super) fn lost(&self) -> bool {
        self.in_transaction && self.client.is_none()
    }

    pub(super) fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    pub(super) fn aborted(&self) -> bool {
        self.aborted
    }

    /// Whether a transaction is open, including one begun with `batch("BEGIN")`: the first
    /// statement of a transaction starts at the transaction's start, so a later one does not.
    /// Sent as one simple-protocol message, so that the answer concerns one statement.
    pub(super) fn left_open(&mut self) -> bool {
        if self.in_transaction {
            return true;
        }
        let Ok(client) = self.client() else {
            return false;
        };
        match client.simple_query("SELECT now() <> statement_timestamp()") {
            Ok(messages) => messages.iter().any(|message| {
                matches!(message, ::postgres::SimpleQueryMessage::Row(row) if row.get(0) == Some("t"))
            }),
            // Refused: an aborted transaction is open (25P02).
            Err(error) if error.as_db_error().is_some() => true,
            // A lost connection has no transaction any more.
            Err(_) => false,
        }
    }

    /// The connection, reconnecting if it was lost (only between transactions: a transaction
    /// dies with its connection, and its owner must hear so).
    fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            if self.in_transaction {
                return Err(SqlError::new(
                    ErrorKind::Unavailable,
                    "the connection was lost during the transaction",
                ));
            }
            let mut client = match self.config.get_ssl_mode() {
                SslMode::Require => self.config.connect(tls::connector()?)?,
                // `prefer` (the default) and `disable`: plain TCP, as a connection that would
                // accept any certificate protects against nothing but eavesdroppers.
                _ => self.config.connect(NoTls)?,
            };
            if self.access == Access::ReadOnly {
                client.batch_execute("SET default_transaction_read_only = on")?;
            }
            for setting in &self.settings {
                client.batch_execute(setting)?;
            }
            self.statements.clear();
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| SqlError::new(ErrorKind::Unavailable, "not connected"))
    }

    /// Notes a failure: a server-side error aborts the open transaction; a lost connection is
    /// dropped so that the next use reconnects.
    fn failed(&mut self, error: ::postgres::Error) -> SqlError {
        if self.in_transaction && (error.as_db_error().is_some() || error.is_closed()) {
            self.aborted = true;
        }
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        error.into()
    }

    /// Transaction control and savepoints, keeping track of where the transaction stands.
    pub(super) fn control(&mut self, sql: &str) -> Result<()> {
        if sql == "ROLLBACK" && self.client.as_ref().is_none_or(Client::is_closed) {
            // The connection, and with it the transaction, is gone: nothing left to undo.
            self.client = None;
            self.in_transaction = false;
            self.aborted = false;
            return Ok(());
        }
        let result = self.client()?.batch_execute(sql);
        match (sql, result) {
            ("BEGIN", Ok(())) => {
                self.in_transaction = true;
                self.aborted = false;
            }
            ("ROLLBACK", _) => {
                // Whatever the answer, the transaction is over (a lost connection ends it too).
                self.in_transaction = false;
                self.aborted = false;
            }
            (sql, Ok(())) if sql.starts_with("ROLLBACK TO") => self.aborted = false,
            (_, Ok(())) => {}
            (_, Err(error)) => return Err(self.failed(error)),
        }
        Ok(())
    }

    /// Commits, unless a statement failed since the last savepoint rollback: Postgres would
    /// answer that `COMMIT` with a rollback and no error.
    pub(super) fn commit(&mut self) -> Result<()> {
        if self.aborted {
            self.control("ROLLBACK")?;
            return Err(SqlError::new(
                ErrorKind::Transient,
                "the transaction was aborted by a failed statement and rolled back",
            ));
        }
        let result = self.client()?.batch_execute("COMMIT");
        self.in_transaction = false;
        self.aborted = false;
        result.map_err(|error| self.failed(error))
    }

    pub(super) fn batch(&mut self, sql: &str) -> Result<()> {
        let result = self.client()?.batch_execute(sql);
        result.map_err(|error| self.failed(error))
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        // Reconnects first if the connection was lost: the cache belongs to the old one.
        self.client()?;
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let translated = placeholders(sql);
        let prepared = self.client()?.prepare(&translated);
        let statement = prepared.map_err(|error| self.failed(error))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(super) fn execute(&mut self, sql: &str, values: &[Value<'_>]) -> Result<usize> {
        let statement = self.statement(sql)?;
        let binds = binds(values);
        let params = refs(&binds);
        let result = self.client()?.execute(&statement, &params);
        let changed = result.map_err(|error| self.failed(error))?;
        usize::try_from(changed)
            .map_err(|_| SqlError::new(ErrorKind::Conversion, "row count out of range"))
    }

    pub(super) fn query<T, F>(
        &mut self,
        sql: &str,
        values: &[Value<'_>],
        limit: Option<usize>,
        mut f: F,
    ) -> Result<Vec<Result<T>>>
    where
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        let statement = self.statement(sql)?;
        let binds = binds(values);
        let params = refs(&binds);
        let result = self.client()?.query(&statement, &params);
        let rows = result.map_err(|error| self.failed(error))?;
        Ok(rows
            .iter()
            .take(limit.unwrap_or(usize::MAX))
            .map(|row| f(&Row(RowInner::Postgres(row))))
            .collect())
    }
}

/// Calls `deliver` with the payload of every notification on `channel` (Postgres `LISTEN`),
/// from a connection of its own, until `deliver` or `wanted` says to stop. Blocks: run it on a
/// thread of its own.
///
/// `deliver(None)` means notifications may have been missed (the listener just connected, or
/// reconnected after losing its connection): whoever relies on them looks at the database.
pub(super) fn listen(
    url: &str,
    channel: &str,
    mut deliver: impl FnMut(Option<String>) -> bool,
    wanted: impl Fn() -> bool,
) {
    let mut backoff = Duration::from_millis(100);
    while wanted() {
        let listened = Session::connect(url, Access::ReadOnly).and_then(|mut session| {
            let client = session.client()?;
            client.batch_execute(&format!("LISTEN \"{channel}\""))?;
            Ok(session)
        });
        let mut session = match listened {
            Ok(session) => session,
            Err(error) => {
                tracing::warn!(%error, channel, "Cannot listen for notifications; retrying.");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if !deliver(None) {
            return;
        }
        let Some(client) = session.client.as_mut() else {
            continue;
        };
        loop {
            // A new iterator for each quiet spell: once its timer has run out, an iterator
            // answers `None` at once on every later call, and the loop would spin.
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(QUIET);
            let lost = loop {
                match ::postgres::fallible_iterator::FallibleIterator::next(&mut iter) {
                    Ok(Some(notification)) => {
                        if !deliver(Some(notification.payload().to_owned())) {
                            return;
                        }
                    }
                    Ok(None) => break None,
                    Err(error) => break Some(error),
                }
            };
            match lost {
                // Quiet for a while: still wanted?
                None if wanted() => {}
                None => return,
                Some(error) => {
                    tracing::warn!(%error, channel, "Lost the notification connection; reconnecting.");
                    break;
                }
            }
        }
    }
}

/// How long a listener waits for a notification before it asks whether it is still wanted.
const QUIET: Duration = Duration::from_millis(500);

impl From<::postgres::Error> for SqlError {
    fn from(error: ::postgres::Error) -> Self {
        let kind = if let Some(db) = error.as_db_error() {
            let code = db.code().code();
            match code {
                "40001" | "40P01" | "55P03" | "53300" => ErrorKind::Transient,
                // The server is shutting down, crashed or still starting: no retry helps
                // until it is back, and then the first one does.
                "57P01" | "57P02" | "57P03" => ErrorKind::Unavailable,
                "25006" => ErrorKind::ReadOnly,
                _ if code.starts_with("23") => ErrorKind::Constraint,
                _ if code.starts_with("08") => ErrorKind::Unavailable,
                _ => ErrorKind::Other,
            }
        } else if error.is_closed()
            || error
                .source()
                .is_some_and(|source| source.is::<std::io::Error>())
        {
            // A lost connection or a server that cannot be reached, as during a restart or a
            // failover: waited out like a full disk, so that an outage longer than a
            // consumer's retries dead-letters nothing.
            ErrorKind::Unavailable
        } else {
            ErrorKind::Other
        };
        let message = match (error.as_db_error(), error.source()) {
            (Some(db), _) => format!("{}: {}", db.code().code(), db.message()),
            // The cause says what went wrong ("error performing TLS handshake" alone does not).
            (None, Some(source)) => format!("{error}: {source}"),
            (None, None) => error.to_string(),
        };
        SqlError::new(kind, message)
    }
}
