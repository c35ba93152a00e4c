//! Where a run keeps its data: a directory of its own, and a database per service in it (or
//! on a Postgres server).

use std::path::{Path, PathBuf};

use anyhow::Context;

use platform::config::Sensitive;

/// The data directory of a run: a temporary one is removed when this is dropped (also after a
/// failed start), unless it is to be kept.
#[derive(Debug)]
pub(super) enum DataDir {
    /// Given with `--data-dir`: the user's, never removed.
    Given(PathBuf),
    /// Created for this run.
    Temporary(tempfile::TempDir),
}

impl DataDir {
    /// The directory `given` (`--data-dir`, created if missing), or a new temporary one.
    pub(super) fn new(given: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(dir) = given {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the data directory {}", dir.display()))?;
            return Ok(Self::Given(dir.to_owned()));
        }
        // A random name, and only its owner may enter it: the databases hold every order.
        let mut builder = tempfile::Builder::new();
        builder.prefix("shop-");
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = builder
            .tempdir()
            .context("creating a temporary data directory")?;
        Ok(Self::Temporary(dir))
    }

    pub(super) fn path(&self) -> &Path {
        match self {
            Self::Given(dir) => dir,
            Self::Temporary(dir) => dir.path(),
        }
    }

    /// Keeps a temporary directory after exit (`--keep-data`).
    pub(super) fn keep(self) -> Self {
        match self {
            Self::Temporary(dir) => Self::Given(dir.keep()),
            given @ Self::Given(_) => given,
        }
    }
}

/// Where each service keeps its data for this run.
pub(super) enum Databases {
    /// `<dir>/<service>.db`.
    Sqlite(PathBuf),
    /// The server's URL without the database, and the run's prefix for database names.
    Postgres { server: String, prefix: String },
}

impl Databases {
    const SERVICES: [&str; 3] = ["order-api", "payment-svc", "inventory-svc"];

    /// Creates the run's Postgres databases, if it uses Postgres.
    pub(super) async fn create(
        postgres: Option<&Sensitive>,
        dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let Some(admin) = postgres.map(|url| url.expose().to_owned()) else {
            return Ok(Self::Sqlite(dir.to_owned()));
        };
        let prefix = format!("shop_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let names: Vec<String> = Self::SERVICES
            .iter()
            .map(|service| format!("{prefix}_{}", service.replace('-', "_")))
            .collect();
        // The Postgres client blocks: off the runtime's threads.
        let targets = tokio::task::spawn_blocking(move || {
            names
                .iter()
                .map(|name| platform::sql::create_postgres_database(&admin, name))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?
        .context("creating the databases on the Postgres server")?;
        let server = match targets.first() {
            Some(platform::sql::DbTarget::Postgres(url)) => url
                .rsplit_once('/')
                .map_or_else(|| url.clone(), |(server, _)| server.to_owned()),
            _ => anyhow::bail!("no database was created"),
        };
        Ok(Self::Postgres { server, prefix })
    }

    pub(super) fn target(&self, service: &str) -> Sensitive {
        match self {
            Self::Sqlite(dir) => {
                Sensitive::new(dir.join(format!("{service}.db")).display().to_string())
            }
            Self::Postgres { server, prefix } => {
                Sensitive::new(format!("{server}/{prefix}_{}", service.replace('-', "_")))
            }
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.display().to_string(),
            Self::Postgres { .. } => Self::SERVICES
                .iter()
                .map(|service| platform::sql::DbTarget::parse(self.target(service).expose()))
                .map(|target| target.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}
