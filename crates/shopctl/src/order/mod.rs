//! `shopctl order`: place, read, follow and list orders from a terminal or a script, through
//! the `shop-client` crate — the same client a program would use.
//!
//! Every subcommand prints for people by default and one JSON object per line with `--json`.
//! The exit status says how the saga ended wherever the command saw it end ([`Exit`]), so a
//! script can branch on it without parsing anything.

mod get;
mod list;
mod output;
mod place;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

use shop_client::{Client, Error, OrderId, OrderStatus};

pub use list::ListArgs;
pub use place::PlaceArgs;

use output::Output;

/// What the exit statuses mean; shown by `shopctl order --help`.
const EXIT_STATUSES: &str = "\
Exit status:
  0  the order was confirmed; for `get`, `list` and `place` without `--watch`: the request succeeded
  1  an error: the request was refused (the problem is printed on stderr) or order-api is unreachable
  2  usage error: an option or argument is malformed
  3  the order was cancelled (the reason is printed)
  4  no outcome within `--timeout`: the saga goes on, follow it with `shopctl order watch ID`";

/// `shopctl order` options.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXIT_STATUSES)]
pub struct OrderArgs {
    /// Where order-api is, and how to present the answers.
    #[command(flatten)]
    pub api: ApiArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: OrderCommand,
}

/// The options every `order` subcommand shares.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// order-api's base URL (`shopctl up` serves it here).
    #[arg(
        long,
        global = true,
        env = "ORDER_API_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub url: String,
    /// The API key, sent as `Authorization: Bearer` (`shopctl up` needs none).
    #[arg(
        long,
        global = true,
        env = "ORDER_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// One JSON object per line on stdout instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The `order` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OrderCommand {
    /// Place an order; with `--watch`, follow its saga to the end.
    #[command(after_long_help = EXIT_STATUSES)]
    Place(Box<PlaceArgs>),
    /// Print an order as it is now, with its history (exit 0 whatever its status).
    Get {
        /// The order (`ord_…`).
        order_id: OrderId,
    },
    /// Follow an existing order to the end of its saga, from its first transition.
    #[command(after_long_help = EXIT_STATUSES)]
    Watch {
        /// The order (`ord_…`).
        order_id: OrderId,
        /// How long to wait for the outcome (e.g. 30s, 2m).
        #[arg(long, default_value = "60s", value_parser = crate::bench::parse_duration)]
        timeout: Duration,
    },
    /// List your orders, newest first.
    List(ListArgs),
}

/// How a command ended, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The order was confirmed, or the request succeeded: 0.
    Success,
    /// A refusal or no answer: 1.
    Error,
    /// The order was cancelled: 3 (2 is clap's, for usage errors).
    Cancelled,
    /// The saga did not end within the time allowed: 4.
    Timeout,
}

impl Exit {
    /// The exit for an order that ended in `status`.
    fn of(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Cancelled => Exit::Cancelled,
            _ => Exit::Success,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(match exit {
            Exit::Success => 0,
            Exit::Error => 1,
            Exit::Cancelled => 3,
            Exit::Timeout => 4,
        })
    }
}

/// Runs an `order` command. Failures are printed on stderr as the server explained them, not
/// returned: what a person needs is the problem's title and detail, not a backtrace.
pub async fn main(args: OrderArgs) -> Exit {
    let out = Output::new(args.api.json);
    match run(&args.api, args.command, &out).await {
        Ok(exit) => exit,
        Err(error) => {
            output::report(&error);
            Exit::Error
        }
    }
}

async fn run(api: &ApiArgs, command: OrderCommand, out: &Output) -> Result<Exit, Error> {
    let mut client = Client::builder(&api.url);
    if let Some(key) = &api.api_key {
        client = client.api_key(key);
    }
    let client = client.build()?;
    match command {
        OrderCommand::Place(args) => place::run(&client, &args, out).await,
        OrderCommand::Get { order_id } => get::run(&client, order_id, out).await,
        OrderCommand::Watch { order_id, timeout } => {
            watch::follow(&client, order_id, timeout, out).await
        }
        OrderCommand::List(args) => list::run(&client, &args, out).await,
    }
}
