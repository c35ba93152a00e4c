//! `shopctl order list`: your orders, newest first, a page or all of them.

use shop_client::{Client, Error, ListOptions, OrderStatus};

use super::Exit;
use super::output::Output;

/// `shopctl order list` options.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only orders in this status.
    #[arg(long, value_enum)]
    pub status: Option<Status>,
    /// Orders per page (1 to 100).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: u32,
    /// Every order, page after page, instead of the first page only.
    #[arg(long)]
    pub all: bool,
}

/// An order's status, as `--status` takes it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Status {
    /// Accepted; the saga has not started paying.
    Pending,
    /// The payment provider has the charge.
    PaymentProcessing,
    /// Paid; stock is being reserved.
    PaymentConfirmed,
    /// Paid and reserved.
    Confirmed,
    /// Ended without a sale.
    Cancelled,
}

impl From<Status> for OrderStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Pending => OrderStatus::Pending,
            Status::PaymentProcessing => OrderStatus::PaymentProcessing,
            Status::PaymentConfirmed => OrderStatus::PaymentConfirmed,
            Status::Confirmed => OrderStatus::Confirmed,
            Status::Cancelled => OrderStatus::Cancelled,
        }
    }
}

/// Prints the first page, or with `--all` every page, following the cursor.
pub(super) async fn run(client: &Client, args: &ListArgs, out: &Output) -> Result<Exit, Error> {
    let mut options = ListOptions {
        status: args.status.map(OrderStatus::from),
        limit: Some(args.limit),
        cursor: None,
    };
    out.list_header();
    loop {
        let page = client.list_orders(&options).await?;
        for order in &page.items {
            out.summary(order);
        }
        match page.next_cursor {
            Some(cursor) if args.all => options.cursor = Some(cursor),
            Some(_) => {
                if !out.is_json() {
                    println!("… more with --all");
                }
                break;
            }
            None => break,
        }
    }
    Ok(Exit::Success)
}
