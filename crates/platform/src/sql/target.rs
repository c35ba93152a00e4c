//! Where a service's data is, as configured.

use std::fmt;
use std::path::PathBuf;

use super::{Access, Connection, Dialect, ErrorKind, Result, SqlError};

/// Where a service keeps its data: a SQLite file path, or a `postgres://` URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DbTarget {
    /// A SQLite database file (created if missing).
    Sqlite(PathBuf),
    /// A Postgres connection string (`postgres://user:password@host:port/database`).
    Postgres(String),
}

impl DbTarget {
    /// Reads a configuration value: `postgres://…` or `postgresql://…` is Postgres, `sqlite:`
    /// followed by a path or a bare path is SQLite.
    pub fn parse(value: &str) -> Self {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            DbTarget::Postgres(value.to_owned())
        } else {
            DbTarget::Sqlite(PathBuf::from(
                value.strip_prefix("sqlite:").unwrap_or(value),
            ))
        }
    }

    /// The dialect this target speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            DbTarget::Sqlite(_) => Dialect::Sqlite,
            DbTarget::Postgres(_) => Dialect::Postgres,
        }
    }
}

impl From<PathBuf> for DbTarget {
    fn from(path: PathBuf) -> Self {
        DbTarget::Sqlite(path)
    }
}

/// Shows the file or the URL without its password, for logs.
impl fmt::Display for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbTarget::Sqlite(path) => write!(f, "{}", path.display()),
            DbTarget::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbTarget({self})")
    }
}

/// `postgres://user:secret@host/db?password=secret` → `postgres://user:***@host/db?password=***`:
/// the password goes neither to logs nor to `Debug` output, wherever the URL carries it.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (base, query) = rest
        .split_once('?')
        .map_or((rest, None), |(base, query)| (base, Some(query)));
    let (authority, path) = base
        .split_once('/')
        .map_or((base, None), |(authority, path)| (authority, Some(path)));
    let authority = match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let mut redacted = format!("{scheme}://{authority}");
    if let Some(path) = path {
        redacted.push('/');
        redacted.push_str(path);
    }
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

/// Creates the empty database `name` on the Postgres server of `admin_url` and returns its
/// target (for tests and tools that want a database of their own).
///
/// Blocks: call it outside an async runtime (or from `spawn_blocking`).
pub fn create_postgres_database(admin_url: &str, name: &str) -> Result<DbTarget> {
    if !name
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    {
        return Err(SqlError::new(
            ErrorKind::Other,
            format!("database names are letters, digits and _, not {name:?}"),
        ));
    }
    let admin = Connection::open(&DbTarget::Postgres(admin_url.to_owned()), Access::ReadWrite)?;
    admin
        .conn()
        .execute_batch(&format!("CREATE DATABASE \"{name}\""))?;
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(base, query)| (base, Some(query)));
    let server = match base.rsplit_once('/') {
        Some((server, _)) if server.contains("://") && !server.ends_with('/') => server,
        _ => base,
    };
    // The admin URL's options (`sslmode=require`, …) hold for the new database too.
    Ok(DbTarget::Postgres(match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_the_url_has_them() {
        assert_eq!(
            redact("postgres://shop:s3cr@t@db:5432/orders?sslmode=require"),
            "postgres://shop:***@db:5432/orders?sslmode=require"
        );
        assert_eq!(
            redact("postgres://shop@db/orders?password=hunter2&sslmode=require"),
            "postgres://shop@db/orders?password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://db/orders"), "postgres://db/orders");
    }

    #[test]
    fn targets_parse_from_paths_and_urls() {
        assert_eq!(
            DbTarget::parse("data/a.db"),
            DbTarget::Sqlite("data/a.db".into())
        );
        assert_eq!(
            DbTarget::parse("sqlite:/tmp/a.db"),
            DbTarget::Sqlite("/tmp/a.db".into())
        );
        let url = "postgres://shop:secret@db:5432/orders";
        assert_eq!(DbTarget::parse(url), DbTarget::Postgres(url.to_owned()));
        assert_eq!(
            DbTarget::parse(url).to_string(),
            "postgres://shop:***@db:5432/orders"
        );
    }
}
