//! `shopctl order get ID`: the order as it is now.
//!
//! It exits 0 whenever the order could be read, whatever its status: the command answers
//! "what is this order?", and the status is in what it prints. `watch` is the command whose
//! exit status is the outcome.

use shop_client::{Client, Error, OrderId};

use super::Exit;
use super::output::Output;

/// Prints the order: the whole order as one line of JSON (its history inside), or its
/// history and a summary line.
pub(super) async fn run(client: &Client, order_id: OrderId, out: &Output) -> Result<Exit, Error> {
    let order = client.get_order(order_id).await?;
    if !out.is_json() {
        out.history(&order);
    }
    out.order(&order);
    Ok(Exit::Success)
}
