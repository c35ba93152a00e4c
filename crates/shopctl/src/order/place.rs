//! `shopctl order place`: place an order, and with `--watch` follow it to the end.
//!
//! Placing goes through [`Client::place_order`], so a lost answer or a `503` is retried with
//! the same `Idempotency-Key` and never places a second order; `--idempotency-key` makes a
//! rerun of the command itself just as safe.

use std::str::FromStr;
use std::time::Duration;

use shop_client::{
    Client, Error, IdempotencyKey, NewOrder, PaymentMethod, PlaceOptions, Placed, Sku, UserId,
};

use super::Exit;
use super::output::Output;
use super::watch;

/// `shopctl order place` options.
#[derive(Debug, clap::Args)]
pub struct PlaceArgs {
    /// A line of the order, `SKU:QUANTITY` (`WIDGET-42:2`; a bare SKU is one); repeat for
    /// several lines.
    #[arg(long = "sku", required = true, value_name = "SKU:QUANTITY")]
    pub lines: Vec<Line>,
    /// How the customer pays; psp-sim decides by it (`pm_card_declined` is declined).
    #[arg(long, value_name = "METHOD")]
    pub payment_method: PaymentMethod,
    /// Who orders.
    #[arg(long, default_value = "usr_shopctl", value_name = "USER_ID")]
    pub user: UserId,
    /// Where order-api sends the signed webhook when the saga ends.
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    /// The `Idempotency-Key`: the same key and body place one order however often the
    /// command runs (default: a fresh key per run).
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub idempotency_key: Option<IdempotencyKey>,
    /// Ask order-api to hold its answer until the saga ends, at most this many seconds
    /// (`Prefer: wait`, at most 10).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=10))]
    pub wait: Option<u64>,
    /// Follow the saga to its end, printing each transition; the exit status is the outcome.
    #[arg(long)]
    pub watch: bool,
    /// With `--watch`: how long to wait for the outcome (e.g. 30s, 2m).
    #[arg(long, default_value = "60s", value_parser = crate::bench::parse_duration)]
    pub timeout: Duration,
}

/// One `--sku`: a product and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The product.
    sku: Sku,
    /// How many, at least one (order-api checks the upper bound).
    quantity: u32,
}

impl FromStr for Line {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (sku, quantity) = match text.rsplit_once(':') {
            Some((sku, quantity)) => {
                let quantity = quantity
                    .parse()
                    .ok()
                    .filter(|quantity| *quantity > 0)
                    .ok_or_else(|| {
                        format!("{text:?}: the quantity after `:` must be a whole number from 1")
                    })?;
                (sku, quantity)
            }
            None => (text, 1),
        };
        let sku = sku
            .parse()
            .map_err(|error| format!("{text:?}: {error} (like WIDGET-42:2)"))?;
        Ok(Self { sku, quantity })
    }
}

fn parse_key(text: &str) -> Result<IdempotencyKey, String> {
    IdempotencyKey::new(text).map_err(|error| error.to_string())
}

/// Places the order; prints the order (or, with `--watch`, its transitions, then the final
/// order). Without `--watch` the exit is 0 once the order is accepted, unless `--wait` saw
/// the saga end: then it is the outcome, as with `--watch`.
pub(super) async fn run(client: &Client, args: &PlaceArgs, out: &Output) -> Result<Exit, Error> {
    let mut order = NewOrder::new(args.user.clone(), args.payment_method.clone());
    for line in &args.lines {
        order = order.line(line.sku.clone(), line.quantity);
    }
    if let Some(url) = &args.callback_url {
        order = order.callback_url(url);
    }
    let options = PlaceOptions {
        idempotency_key: args.idempotency_key.clone(),
        wait: args.wait.map(Duration::from_secs),
    };
    match client.place_order(&order, options).await? {
        Placed::Finished(order) => {
            if args.watch {
                out.history(&order);
            }
            out.order(&order);
            Ok(Exit::of(order.status))
        }
        Placed::Accepted { order_id, .. } if args.watch => {
            watch::follow(client, order_id, args.timeout, out).await
        }
        Placed::Accepted { order_id, .. } => {
            let order = client.get_order(order_id).await?;
            out.order(&order);
            if !out.is_json() {
                println!("follow it: shopctl order watch {order_id}");
            }
            Ok(Exit::Success)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_sku_colon_quantity() {
        let line: Line = "WIDGET-42:2"
            .parse()
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!((line.sku.as_str(), line.quantity), ("WIDGET-42", 2));
        let bare: Line = "GADGET-7".parse().unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(bare.quantity, 1);
        for bad in ["WIDGET-42:0", "WIDGET-42:x", "WIDGET-42:-1", ":2", ""] {
            assert!(bad.parse::<Line>().is_err(), "{bad:?} was accepted");
        }
    }
}
