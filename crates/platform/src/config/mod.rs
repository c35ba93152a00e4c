//! Settings every service shares, parsed by clap from command-line arguments and environment
//! variables, with defaults that work on a laptop.
//!
//! Each service declares one typed `Config` (a [`clap::Parser`]) that flattens the groups here
//! ([`Common`]: Kafka, consumer, database, shutdown) next to its own settings, so `--help`
//! lists every setting with its variable and default, and the libraries below read no
//! environment variable of their own: what they need is passed down from that `Config`. The
//! same binaries run against the embedded broker and Apache Kafka: only
//! `KAFKA_BOOTSTRAP_SERVERS` changes.

mod file;
mod kafka;

use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

pub use file::{load_catalog, load_file};
pub use kafka::{CLIENT_PROPERTY_PREFIX, KafkaConfig, client_config_from, client_properties_from};

/// Parses `T` from the process's arguments and environment; prints help, the version or a
/// usage error and exits as clap does.
///
/// A variable set to the empty string counts as unset (compose files often pass `FOO: ${FOO:-}`),
/// so an empty value falls back to the default instead of failing to parse.
pub fn parse<T: clap::Parser>() -> T {
    parse_adjusted(|command| command)
}

/// Like [`parse`], with `adjust` applied to the command first: a program that embeds the
/// services may give their settings other defaults (`shopctl up` does).
pub fn parse_adjusted<T: clap::Parser>(adjust: impl FnOnce(clap::Command) -> clap::Command) -> T {
    match try_parse_adjusted_from::<T, _, _>(adjust, std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(error) => error.exit(),
    }
}

/// Like [`parse`], from the given arguments (the first one names the program) and the process's
/// environment.
pub fn try_parse_from<T, I, A>(args: I) -> Result<T, clap::Error>
where
    T: clap::Parser,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    try_parse_adjusted_from::<T, _, _>(|command| command, args)
}

/// Like [`try_parse_from`], with `adjust` applied to the command first (see
/// [`parse_adjusted`]).
pub fn try_parse_adjusted_from<T, I, A>(
    adjust: impl FnOnce(clap::Command) -> clap::Command,
    args: I,
) -> Result<T, clap::Error>
where
    T: clap::Parser,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let command = without_empty_env(adjust(T::command()), &|name| {
        std::env::var_os(name).is_some_and(|value| value.is_empty())
    });
    let mut matches = command.try_get_matches_from(args)?;
    T::from_arg_matches_mut(&mut matches)
}

/// `command` with the variables `is_empty` says are set to the empty string taken off its
/// arguments, and its subcommands' (`shopctl up` takes every service setting), so that such a
/// variable counts as unset.
fn without_empty_env(
    command: clap::Command,
    is_empty: &dyn Fn(&std::ffi::OsStr) -> bool,
) -> clap::Command {
    let command = command.mut_args(|arg| {
        let empty = arg.get_env().is_some_and(is_empty);
        if empty { arg.env(None) } else { arg }
    });
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    names.iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| without_empty_env(sub, is_empty))
    })
}

/// Parses a number of milliseconds (`"250"`) into a [`Duration`].
pub fn millis(value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|error| format!("expected a whole number of milliseconds: {error}"))
}

/// Parses a count that must be at least one (pool sizes, lanes, requests in flight).
pub fn at_least_one(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(error) => Err(format!("expected a whole number: {error}")),
    }
}

/// Parses a number of seconds (`"300"`) into a [`Duration`].
pub fn seconds(value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|error| format!("expected a whole number of seconds: {error}"))
}

/// A setting that must not appear in logs or `Debug` output (API keys, webhook secrets,
/// passwords): it prints as `***`, and its value is read only through [`Sensitive::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// Whether `given` is this value, compared in constant time (a client guessing a token
    /// learns nothing from how long the refusal takes).
    pub fn matches(&self, given: &[u8]) -> bool {
        constant_time_eq(given, self.0.as_bytes())
    }
}

/// `a == b` in time that depends only on the lengths, for comparing secrets.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() { "\"\"" } else { "***" })
    }
}

impl FromStr for Sensitive {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(value))
    }
}

/// Where a service keeps its data: its own setting (`ORDER_API_DB`…, a SQLite path or a
/// `postgres://` URL), else the shared one (`DATABASE_URL`: one database per container), else
/// the SQLite file `default`.
pub fn database_target(
    own: &Option<Sensitive>,
    shared: &Option<Sensitive>,
    default: &str,
) -> crate::sql::DbTarget {
    let value = [own, shared]
        .into_iter()
        .flatten()
        .find(|value| !value.is_empty())
        .map_or(default, Sensitive::expose);
    crate::sql::DbTarget::parse(value)
}

/// Secrets this repository publishes for local development (docker-compose's defaults and
/// `.env.example`: the `dev` API key, the payment provider's webhook secret, the Postgres
/// passwords). Anyone can read them, so a service refuses to run with one of them unless its
/// configuration says this is a development setup (`ALLOW_DEVELOPMENT_SECRETS`).
pub const DEVELOPMENT_SECRETS: [&str; 7] = [
    "sk_dev_local_only",
    "whsec_coRny9c5bcvvCdzKpIHUbTwjM2fK5Lv38Dl6luTe/ik=",
    "shop_local_only",
    "order_api_local_only",
    "payment_svc_local_only",
    "inventory_svc_local_only",
    "op_dev_local_only",
];

/// Refuses the setting `name` when its `value` holds one of the [`DEVELOPMENT_SECRETS`], unless
/// `allowed`; then it warns, so that a development secret is never used silently.
pub fn refuse_development_secret(
    name: &str,
    value: &str,
    allowed: bool,
) -> Result<(), crate::PlatformError> {
    if !DEVELOPMENT_SECRETS
        .iter()
        .any(|secret| value.contains(secret))
    {
        return Ok(());
    }
    if !allowed {
        return Err(crate::PlatformError::Config {
            name: name.to_owned(),
            value: "(hidden)".to_owned(),
            reason: "holds a development secret published with this project; set a secret of \
                     your own, or ALLOW_DEVELOPMENT_SECRETS=true on a development machine"
                .to_owned(),
        });
    }
    tracing::warn!(
        setting = name,
        "A development secret published with this project is in use (ALLOW_DEVELOPMENT_SECRETS): \
         anyone can read it. Never expose this setup."
    );
    Ok(())
}

/// The settings of every service that consumes and produces events and keeps a database.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// How to reach Kafka.
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// How the consumer retries and spreads its work.
    #[command(flatten)]
    pub consumer: crate::kafka::ConsumerSettings,
    /// How the database is used.
    #[command(flatten)]
    pub db: crate::db::DbSettings,
    /// Bound on a clean stop; whatever is cut off is redone after a restart (unpublished outbox
    /// rows stay in the database, uncommitted messages are consumed again).
    #[arg(
        long = "shutdown-timeout-ms",
        env = "SHUTDOWN_TIMEOUT_MS",
        default_value = "10000",
        value_parser = millis,
        value_name = "MS",
        help_heading = "Runtime"
    )]
    pub shutdown_timeout: Duration,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`:
    /// for a service whose port is reachable by clients (its metrics describe its traffic).
    #[arg(
        long,
        env = "METRICS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Runtime"
    )]
    pub metrics_token: Option<Sensitive>,
    /// Accept the development secrets published with this project (docker-compose's defaults);
    /// without it a service refuses to start with one.
    #[arg(long, env = "ALLOW_DEVELOPMENT_SECRETS", help_heading = "Runtime")]
    pub allow_development_secrets: bool,
}

impl Common {
    /// The settings of `service`: its Kafka client id (and consumer group), its database
    /// threads' names (see [`crate::db::thread_prefix`]) and metrics' label, and the `KAFKA_CLIENT_*` properties
    /// among `variables` (a program passes its environment; see
    /// [`KafkaConfig::with_client_variables`]).
    #[must_use]
    pub fn for_service(
        mut self,
        service: &str,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        service.clone_into(&mut self.kafka.client_id);
        self.db.thread_prefix = crate::db::thread_prefix(service);
        service.clone_into(&mut self.db.service);
        self.kafka = self.kafka.with_client_variables(variables);
        self
    }
}

/// The log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One flat JSON object per line.
    Json,
}

/// How a program logs.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Logs")]
pub struct LogSettings {
    /// Which lines to print: a `tracing` filter such as `info`, `warn,order_api=debug`.
    #[arg(
        long = "log-filter",
        env = "RUST_LOG",
        default_value = "info,rdkafka=warn",
        value_name = "FILTER",
        global = true
    )]
    pub filter: String,
    /// `text` for people, `json` for log collectors.
    #[arg(
        long = "log-format",
        env = "LOG_FORMAT",
        value_enum,
        ignore_case = true,
        default_value_t
    )]
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            filter: "info,rdkafka=warn".to_owned(),
            format: LogFormat::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_set_to_the_empty_string_counts_as_unset_in_subcommands_too() {
        let command = clap::Command::new("tool")
            .arg(clap::Arg::new("top").long("top").env("TOP_VAR"))
            .subcommand(
                clap::Command::new("up")
                    .arg(clap::Arg::new("wait").long("wait").env("EMPTY_VAR"))
                    .arg(clap::Arg::new("kept").long("kept").env("SET_VAR")),
            );
        let command = without_empty_env(command, &|name| name != "SET_VAR");
        let env_of = |command: &clap::Command, id: &str| {
            command
                .get_arguments()
                .find(|arg| arg.get_id() == id)
                .and_then(|arg| arg.get_env().map(ToOwned::to_owned))
        };
        assert_eq!(env_of(&command, "top"), None);
        let up = command.find_subcommand("up").expect("the subcommand");
        assert_eq!(
            env_of(up, "wait"),
            None,
            "an empty variable in a subcommand"
        );
        assert_eq!(env_of(up, "kept").as_deref(), Some("SET_VAR".as_ref()));
    }

    #[test]
    fn the_development_webhook_secret_is_a_valid_secret() {
        // docker-compose and `.env.example` use it as the provider's webhook secret.
        assert!(crate::webhook::Secret::parse(DEVELOPMENT_SECRETS[1]).is_ok());
    }

    #[test]
    fn development_secrets_are_refused_unless_allowed() {
        let keys = "alice:sk_live_abcdefgh,dev:sk_dev_local_only";
        assert!(refuse_development_secret("API_KEYS", keys, false).is_err());
        assert!(refuse_development_secret("API_KEYS", keys, true).is_ok());
        assert!(refuse_development_secret("API_KEYS", "alice:sk_live_abcdefgh", false).is_ok());
        let url = "postgres://shop:shop_local_only@db/orders";
        let refused = refuse_development_secret("ORDER_API_DB", url, false)
            .expect_err("the published password");
        assert!(
            !refused.to_string().contains("shop_local_only"),
            "{refused}"
        );
    }

    #[test]
    fn sensitive_values_do_not_print() {
        let secret = Sensitive::new("sk_live_123");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(secret.expose(), "sk_live_123");
    }
}
