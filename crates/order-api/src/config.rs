use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use platform::PlatformError;
use platform::config::{Common, LogSettings, Sensitive, millis};
use platform::sql::DbTarget;

/// order-api's settings: each one an argument and an environment variable (`--help` lists them).
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "order-api",
    version,
    about = "The shop's HTTP API and the coordinator of every order's saga",
    after_help = "Every setting is also read from the environment variable in brackets; an argument wins."
)]
pub struct Config {
    /// Where the HTTP API listens (loopback by default).
    #[arg(
        long,
        env = "ORDER_API_ADDR",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub http_addr: SocketAddr,
    /// The database: a SQLite file path, or a `postgres://user:password@host:port/db` URL that
    /// several replicas may share.
    #[arg(long, env = "ORDER_API_DB", value_name = "PATH_OR_URL")]
    pub database: Option<Sensitive>,
    /// The database when `ORDER_API_DB` is unset (one service per container).
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "PATH_OR_URL",
        hide_env_values = true
    )]
    pub database_url: Option<Sensitive>,
    /// The catalog file (products, prices, initial stock); the built-in copy of
    /// `config/catalog.json` when unset.
    #[arg(long = "catalog", env = "CATALOG_PATH", value_name = "PATH")]
    pub catalog_path: Option<PathBuf>,
    /// order-api's own settings.
    #[command(flatten)]
    pub settings: Settings,
    /// Kafka, consumer, database and runtime settings.
    #[command(flatten)]
    pub common: Common,
    /// Logging.
    #[command(flatten)]
    pub log: LogSettings,
}

/// The settings only order-api has (`shopctl up` takes them too).
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "order-api")]
#[group(id = "order-api-settings")]
pub struct Settings {
    /// `principal:key` pairs, comma-separated: the API keys and who they belong to.
    #[arg(
        long,
        env = "API_KEYS",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true,
        value_name = "PRINCIPAL:KEY,…"
    )]
    pub api_keys: Sensitive,
    /// Requests without a key act as the principal `dev` (local development only).
    #[arg(long, env = "ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,
    /// Orders a principal may place per second (per replica: the buckets are in memory).
    #[arg(
        long,
        env = "RATE_LIMIT_PER_S",
        default_value_t = 100.0,
        value_name = "N"
    )]
    pub rate_limit_per_s: f64,
    /// Orders a principal may place in a burst.
    #[arg(
        long,
        env = "RATE_LIMIT_BURST",
        default_value_t = 200.0,
        value_name = "N"
    )]
    pub rate_limit_burst: f64,
    /// An order not `confirmed` or `cancelled` by then is cancelled with reason `timeout` and
    /// compensated.
    #[arg(long = "saga-timeout-ms", env = "SAGA_TIMEOUT_MS", default_value = "30000",
          value_parser = millis, value_name = "MS")]
    pub saga_timeout: Duration,
    /// How often to look for overdue sagas.
    #[arg(long = "saga-reaper-interval-ms", env = "SAGA_REAPER_INTERVAL_MS",
          default_value = "500", value_parser = millis, value_name = "MS")]
    pub reaper_interval: Duration,
    /// Unpublished events beyond which `POST /api/orders` answers `503` with `Retry-After`
    /// instead of piling up work the broker cannot take.
    #[arg(
        long,
        env = "OUTBOX_BACKLOG_LIMIT",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub outbox_backlog_limit: i64,
    /// How long an `Idempotency-Key` is remembered.
    #[arg(long = "idempotency-key-ttl-ms", env = "IDEMPOTENCY_KEY_TTL_MS",
          default_value = "86400000", value_parser = millis, value_name = "MS")]
    pub idempotency_ttl: Duration,
    /// Keep-alive comment interval of idle event streams (SSE).
    #[arg(long = "sse-keep-alive-ms", env = "SSE_KEEP_ALIVE_MS", default_value = "15000",
          value_parser = millis, value_name = "MS")]
    pub sse_keep_alive: Duration,
    /// Event streams open at once; more get `503` with `Retry-After`.
    #[arg(
        long,
        env = "SSE_MAX_STREAMS",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub sse_max_streams: usize,
    /// Event streams and waiting requests (`?wait=`, `Prefer: wait`) one principal may hold
    /// open at once; beyond it a stream gets `429` and a wait answers at once.
    #[arg(long, env = "MAX_HELD_PER_PRINCIPAL", default_value_t = 100,
          value_parser = platform::config::at_least_one, value_name = "N")]
    pub max_held_per_principal: usize,
    /// A stream with no change for this long ends (clients resume with `Last-Event-ID`).
    #[arg(long = "sse-max-idle-ms", env = "SSE_MAX_IDLE_MS", default_value = "300000",
          value_parser = millis, value_name = "MS")]
    pub sse_max_idle: Duration,
    /// `principal:whsec_…` pairs: the secrets order callbacks are signed with (keys of 24 to 64
    /// bytes); a principal needs one to set `callback_url`.
    #[arg(
        long,
        env = "CALLBACK_SECRETS",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true,
        value_name = "PRINCIPAL:WHSEC,…"
    )]
    pub callback_secrets: Sensitive,
    /// Allow callbacks to loopback and private addresses (local development and tests only: it
    /// opens the door to server-side request forgery).
    #[arg(long, env = "CALLBACK_ALLOW_PRIVATE")]
    pub callback_allow_private: bool,
    /// Attempts at delivering a callback before it is dead-lettered.
    #[arg(long, env = "WEBHOOK_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub webhook_max_attempts: u32,
    /// Delay before a callback's second attempt; doubles after, with jitter.
    #[arg(long = "webhook-retry-base-ms", env = "WEBHOOK_RETRY_BASE_MS", default_value = "500",
          value_parser = millis, value_name = "MS")]
    pub webhook_retry_base: Duration,
    /// Where a trace viewer shows one trace: the order timeline page links each order's trace
    /// there, `{trace_id}` replaced by the trace id. Jaeger:
    /// `http://localhost:16686/trace/{trace_id}`; Phoenix:
    /// `http://localhost:6006/redirects/traces/{trace_id}`.
    #[arg(long, env = "TRACE_URL_TEMPLATE", value_parser = trace_url_template,
          value_name = "URL", conflicts_with = "jaeger_ui_url")]
    pub trace_url_template: Option<String>,
    /// Shorthand for a Jaeger UI (e.g. `http://localhost:16686`): the same as
    /// `TRACE_URL_TEMPLATE=<url>/trace/{trace_id}`.
    #[arg(long, env = "JAEGER_UI_URL", value_parser = jaeger_ui_url, value_name = "URL")]
    pub jaeger_ui_url: Option<String>,
    /// The operator's token, at least 16 characters: `Authorization: Bearer <token>` opens the
    /// operator endpoints (`/admin/…`, e.g. retrying a dead-lettered callback). Unset, they
    /// answer `404`. Give it only to operators: it is no API key and acts for no principal.
    #[arg(
        long,
        env = "ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<Sensitive>,
    /// `name:key` pairs, comma-separated: the operators of the console (`/console`) and the
    /// keys they sign in with (at least 16 characters each; never an API key). `ADMIN_TOKEN`
    /// opens it too, as the operator `admin`.
    #[arg(
        long,
        env = "OPERATOR_KEYS",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true,
        value_name = "NAME:KEY,..."
    )]
    pub operator_keys: Sensitive,
    /// How long a saga may run before the console shows it as stuck.
    #[arg(long = "console-stuck-after-ms", env = "CONSOLE_STUCK_AFTER_MS", default_value = "10000",
          value_parser = millis, value_name = "MS")]
    pub console_stuck_after: Duration,
    /// Mark the console's session cookie `Secure` even when no proxy says the request came
    /// over HTTPS (`X-Forwarded-Proto: https` always does).
    #[arg(long, env = "CONSOLE_SECURE_COOKIES")]
    pub console_secure_cookies: bool,
}

impl Settings {
    /// The trace viewer's URL for one trace, `{trace_id}` to fill in: `TRACE_URL_TEMPLATE`, or
    /// Jaeger's trace page under `JAEGER_UI_URL`.
    pub fn trace_url(&self) -> Option<String> {
        self.trace_url_template.clone().or_else(|| {
            self.jaeger_ui_url
                .as_ref()
                .map(|base| format!("{base}/trace/{TRACE_ID}"))
        })
    }
}

impl Config {
    /// The service name: Kafka client id and consumer group.
    pub const SERVICE: &'static str = "order-api";

    /// Reads the arguments and the environment (`KAFKA_CLIENT_*` included); exits with a usage
    /// message on a bad setting, as `--help` and `--version` do.
    pub fn parse() -> Self {
        let mut config: Self = platform::config::parse();
        config.common = config.common.for_service(Self::SERVICE, std::env::vars());
        config
    }

    /// Where the data is: `ORDER_API_DB`, else `DATABASE_URL`, else `data/order-api.db`.
    pub fn database_target(&self) -> DbTarget {
        platform::config::database_target(&self.database, &self.database_url, "data/order-api.db")
    }
}

/// The placeholder a trace URL template holds.
const TRACE_ID: &str = "{trace_id}";

/// Checks `JAEGER_UI_URL`: an `http(s)` URL, kept without trailing slashes. Anything else is
/// refused at start-up, because the page would turn it into a link that does not work (or, for
/// `javascript:`, one that runs code).
fn jaeger_ui_url(value: &str) -> Result<String, PlatformError> {
    http_url(value, "JAEGER_UI_URL", "http://localhost:16686")
}

/// Checks `TRACE_URL_TEMPLATE`: an `http(s)` URL holding `{trace_id}`, for the reasons of
/// [`jaeger_ui_url`]; without the placeholder every order would link to the same page.
fn trace_url_template(value: &str) -> Result<String, PlatformError> {
    let example = "http://localhost:16686/trace/{trace_id}";
    let url = http_url(value, "TRACE_URL_TEMPLATE", example)?;
    if !url.contains(TRACE_ID) {
        return Err(PlatformError::Config {
            name: "TRACE_URL_TEMPLATE".to_owned(),
            value: value.to_owned(),
            reason: format!("expected {TRACE_ID} where the trace id goes, e.g. {example}"),
        });
    }
    Ok(url)
}

/// `value` trimmed of spaces and trailing slashes, if it is an `http(s)` URL with a host.
fn http_url(value: &str, name: &str, example: &str) -> Result<String, PlatformError> {
    let url = value.trim().trim_end_matches('/');
    let scheme_ok = ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
            && url.len() > scheme.len()
    });
    if !scheme_ok || url.chars().any(char::is_whitespace) {
        return Err(PlatformError::Config {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: format!("expected an http:// or https:// URL, e.g. {example}"),
        });
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{jaeger_ui_url, trace_url_template};

    #[test]
    fn jaeger_ui_url_is_optional_and_must_be_http() {
        let read = |value: &str| jaeger_ui_url(value).ok();
        assert_eq!(
            read("http://localhost:16686/").as_deref(),
            Some("http://localhost:16686")
        );
        assert_eq!(
            read("HTTPS://jaeger.example").as_deref(),
            Some("HTTPS://jaeger.example")
        );
        for bad in [
            "javascript:alert(1)",
            "localhost:16686",
            "http://",
            "http://a b",
            "  ",
        ] {
            assert!(jaeger_ui_url(bad).is_err(), "{bad}");
            assert!(trace_url_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_trace_url_template_must_say_where_the_trace_id_goes() {
        assert_eq!(
            trace_url_template("http://localhost:6006/redirects/traces/{trace_id}")
                .ok()
                .as_deref(),
            Some("http://localhost:6006/redirects/traces/{trace_id}")
        );
        assert!(trace_url_template("http://localhost:16686/trace/").is_err());
    }
}

#[cfg(test)]
mod command_line_tests {
    use clap::{CommandFactory, Parser};

    use super::Config;

    #[test]
    fn the_command_line_is_well_formed() {
        Config::command().debug_assert();
    }

    #[test]
    fn a_jaeger_ui_url_links_to_jaegers_trace_page_and_a_template_to_itself() {
        let trace_url =
            |args: &[&str]| Config::try_parse_from(args).map(|config| config.settings.trace_url());
        let jaeger = trace_url(&["order-api", "--jaeger-ui-url", "http://localhost:16686/"]);
        assert_eq!(
            jaeger.expect("a Jaeger UI URL is accepted").as_deref(),
            Some("http://localhost:16686/trace/{trace_id}")
        );
        let phoenix = "http://localhost:6006/redirects/traces/{trace_id}";
        let template = trace_url(&["order-api", "--trace-url-template", phoenix]);
        assert_eq!(
            template.expect("a template is accepted").as_deref(),
            Some(phoenix)
        );
        let both = trace_url(&[
            "order-api",
            "--trace-url-template",
            phoenix,
            "--jaeger-ui-url",
            "http://localhost:16686",
        ]);
        assert!(both.is_err(), "two trace viewers at once are refused");
    }
}
