//! A database of its own for one test: what every crate's database tests share.

use std::path::PathBuf;

use super::{Access, Connection, DbTarget, ErrorKind, SqlError};

/// A fresh, empty database: a SQLite file in a new temporary folder, or — when
/// `TEST_POSTGRES_URL` names a Postgres server's admin database — a new database on that
/// server. Dropping it removes the folder or drops the database, so that test runs leave
/// nothing behind; `KEEP_TEST_DIR` keeps both (and prints where).
///
/// Blocks while it creates or drops a Postgres database, on a thread of its own (the Postgres
/// client must not run on an async runtime's thread), so async tests may use it too.
#[derive(Debug)]
pub struct ScratchDb {
    target: DbTarget,
    dir: PathBuf,
    /// The admin URL and the database's name, on Postgres.
    postgres: Option<(String, String)>,
}

impl ScratchDb {
    /// A new database whose name (or file name) starts with `prefix` (letters, digits, `_`).
    ///
    /// # Panics
    /// If the folder or the database cannot be created: a test cannot go on without it.
    pub fn new(prefix: &str) -> Self {
        #[allow(clippy::expect_used)]
        Self::try_new(prefix).expect("the test database is created")
    }

    /// Like [`ScratchDb::new`], for callers that report the failure themselves.
    pub fn try_new(prefix: &str) -> Result<Self, SqlError> {
        let unique = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(&unique);
        std::fs::create_dir_all(&dir).map_err(|error| {
            SqlError::new(
                ErrorKind::Other,
                format!("creating {}: {error}", dir.display()),
            )
        })?;
        let admin = std::env::var("TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.trim().is_empty());
        let Some(admin) = admin else {
            return Ok(Self {
                target: DbTarget::Sqlite(dir.join(format!("{prefix}.db"))),
                dir,
                postgres: None,
            });
        };
        let (url, name) = (admin.clone(), unique.clone());
        let target = std::thread::spawn(move || super::create_postgres_database(&url, &name))
            .join()
            .map_err(|_| SqlError::new(ErrorKind::Other, "the database thread panicked"))??;
        Ok(Self {
            target,
            dir,
            postgres: Some((admin, unique)),
        })
    }

    /// Where the database is; open it as often as the test needs replicas.
    pub fn target(&self) -> &DbTarget {
        &self.target
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DIR").is_some() {
            eprintln!("test database (kept): {}", self.target);
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let admin = Connection::open(&DbTarget::Postgres(admin), Access::ReadWrite)?;
            admin
                .conn()
                .execute_batch(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        })
        .join();
    }
}
