use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use platform::PlatformError;
use platform::config::{KafkaConfig, env_millis, env_or, env_parse};
use platform::sql::DbTarget;

/// order-api's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `ORDER_API_ADDR`: where the HTTP API listens (loopback by default).
    pub http_addr: SocketAddr,
    /// `ORDER_API_DB` (else `DATABASE_URL`): a SQLite file path, or a `postgres://` URL that
    /// several replicas may share.
    pub database: DbTarget,
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
    /// `JAEGER_UI_URL`: base URL of a trace viewer (Jaeger UI); when set, the order timeline
    /// page links an order's trace to `<url>/trace/<trace id>`.
    pub jaeger_ui_url: Option<String>,
    /// `IDEMPOTENCY_KEY_TTL_MS`: how long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    /// `API_KEYS`: `principal:key` pairs, comma-separated.
    pub api_keys: String,
    /// `ALLOW_ANONYMOUS`: requests without a key act as the principal `dev` (local development).
    pub allow_anonymous: bool,
    /// `RATE_LIMIT_PER_S` / `RATE_LIMIT_BURST`: orders a principal may place per second, and in a
    /// burst.
    pub rate_limit: (f64, f64),
    /// `SSE_MAX_STREAMS`: event streams open at once; more get `503`.
    pub sse_max_streams: usize,
    /// `SSE_MAX_IDLE_MS`: a stream with no change for this long ends (the client resumes).
    pub sse_max_idle: Duration,
    /// `CALLBACK_SECRETS`: `principal:whsec_…` pairs; a principal needs one to use
    /// `callback_url`.
    pub callback_secrets: String,
    /// `CALLBACK_ALLOW_PRIVATE`: allow callbacks to loopback and private addresses (local
    /// development and tests only: it opens the door to SSRF).
    pub callback_allow_private: bool,
    /// `WEBHOOK_MAX_ATTEMPTS` / `WEBHOOK_RETRY_BASE_MS`: attempts before a webhook is
    /// dead-lettered, and the first retry's delay (doubling after).
    pub webhook_retry: (u32, Duration),
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
            database: platform::config::env_database("ORDER_API_DB", "data/order-api.db"),
            catalog_path: std::env::var_os("CATALOG_PATH")
                .filter(|path| !path.is_empty())
                .map(PathBuf::from),
            sse_keep_alive: env_millis("SSE_KEEP_ALIVE_MS", Duration::from_secs(15))?,
            saga_timeout: env_millis("SAGA_TIMEOUT_MS", Duration::from_secs(30))?,
            reaper_interval: env_millis("SAGA_REAPER_INTERVAL_MS", Duration::from_millis(500))?,
            outbox_backlog_limit: env_parse("OUTBOX_BACKLOG_LIMIT", 10_000)?,
            jaeger_ui_url: jaeger_ui_url(std::env::var("JAEGER_UI_URL").ok())?,
            idempotency_ttl: env_millis("IDEMPOTENCY_KEY_TTL_MS", Duration::from_secs(24 * 3600))?,
            api_keys: env_or("API_KEYS", ""),
            allow_anonymous: env_parse("ALLOW_ANONYMOUS", false)?,
            rate_limit: (
                env_parse("RATE_LIMIT_PER_S", 100.0)?,
                env_parse("RATE_LIMIT_BURST", 200.0)?,
            ),
            sse_max_streams: env_parse("SSE_MAX_STREAMS", 10_000)?,
            sse_max_idle: env_millis("SSE_MAX_IDLE_MS", Duration::from_secs(300))?,
            callback_secrets: env_or("CALLBACK_SECRETS", ""),
            callback_allow_private: env_parse("CALLBACK_ALLOW_PRIVATE", false)?,
            webhook_retry: (
                env_parse("WEBHOOK_MAX_ATTEMPTS", 8)?,
                env_millis("WEBHOOK_RETRY_BASE_MS", Duration::from_millis(500))?,
            ),
            kafka: KafkaConfig::from_env(Self::SERVICE)?,
        })
    }
}

/// Checks `JAEGER_UI_URL`: unset or blank means no trace links; otherwise an `http(s)` URL, kept
/// without trailing slashes. Anything else is refused at start-up, because the page would turn
/// it into a link that does not work (or, for `javascript:`, one that runs code).
fn jaeger_ui_url(value: Option<String>) -> Result<Option<String>, PlatformError> {
    let Some(value) = value.filter(|value| !value.trim().is_empty()) else {
        return Ok(None);
    };
    let url = value.trim().trim_end_matches('/');
    let scheme_ok = ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
            && url.len() > scheme.len()
    });
    if !scheme_ok || url.chars().any(char::is_whitespace) {
        return Err(PlatformError::Config {
            name: "JAEGER_UI_URL".to_owned(),
            value,
            reason: "expected an http:// or https:// URL, e.g. http://localhost:16686".to_owned(),
        });
    }
    Ok(Some(url.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::jaeger_ui_url;

    #[test]
    fn jaeger_ui_url_is_optional_and_must_be_http() {
        let read = |value: Option<&str>| jaeger_ui_url(value.map(str::to_owned)).ok().flatten();
        assert_eq!(read(None), None);
        assert_eq!(read(Some("  ")), None);
        assert_eq!(
            read(Some("http://localhost:16686/")).as_deref(),
            Some("http://localhost:16686")
        );
        assert_eq!(
            read(Some("HTTPS://jaeger.example")).as_deref(),
            Some("HTTPS://jaeger.example")
        );
        for bad in [
            "javascript:alert(1)",
            "localhost:16686",
            "http://",
            "http://a b",
        ] {
            assert!(jaeger_ui_url(Some(bad.to_owned())).is_err(), "{bad}");
        }
    }
}
