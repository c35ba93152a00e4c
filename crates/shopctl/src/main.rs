//! `shopctl`: the command line of the shop.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "shopctl", version, about = "Run and drive the order saga")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded Kafka-protocol broker and every service in this process.
    ///
    /// Its SQLite databases sync to disk at checkpoints only (`DB_SYNCHRONOUS=normal`) unless
    /// `DB_SYNCHRONOUS` is set: the embedded broker keeps nothing across runs anyway.
    Up {
        /// Where order-api listens.
        #[arg(long, env = "ORDER_API_ADDR", default_value = "127.0.0.1:8080")]
        http_addr: SocketAddr,
        /// Directory for the services' databases (default: a new directory under the system's
        /// temporary directory, since the embedded broker keeps nothing across runs).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Keep the services' data on this Postgres server instead (the URL of a database the
        /// user may create databases from, e.g. `postgres://postgres:…@127.0.0.1:5432/postgres`):
        /// each service gets a new database of its own, named after the run.
        #[arg(long, env = "SHOP_POSTGRES_URL")]
        postgres: Option<String>,
        /// Brokers in the embedded cluster. One, like docker-compose's Kafka: each Kafka client
        /// keeps a connection, a thread and a fetch loop per broker, so three cost ~10 % of the
        /// throughput and a quarter more CPU when idle, for nothing the saga needs.
        #[arg(long, default_value_t = 1)]
        brokers: i32,
        /// Require an API key (`API_KEYS`) on every request instead of treating requests without
        /// one as the `dev` principal.
        #[arg(long)]
        require_auth: bool,
    },
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
    /// One line per dead letter: id, service, error class, attempts, reason.
    List {
        /// Only this topic's dead letters (e.g. `payments`).
        #[arg(long)]
        topic: Option<String>,
    },
    /// One dead letter in full: headers and payload.
    Show {
        /// Its id, as printed by `list` (`<dlq topic>/<partition>/<offset>`).
        id: String,
    },
    /// Send dead letters back to their original topic (idempotent: handled events are dropped).
    Replay {
        /// Ids as printed by `list`.
        ids: Vec<String>,
        /// Replay every dead letter (of `--topic`, if given).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// With `--all`: only this topic's dead letters.
        #[arg(long)]
        topic: Option<String>,
    },
}

// The one `unsafe`: setting an environment variable, before any other thread exists.
#[allow(unsafe_code)]
fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Up { postgres: None, .. } = &cli.command
        && std::env::var_os("DB_SYNCHRONOUS").is_none()
    {
        // The embedded broker keeps its topics in memory and each run starts from an empty
        // one, so syncing the databases to disk at every commit (`full`) would protect nothing
        // that a power loss leaves behind: the events and offsets are gone with the broker.
        // `normal` keeps what matters here, durability against a crash of the process, at a
        // fraction of the cost. An explicit `DB_SYNCHRONOUS` wins.
        // SAFETY: no other thread exists yet; the runtime is built below.
        unsafe { std::env::set_var("DB_SYNCHRONOUS", "normal") };
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("shop");
    match cli.command {
        Command::Up {
            http_addr,
            data_dir,
            postgres,
            brokers,
            require_auth,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| {
                let stamp = chrono_free_stamp();
                std::env::temp_dir().join(format!("shop-{stamp}"))
            });
            shopctl::up::run(shopctl::up::UpOptions {
                http_addr,
                data_dir,
                postgres,
                brokers,
                require_auth,
            })
            .await
        }
        Command::Broker {
            brokers,
            control_addr,
        } => shopctl::broker::run(brokers, control_addr).await,
        Command::Dlq {
            bootstrap,
            verbose,
            action,
        } => dlq(&bootstrap, verbose, action).await,
        Command::Bench(args) => shopctl::bench::main(*args).await,
    }
}

/// Seconds since the Unix epoch and the pid: unique enough for a run directory.
fn chrono_free_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    format!("{secs}-{}", std::process::id())
}

/// Runs a `dlq` command. A failure is one line on stderr (plus a hint when the broker cannot
/// be reached) and exit status 1: these are commands a person types, and a backtrace or the
/// Kafka client's log would hide what to do next.
async fn dlq(bootstrap: &str, verbose: bool, action: DlqAction) -> anyhow::Result<()> {
    let Err(error) = dlq_action(bootstrap, verbose, action).await else {
        return Ok(());
    };
    eprintln!("error: {error:#}");
    if let Some(unreachable) = error.downcast_ref::<shopctl::dlq::Unreachable>() {
        eprintln!("hint: {}", unreachable.hint());
    }
    // Nothing is left to flush: the command exports no traces and its clients are gone.
    std::process::exit(1);
}

async fn dlq_action(bootstrap: &str, verbose: bool, action: DlqAction) -> anyhow::Result<()> {
    use shopctl::dlq;
    match action {
        DlqAction::List { topic } => dlq::list(&dlq::read(bootstrap, verbose, topic.as_deref())?),
        DlqAction::Show { id } => {
            let letters = dlq::read(bootstrap, verbose, None)?;
            let letter = letters
                .iter()
                .find(|letter| letter.id == id)
                .ok_or_else(|| anyhow::anyhow!("no dead letter {id}; see `shopctl dlq list`"))?;
            dlq::show(letter);
        }
        DlqAction::Replay { ids, all, topic } => {
            let letters = dlq::read(bootstrap, verbose, topic.as_deref())?;
            let chosen: Vec<_> = if all {
                letters
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
            let replayed = dlq::replay(bootstrap, verbose, &chosen).await?;
            println!("{replayed} dead letter(s) replayed");
        }
    }
    Ok(())
}
