use std::net::SocketAddr;
use std::path::PathBuf;

use platform::config::{Common, LogSettings, Sensitive};
use platform::sql::DbTarget;

/// inventory-svc's settings: each one an argument and an environment variable (`--help` lists
/// them).
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "inventory-svc",
    version,
    about = "The stock participant of the saga: reservations and releases",
    after_help = "Every setting is also read from the environment variable in brackets; an argument wins."
)]
pub struct Config {
    /// Where health, readiness and metrics are served.
    #[arg(
        long,
        env = "INVENTORY_SVC_ADDR",
        default_value = "127.0.0.1:8082",
        value_name = "ADDR"
    )]
    pub http_addr: SocketAddr,
    /// The database: a SQLite file path, or a `postgres://user:password@host:port/db` URL that
    /// several replicas may share.
    #[arg(long, env = "INVENTORY_SVC_DB", value_name = "PATH_OR_URL")]
    pub database: Option<Sensitive>,
    /// The database when `INVENTORY_SVC_DB` is unset (one service per container).
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "PATH_OR_URL",
        hide_env_values = true
    )]
    pub database_url: Option<Sensitive>,
    /// The catalog file whose stock levels seed an empty database; the built-in copy of
    /// `config/catalog.json` when unset.
    #[arg(long = "catalog", env = "CATALOG_PATH", value_name = "PATH")]
    pub catalog_path: Option<PathBuf>,
    /// Kafka, consumer, database and runtime settings.
    #[command(flatten)]
    pub common: Common,
    /// Logging.
    #[command(flatten)]
    pub log: LogSettings,
}

impl Config {
    /// The service name: Kafka client id and consumer group.
    pub const SERVICE: &'static str = "inventory-svc";

    /// Reads the arguments and the environment (`KAFKA_CLIENT_*` included); exits with a usage
    /// message on a bad setting, as `--help` and `--version` do.
    pub fn parse() -> Self {
        let mut config: Self = platform::config::parse();
        config.common = config.common.for_service(Self::SERVICE, std::env::vars());
        config
    }

    /// Where the data is: `INVENTORY_SVC_DB`, else `DATABASE_URL`, else `data/inventory-svc.db`.
    pub fn database_target(&self) -> DbTarget {
        platform::config::database_target(
            &self.database,
            &self.database_url,
            "data/inventory-svc.db",
        )
    }
}

#[cfg(test)]
mod command_line_tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Config::command().debug_assert();
    }
}
