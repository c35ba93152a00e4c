use std::net::SocketAddr;
use std::path::PathBuf;

use platform::PlatformError;
use platform::config::{KafkaConfig, env_parse};
use platform::sql::DbTarget;

/// inventory-svc's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `INVENTORY_SVC_ADDR`: health and readiness.
    pub http_addr: SocketAddr,
    /// `INVENTORY_SVC_DB` (else `DATABASE_URL`): a SQLite file path, or a `postgres://` URL —
    /// which several replicas may share.
    pub database: DbTarget,
    /// `CATALOG_PATH`: initial stock levels; the built-in catalog when unset.
    pub catalog_path: Option<PathBuf>,
    /// Broker settings; the consumer group is `inventory-svc`.
    pub kafka: KafkaConfig,
}

impl Config {
    /// The service name: Kafka client id and consumer group.
    pub const SERVICE: &'static str = "inventory-svc";

    /// Reads the environment.
    pub fn from_env() -> Result<Self, PlatformError> {
        Ok(Self {
            http_addr: env_parse(
                "INVENTORY_SVC_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8082)),
            )?,
            database: platform::config::env_database("INVENTORY_SVC_DB", "data/inventory-svc.db"),
            catalog_path: std::env::var_os("CATALOG_PATH")
                .filter(|path| !path.is_empty())
                .map(PathBuf::from),
            kafka: KafkaConfig::from_env(Self::SERVICE)?,
        })
    }
}
