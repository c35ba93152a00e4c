use std::net::SocketAddr;
use std::path::PathBuf;

use platform::PlatformError;
use platform::config::{KafkaConfig, env_or, env_parse};

/// inventory-svc's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `INVENTORY_SVC_ADDR`: health and readiness.
    pub http_addr: SocketAddr,
    /// `INVENTORY_SVC_DB`: the SQLite file.
    pub database_path: PathBuf,
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
            database_path: env_or("INVENTORY_SVC_DB", "data/inventory-svc.db").into(),
            catalog_path: std::env::var_os("CATALOG_PATH")
                .filter(|path| !path.is_empty())
                .map(PathBuf::from),
            kafka: KafkaConfig::from_env(Self::SERVICE)?,
        })
    }
}
