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
    Up {
        /// Where order-api listens.
        #[arg(long, env = "ORDER_API_ADDR", default_value = "127.0.0.1:8080")]
        http_addr: SocketAddr,
        /// Directory for the services' databases (default: a new directory under the system's
        /// temporary directory, since the embedded broker keeps nothing across runs).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Brokers in the embedded cluster.
        #[arg(long, default_value_t = 3)]
        brokers: i32,
    },
    /// Run only the embedded broker; prints `KAFKA_BOOTSTRAP_SERVERS=…` and `broker ready`.
    Broker {
        /// Brokers in the embedded cluster.
        #[arg(long, default_value_t = 1)]
        brokers: i32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("shop");
    match Cli::parse().command {
        Command::Up {
            http_addr,
            data_dir,
            brokers,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| {
                let stamp = chrono_free_stamp();
                std::env::temp_dir().join(format!("shop-{stamp}"))
            });
            shopctl::up::run(shopctl::up::UpOptions {
                http_addr,
                data_dir,
                brokers,
            })
            .await
        }
        Command::Broker { brokers } => shopctl::broker::run(brokers).await,
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
