use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use platform::PlatformError;
use platform::config::{KafkaConfig, env_millis, env_or, env_parse};

/// order-api's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `ORDER_API_ADDR`: where the HTTP API listens (loopback by default).
    pub http_addr: SocketAddr,
    /// `ORDER_API_DB`: the SQLite file.
    pub database_path: PathBuf,
    /// `CATALOG_PATH`: the catalog file; the built-in catalog when unset.
    pub catalog_path: Option<PathBuf>,
    /// `SSE_KEEP_ALIVE_MS`: keep-alive comment interval of idle SSE streams.
    pub sse_keep_alive: Duration,
    /// `SAGA_TIMEOUT_MS`: an order not `confirmed` or `cancelled` by then is cancelled with
    /// reason `timeout` and compensated.
    pub saga_timeout: Duration,
    /// `SAGA_REAPER_INTERVAL_MS`: how often to look for overdue sagas.
    pub reaper_interval: Duration,
    /// `OUTBOX_BACKLOG_LIMIT`: unpublished events beyond which `POST /api/orders` answers `503`
    /// with `Retry-After` instead of piling up work the broker cannot take.
    pub outbox_backlog_limit: i64,
    /// Broker settings; the consumer group is `order-api`.
    pub kafka: KafkaConfig,
}

impl Config {
    /// The service name: Kafka client id and consumer group.
    pub const SERVICE: &'static str = "order-api";

    /// Reads the environment.
    pub fn from_env() -> Result<Self, PlatformError> {
        Ok(Self {
            http_addr: env_parse("ORDER_API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            database_path: env_or("ORDER_API_DB", "data/order-api.db").into(),
            catalog_path: std::env::var_os("CATALOG_PATH")
                .filter(|path| !path.is_empty())
                .map(PathBuf::from),
            sse_keep_alive: env_millis("SSE_KEEP_ALIVE_MS", Duration::from_secs(15))?,
            saga_timeout: env_millis("SAGA_TIMEOUT_MS", Duration::from_secs(30))?,
            reaper_interval: env_millis("SAGA_REAPER_INTERVAL_MS", Duration::from_millis(500))?,
            outbox_backlog_limit: env_parse("OUTBOX_BACKLOG_LIMIT", 10_000)?,
            kafka: KafkaConfig::from_env(Self::SERVICE)?,
        })
    }
}
