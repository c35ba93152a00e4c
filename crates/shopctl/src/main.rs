//! `shopctl`: the command line of the shop.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The program, not a library it links, chooses the allocator (why mimalloc: docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "shopctl",
    version,
    propagate_version = true,
    about = "Run and drive the order saga"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Logging (of every service, under `up`).
    #[command(flatten)]
    log: platform::config::LogSettings,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded Kafka-protocol broker and every service in this process.
    ///
    /// Its SQLite databases leave syncing to disk to the system (`DB_SYNCHRONOUS=off`) unless
    /// `DB_SYNCHRONOUS` is set: the embedded broker keeps nothing across runs anyway.
    Up(Box<shopctl::up::UpOptions>),
    /// Place, read, follow and list orders (order-api through the shop-client crate).
    Order(Box<shopctl::order::OrderArgs>),
    /// Load against the shop (its own `shopctl up`, or `--url`): saga latency, throughput, memory.
    Bench(Box<shopctl::bench::BenchArgs>),
    /// Inspect and replay dead letters (`<topic>.dlq`).
    Dlq {
        /// The broker.
        #[arg(
            long,
            env = "KAFKA_BOOTSTRAP_SERVERS",
            default_value = "127.0.0.1:9092"
        )]
        bootstrap: String,
        /// Also print the Kafka client's own log (connection attempts, retries) to stderr.
        #[arg(short, long, global = true)]
        verbose: bool,
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Run only the embedded broker; prints `KAFKA_BOOTSTRAP_SERVERS=…` and `broker ready`.
    Broker {
        /// Brokers in the embedded cluster.
        #[arg(long, env = "EMBEDDED_BROKERS", default_value_t = 1)]
        brokers: i32,
        /// Serve a fault-injection endpoint here (broker down/up, request errors); for tests.
        #[arg(long, env = "BROKER_CONTROL_ADDR")]
        control_addr: Option<SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// One line per dead letter still to handle: id, service, error class, attempts, reason.
    List {
        /// Only this topic's dead letters (e.g. `payments`).
        #[arg(long)]
        topic: Option<String>,
        /// Also the dead letters replayed already.
        #[arg(long)]
        include_replayed: bool,
    },
    /// One dead letter in full: headers and payload.
    Show {
        /// Its id, as printed by `list` (`<dlq topic>/<partition>/<offset>`).
        id: String,
    },
    /// Send dead letters back to their original topic (idempotent: handled events are dropped);
    /// failed callbacks back to order-api's deliverer (idempotent: receivers drop repeats).
    Replay {
        /// Ids as printed by `list`.
        ids: Vec<String>,
        /// Replay every dead letter (of `--topic`, if given).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// With `--all`: only this topic's dead letters.
        #[arg(long)]
        topic: Option<String>,
        /// With `--all`: also the dead letters replayed already (harmless: consumers drop
        /// events they handled).
        #[arg(long, requires = "all")]
        include_replayed: bool,
        /// order-api's base URL: a failed callback is replayed by asking order-api to send
        /// it again.
        #[arg(long, env = "ORDER_API_URL", value_name = "URL")]
        order_api_url: Option<String>,
        /// order-api's operator token (its `ADMIN_TOKEN`), for replaying failed callbacks.
        #[arg(
            long,
            env = "ADMIN_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        admin_token: Option<String>,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    let cli: Cli = platform::config::parse_adjusted(|cli| {
        cli.mut_subcommand("up", shopctl::up::adjust_defaults)
    });
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let _telemetry = platform::telemetry::init_services(
        "shop",
        &[
            order_api::Config::SERVICE,
            payment_svc::Config::SERVICE,
            inventory_svc::Config::SERVICE,
            psp_sim::Config::SERVICE,
        ],
        &cli.log,
    );
    match cli.command {
        Command::Up(options) => shopctl::up::run(*options).await?,
        Command::Broker {
            brokers,
            control_addr,
        } => shopctl::broker::run(brokers, control_addr).await?,
        Command::Dlq {
            bootstrap,
            verbose,
            action,
        } => return Ok(dlq(&bootstrap, verbose, action).await),
        Command::Bench(args) => shopctl::bench::main(*args).await?,
        Command::Order(args) => return Ok(shopctl::order::main(*args).await.into()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `dlq` command. A failure is one line on stderr (plus a hint when the broker cannot
/// be reached) and exit status 1: these are commands a person types, and a backtrace or the
/// Kafka client's log would hide what to do next.
async fn dlq(bootstrap: &str, verbose: bool, action: DlqAction) -> ExitCode {
    let Err(error) = dlq_action(bootstrap, verbose, action).await else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {error:#}");
    if let Some(dead_letters::Error::Unreachable(_)) = error.downcast_ref() {
        eprintln!("hint: {}", shopctl::dlq::UNREACHABLE_HINT);
    }
    ExitCode::FAILURE
}

async fn dlq_action(bootstrap: &str, verbose: bool, action: DlqAction) -> anyhow::Result<()> {
    use shopctl::dlq;
    match action {
        DlqAction::List {
            topic,
            include_replayed,
        } => dlq::list(
            &dlq::read(bootstrap, verbose, topic.as_deref())?,
            include_replayed,
        ),
        DlqAction::Show { id } => {
            let letters = dlq::read(bootstrap, verbose, None)?;
            let letter = letters
                .iter()
                .find(|letter| letter.id == id)
                .ok_or_else(|| anyhow::anyhow!("no dead letter {id}; see `shopctl dlq list`"))?;
            dlq::show(letter);
        }
        DlqAction::Replay {
            ids,
            all,
            topic,
            include_replayed,
            order_api_url,
            admin_token,
        } => {
            let order_api = dlq::OrderApi {
                url: order_api_url,
                admin_token,
            };
            let letters = dlq::read(bootstrap, verbose, topic.as_deref())?;
            let chosen: Vec<_> = if all {
                letters
                    .into_iter()
                    .filter(|letter| include_replayed || !letter.replayed)
                    .collect()
            } else {
                if ids.is_empty() {
                    anyhow::bail!("name dead letters to replay, or use --all");
                }
                let chosen: Vec<_> = letters
                    .into_iter()
                    .filter(|letter| ids.contains(&letter.id))
                    .collect();
                if let Some(missing) = ids
                    .iter()
                    .find(|id| !chosen.iter().any(|letter| &letter.id == *id))
                {
                    anyhow::bail!("no dead letter {missing}; see `shopctl dlq list`");
                }
                chosen
            };
            let replayed = dlq::replay(
                bootstrap,
                verbose,
                &dead_letters::once_per_origin(chosen),
                &order_api,
            )
            .await?;
            println!("{replayed} dead letter(s) replayed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
