//! `shopctl up`: the embedded broker and every service in one process.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use platform::broker::EmbeddedBroker;

/// Options of `shopctl up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Where order-api listens.
    pub http_addr: SocketAddr,
    /// Where the databases go.
    pub data_dir: PathBuf,
    /// A Postgres server to keep the databases on instead (its admin URL).
    pub postgres: Option<String>,
    /// Brokers in the embedded cluster.
    pub brokers: i32,
    /// Refuse requests without an API key (otherwise they act as the `dev` principal).
    pub require_auth: bool,
}

/// Where each service keeps its data for this run.
enum Databases {
    /// `<dir>/<service>.db`.
    Sqlite(PathBuf),
    /// The server's URL without the database, and the run's prefix for database names.
    Postgres { server: String, prefix: String },
}

impl Databases {
    const SERVICES: [&str; 3] = ["order-api", "payment-svc", "inventory-svc"];

    /// Creates the run's Postgres databases, if it uses Postgres.
    async fn create(options: &UpOptions) -> anyhow::Result<Self> {
        let Some(admin) = options.postgres.clone() else {
            return Ok(Self::Sqlite(options.data_dir.clone()));
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

    fn target(&self, service: &str) -> platform::sql::DbTarget {
        match self {
            Self::Sqlite(dir) => dir.join(format!("{service}.db")).into(),
            Self::Postgres { server, prefix } => platform::sql::DbTarget::Postgres(format!(
                "{server}/{prefix}_{}",
                service.replace('-', "_")
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.display().to_string(),
            Self::Postgres { .. } => Self::SERVICES
                .iter()
                .map(|service| self.target(service).to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Runs everything until Ctrl-C / SIGTERM, then stops every service cleanly.
pub async fn run(options: UpOptions) -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(options.brokers).context("starting the embedded broker")?;
    let bootstrap = broker.bootstrap_servers().to_owned();
    let databases = Databases::create(&options).await?;
    let db = |name: &str| databases.target(name);
    let loopback_any_port = SocketAddr::from(([127, 0, 0, 1], 0));

    let mut order_config = order_api::Config::from_env()?;
    order_config.http_addr = options.http_addr;
    // Local development on loopback: requests without a key are the `dev` principal.
    order_config.allow_anonymous = order_config.allow_anonymous || !options.require_auth;
    // Local development: webhooks to the developer's own machine, signed with a fresh secret
    // for the `dev` principal unless one is configured.
    let dev_secret = if order_config.callback_secrets.contains("dev:") || options.require_auth {
        None
    } else {
        let secret = platform::webhook::Secret::generate();
        order_config.callback_secrets = [
            order_config.callback_secrets.as_str(),
            &format!("dev:{secret}"),
        ]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(",");
        order_config.callback_allow_private = true;
        Some(secret)
    };
    // One developer (and `shopctl bench`) is one principal: no rate limit unless configured.
    if std::env::var_os("RATE_LIMIT_PER_S").is_none() {
        order_config.rate_limit = (f64::MAX, f64::MAX);
    }
    order_config.database = db("order-api");
    order_config.kafka = order_config.kafka.with_bootstrap(&bootstrap);

    // The provider simulator and payment-svc share a webhook secret: the configured one, or a
    // fresh one for this run.
    let mut psp_config = psp_sim::Config::from_env()?;
    psp_config.http_addr = port_from_env("PSP_SIM_ADDR", loopback_any_port)?;
    let psp_secret = psp_config
        .webhook_secret
        .get_or_insert_with(platform::webhook::Secret::generate)
        .clone();
    let psp = psp_sim::Application::build(psp_config)
        .await
        .context("starting psp-sim")?;
    let psp_url = format!("http://{}", psp.local_addr()?);

    let mut payment_config = payment_svc::Config::from_env()?;
    payment_config.http_addr = port_from_env("PAYMENT_SVC_ADDR", loopback_any_port)?;
    payment_config.psp_url = psp_url.clone();
    payment_config.webhook_secret = Some(psp_secret);
    payment_config.database = db("payment-svc");
    payment_config.kafka = payment_config.kafka.with_bootstrap(&bootstrap);

    let mut inventory_config = inventory_svc::Config::from_env()?;
    inventory_config.http_addr = port_from_env("INVENTORY_SVC_ADDR", loopback_any_port)?;
    inventory_config.database = db("inventory-svc");
    inventory_config.kafka = inventory_config.kafka.with_bootstrap(&bootstrap);

    let order_api = order_api::Application::build(order_config)
        .await
        .with_context(|| format!("starting order-api on {}", options.http_addr))?;
    let payment = payment_svc::Application::build(payment_config)
        .await
        .context("starting payment-svc")?;
    let inventory = inventory_svc::Application::build(inventory_config)
        .await
        .context("starting inventory-svc")?;

    let order_url = format!("http://{}", order_api.local_addr()?);
    println!("shop ready: POST {order_url}/api/orders");
    println!("  order-api      {order_url}");
    println!("  payment-svc    http://{}", payment.local_addr()?);
    println!("  inventory-svc  http://{}", inventory.local_addr()?);
    println!("  psp-sim        {psp_url}");
    println!("  kafka          {bootstrap}");
    println!("  data           {}", databases.describe());
    if let Some(secret) = dev_secret {
        println!("  webhooks       callback_url deliveries are signed with {secret}");
    }
    println!("Press Ctrl-C to stop.");

    let shutdown = platform::shutdown::on_signal();
    let services = tokio::join!(
        order_api.run_until_stopped(stopper(&shutdown)),
        payment.run_until_stopped(stopper(&shutdown)),
        inventory.run_until_stopped(stopper(&shutdown)),
        psp.run_until_stopped(stopper(&shutdown)),
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

fn port_from_env(name: &str, default: SocketAddr) -> anyhow::Result<SocketAddr> {
    Ok(platform::config::env_parse(name, default)?)
}
