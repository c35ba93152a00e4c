//! `shopctl up`: the embedded broker and every service in one process.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use embedded_broker::EmbeddedBroker;
use platform::config::{Common, LogSettings, Sensitive};
use platform::db::Synchronous;

mod data;
mod provider;

use data::{DataDir, Databases};
use provider::Provider;
pub use provider::THREAD_NAME as PROVIDER_THREAD_NAME;

/// The settings of `shopctl up`: its own, then those of every service it runs (the same
/// arguments and variables as the services' own binaries take).
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Every setting is also read from the environment variable in brackets; an argument wins."
)]
pub struct UpOptions {
    /// Where order-api listens. Anything but a loopback address needs `--require-auth` (or
    /// `--allow-anonymous-remote`).
    #[arg(
        long,
        env = "ORDER_API_ADDR",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub http_addr: SocketAddr,
    /// Directory for the services' databases. Default: a new private directory under the
    /// system's temporary directory, removed on exit (the embedded broker keeps nothing across
    /// runs, so neither do the databases). They are not synced to disk (`DB_SYNCHRONOUS=off`):
    /// a directory kept across a power loss may hold corrupt databases; `DB_SYNCHRONOUS=normal`
    /// keeps them consistent.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the temporary data directory on exit (with `--data-dir`, it is always kept).
    #[arg(long)]
    pub keep_data: bool,
    /// Keep the services' data on this Postgres server instead (the URL of a database the
    /// user may create databases from, e.g. `postgres://postgres:…@127.0.0.1:5432/postgres`):
    /// each service gets a new database of its own, named after the run.
    #[arg(
        long,
        env = "SHOP_POSTGRES_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub postgres: Option<Sensitive>,
    /// Brokers in the embedded cluster. One, like docker-compose's Kafka: each Kafka client
    /// keeps a connection, a thread and a fetch loop per broker, so three cost ~10 % of the
    /// throughput and a quarter more CPU when idle, for nothing the saga needs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=9))]
    pub brokers: i32,
    /// Require an API key (`API_KEYS`) on every request instead of treating requests without
    /// one as the `dev` principal.
    #[arg(long)]
    pub require_auth: bool,
    /// Serve anonymous requests (as the `dev` principal) on a non-loopback `--http-addr`:
    /// anyone who can reach the address can place and read orders. Without this flag such a
    /// start is refused; with it, a warning is printed.
    #[arg(long, conflicts_with = "require_auth")]
    pub allow_anonymous_remote: bool,
    /// Where payment-svc listens (the provider's webhooks); any free loopback port by default.
    #[arg(
        long,
        env = "PAYMENT_SVC_ADDR",
        default_value = "127.0.0.1:0",
        value_name = "ADDR"
    )]
    pub payment_addr: SocketAddr,
    /// Where inventory-svc listens; any free loopback port by default.
    #[arg(
        long,
        env = "INVENTORY_SVC_ADDR",
        default_value = "127.0.0.1:0",
        value_name = "ADDR"
    )]
    pub inventory_addr: SocketAddr,
    /// Where psp-sim listens; any free loopback port by default.
    #[arg(
        long,
        env = "PSP_SIM_ADDR",
        default_value = "127.0.0.1:0",
        value_name = "ADDR"
    )]
    pub psp_addr: SocketAddr,
    /// The webhook secret shared by psp-sim and payment-svc; a fresh one per run by default.
    #[arg(
        long,
        env = "PSP_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "WHSEC"
    )]
    pub psp_webhook_secret: Option<Sensitive>,
    /// The catalog file (products, prices, initial stock); the built-in copy of
    /// `config/catalog.json` when unset.
    #[arg(long = "catalog", env = "CATALOG_PATH", value_name = "PATH")]
    pub catalog_path: Option<PathBuf>,
    /// order-api's settings.
    #[command(flatten)]
    pub order: order_api::Settings,
    /// payment-svc's settings.
    #[command(flatten)]
    pub payment: payment_svc::Settings,
    /// psp-sim's settings.
    #[command(flatten)]
    pub psp: psp_sim::Settings,
    /// Kafka, consumer, database and runtime settings of every service.
    #[command(flatten)]
    pub common: Common,
}

/// What `up` refuses, and what it lets the user do knowingly: serving anonymous requests on an
/// address other machines can reach. Returns the warning to print, if any.
pub fn check_exposure(options: &UpOptions) -> anyhow::Result<Option<String>> {
    let addr = options.http_addr;
    if addr.ip().is_loopback() || options.require_auth {
        return Ok(None);
    }
    if !options.allow_anonymous_remote {
        anyhow::bail!(
            "refusing to serve anonymous orders on {addr}, which is not a loopback address: \
             anyone who can reach it could place and read orders. Use --require-auth with \
             API_KEYS=principal:key, or --allow-anonymous-remote if that is really meant"
        );
    }
    Ok(Some(format!(
        "WARNING: order-api on {addr} accepts requests without an API key from anyone who can \
         reach it (--allow-anonymous-remote)"
    )))
}

/// How long a consumer's fetch may wait at the embedded broker unless told otherwise
/// (`--kafka-fetch-wait-ms`, `KAFKA_FETCH_WAIT_MS`), when this build's broker answers a waiting
/// fetch as soon as data arrives (`native/mock_fetch_wake.c`, linked in on Linux by
/// `build.rs`). A fetch may then wait long for nothing: an idle shop asks ten times a second
/// instead of two hundred (the idle CPU saved is in docs/performance-history.md). A broker
/// without the change answers only when the wait runs out, so there the services' own short
/// default stays.
#[cfg(fetch_wake)]
const FETCH_WAIT_MS: Option<&str> = Some("100");
#[cfg(not(fetch_wake))]
const FETCH_WAIT_MS: Option<&str> = None;

/// Gives the `up` command's settings the defaults of a shop with a broker of its own (see
/// [`FETCH_WAIT_MS`]); what the user sets still wins.
pub fn adjust_defaults(up: clap::Command) -> clap::Command {
    match FETCH_WAIT_MS {
        Some(millis) => up.mut_arg("fetch_wait", |arg| arg.default_value(millis)),
        None => up,
    }
}

/// The services' configurations for this run.
struct Configs {
    order: order_api::Config,
    payment: payment_svc::Config,
    inventory: inventory_svc::Config,
    psp: psp_sim::Config,
    /// The secret `dev`'s callbacks are signed with, when generated for this run.
    dev_callback_secret: Option<String>,
}

impl Configs {
    fn new(options: UpOptions, databases: &Databases, bootstrap: &str) -> Self {
        let loopback = options.http_addr.ip().is_loopback();
        let mut common = options.common.clone();
        common.kafka = common.kafka.with_bootstrap(bootstrap);
        if matches!(databases, Databases::Sqlite(_)) {
            // The embedded broker keeps its topics in memory and each run starts from an empty
            // one, so syncing the databases to disk would protect nothing that a power loss
            // leaves behind: the events and offsets are gone with the broker. `off` keeps what
            // matters here, durability against a crash of the process (the writes are the
            // system's by then), and no commit waits for the disk: with `normal`, the WAL
            // starting over (about 40 times a second at 1,200 orders/s) made order-api's
            // writer wait for a sync ~40 % of the time, and every request queued behind it.
            // An explicit `DB_SYNCHRONOUS` wins.
            common.db.synchronous.get_or_insert(Synchronous::Off);
        }
        let mut order = options.order;
        // Local development: requests without a key are the `dev` principal (refused above on
        // a public address unless asked for).
        order.allow_anonymous = order.allow_anonymous || !options.require_auth;
        // Local development: callbacks to the developer's own machine — on loopback only, since
        // on a reachable address they would let anyone probe the private network.
        order.callback_allow_private = order.callback_allow_private || loopback;
        // `dev`'s callbacks are signed with a fresh secret unless one is configured.
        let dev_callback_secret = (!options.require_auth
            && !order.callback_secrets.expose().contains("dev:"))
        .then(platform::webhook::Secret::generate);
        if let Some(secret) = &dev_callback_secret {
            let secrets = [order.callback_secrets.expose(), &format!("dev:{secret}")]
                .into_iter()
                .filter(|part| !part.trim().is_empty())
                .collect::<Vec<_>>()
                .join(",");
            order.callback_secrets = Sensitive::new(secrets);
        }
        // The provider simulator and payment-svc share a webhook secret: the configured one, or
        // a fresh one for this run.
        let psp_secret = options
            .psp_webhook_secret
            .filter(|secret| !secret.is_empty())
            .unwrap_or_else(|| Sensitive::new(platform::webhook::Secret::generate()));
        let service = |name: &str| common.clone().for_service(name, std::env::vars());
        // Logging belongs to the process, set up once from shopctl's own `--log-*` before any
        // service starts: the services' log settings are not read here.
        Self {
            order: order_api::Config {
                http_addr: options.http_addr,
                database: Some(databases.target("order-api")),
                database_url: None,
                catalog_path: options.catalog_path.clone(),
                settings: order,
                common: service(order_api::Config::SERVICE),
                log: LogSettings::default(),
            },
            payment: payment_svc::Config {
                http_addr: options.payment_addr,
                database: Some(databases.target("payment-svc")),
                database_url: None,
                webhook_secret: Some(psp_secret.clone()),
                settings: options.payment,
                common: service(payment_svc::Config::SERVICE),
                log: LogSettings::default(),
            },
            inventory: inventory_svc::Config {
                http_addr: options.inventory_addr,
                database: Some(databases.target("inventory-svc")),
                database_url: None,
                catalog_path: options.catalog_path,
                common: service(inventory_svc::Config::SERVICE),
                log: LogSettings::default(),
            },
            psp: psp_sim::Config {
                http_addr: options.psp_addr,
                allow_development_secrets: options.common.allow_development_secrets,
                webhook_secret: Some(psp_secret),
                settings: options.psp,
                log: LogSettings::default(),
            },
            dev_callback_secret,
        }
    }
}

/// Runs everything until Ctrl-C / SIGTERM, then stops every service cleanly and removes the
/// run's temporary data directory (also when the start fails).
pub async fn run(options: UpOptions) -> anyhow::Result<()> {
    let warning = check_exposure(&options)?;
    let mut data = DataDir::new(options.data_dir.as_deref())?;
    if options.keep_data {
        data = data.keep();
    }
    let result = serve(options, &data, warning).await;
    match &data {
        DataDir::Temporary(dir) => println!("  removed {}", dir.path().display()),
        DataDir::Given(dir) => println!("  data kept in {}", dir.display()),
    }
    drop(data);
    result
}

async fn serve(options: UpOptions, data: &DataDir, warning: Option<String>) -> anyhow::Result<()> {
    // Ctrl-C and SIGTERM stop the run cleanly from here on, also while it starts.
    let shutdown = platform::shutdown::on_signal();
    let http_addr = options.http_addr;
    let broker = EmbeddedBroker::start(options.brokers).context("starting the embedded broker")?;
    let bootstrap = broker.bootstrap_servers().to_owned();
    let databases = Databases::create(options.postgres.as_ref(), data.path()).await?;
    let configs = Configs::new(options, &databases, &bootstrap);

    let psp = Provider::start(configs.psp, stopper(&shutdown)).await?;
    let psp_url = format!("http://{}", psp.addr());
    let mut payment_config = configs.payment;
    payment_config.settings.psp_url = psp_url.clone();

    let order_api = order_api::Application::build(configs.order)
        .await
        .with_context(|| format!("starting order-api on {http_addr}"))?;
    let payment = payment_svc::Application::build(payment_config)
        .await
        .context("starting payment-svc")?;
    let inventory = inventory_svc::Application::build(configs.inventory)
        .await
        .context("starting inventory-svc")?;

    if let Some(warning) = warning {
        eprintln!("{warning}");
    }
    let order_url = format!("http://{}", order_api.local_addr()?);
    println!("shop ready: POST {order_url}/api/orders");
    println!("  order-api      {order_url}");
    println!("  console        {order_url}/console");
    println!("  payment-svc    http://{}", payment.local_addr()?);
    println!("  inventory-svc  http://{}", inventory.local_addr()?);
    println!("  psp-sim        {psp_url}");
    println!("  kafka          {bootstrap}");
    println!("  data           {}", databases.describe());
    if let Some(secret) = configs.dev_callback_secret {
        println!("  webhooks       callback_url deliveries are signed with {secret}");
    }
    println!("Press Ctrl-C to stop.");

    let services = tokio::join!(
        order_api.run_until_stopped(stopper(&shutdown)),
        payment.run_until_stopped(stopper(&shutdown)),
        inventory.run_until_stopped(stopper(&shutdown)),
        psp.stopped(),
    );
    // The broker stops last, once every service has flushed and committed.
    drop(broker);
    services.0?;
    services.1?;
    services.2?;
    services.3?;
    println!("shop stopped");
    Ok(())
}

fn stopper(shutdown: &CancellationToken) -> CancellationToken {
    shutdown.child_token()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `shopctl up`'s options as parsed from `args` (and this process's environment).
    fn options(args: &[&str]) -> UpOptions {
        #[derive(clap::Parser)]
        struct Up {
            #[command(flatten)]
            options: UpOptions,
        }
        let args = std::iter::once("up").chain(args.iter().copied());
        platform::config::try_parse_adjusted_from::<Up, _, _>(adjust_defaults, args)
            .expect("the options parse")
            .options
    }

    #[test]
    fn fetches_wait_long_when_the_broker_answers_them_at_once_unless_told_otherwise() {
        use std::time::Duration;

        // The change is linked in wherever it can be: Linux, with the librdkafka built here.
        assert_eq!(cfg!(fetch_wake), cfg!(target_os = "linux"));
        let wait = |args: &[&str]| configs(args).order.common.kafka.fetch_wait;
        if std::env::var_os("KAFKA_FETCH_WAIT_MS").is_none() {
            let expected = if cfg!(fetch_wake) {
                Duration::from_millis(100)
            } else {
                platform::config::KafkaConfig::default().fetch_wait
            };
            assert_eq!(wait(&[]), expected);
        }
        assert_eq!(
            wait(&["--kafka-fetch-wait-ms", "7"]),
            Duration::from_millis(7),
            "what the user sets wins"
        );
    }

    fn configs(args: &[&str]) -> Configs {
        let databases = Databases::Sqlite(PathBuf::from("/nonexistent"));
        Configs::new(options(args), &databases, "127.0.0.1:9092")
    }

    #[test]
    fn the_rate_limit_is_on_by_default() {
        let order = configs(&[]).order.settings;
        assert_eq!(
            (order.rate_limit_per_s, order.rate_limit_burst),
            (100.0, 200.0)
        );
        let order = configs(&["--rate-limit-per-s", "5"]).order.settings;
        assert_eq!(order.rate_limit_per_s, 5.0);
    }

    #[test]
    fn callbacks_reach_private_addresses_only_on_loopback_runs() {
        assert!(configs(&[]).order.settings.callback_allow_private);
        let public = configs(&["--http-addr", "0.0.0.0:8080", "--allow-anonymous-remote"]);
        assert!(!public.order.settings.callback_allow_private);
        assert!(public.order.settings.allow_anonymous);
    }

    #[test]
    fn anonymous_requests_on_a_reachable_address_need_an_explicit_flag() {
        assert!(check_exposure(&options(&[])).expect("loopback").is_none());
        assert!(check_exposure(&options(&["--http-addr", "0.0.0.0:8080"])).is_err());
        assert!(check_exposure(&options(&["--http-addr", "[::]:8080"])).is_err());
        let required = options(&["--http-addr", "0.0.0.0:8080", "--require-auth"]);
        assert!(check_exposure(&required).expect("keys required").is_none());
        let meant = options(&["--http-addr", "0.0.0.0:8080", "--allow-anonymous-remote"]);
        assert!(check_exposure(&meant).expect("asked for").is_some());
    }

    #[test]
    fn each_service_gets_its_own_database_client_id_and_the_run_s_broker() {
        let configs = configs(&[]);
        assert_eq!(configs.order.common.kafka.client_id, "order-api");
        assert_eq!(configs.payment.common.kafka.client_id, "payment-svc");
        assert_eq!(configs.inventory.common.kafka.client_id, "inventory-svc");
        assert_eq!(
            configs.order.common.kafka.bootstrap_servers,
            "127.0.0.1:9092"
        );
        assert_eq!(
            configs.payment.database_target().to_string(),
            "/nonexistent/payment-svc.db"
        );
        assert_eq!(configs.order.common.db.synchronous, Some(Synchronous::Off));
        let explicit = configs_with_sync();
        assert_eq!(explicit, Some(Synchronous::Full));
    }

    fn configs_with_sync() -> Option<Synchronous> {
        configs(&["--db-synchronous", "full"])
            .inventory
            .common
            .db
            .synchronous
    }

    #[test]
    fn secrets_do_not_print() {
        let configs = configs(&["--api-keys", "alice:sk_alice_1234567890"]);
        let printed = format!("{:?}", configs.order);
        assert!(!printed.contains("sk_alice"), "{printed}");
        assert!(!format!("{:?}", configs.psp).contains("whsec_"));
    }
}
