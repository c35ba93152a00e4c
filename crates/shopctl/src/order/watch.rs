//! Following an order to the end of its saga, for `watch` and `place --watch`.

use std::time::Duration;

use futures::StreamExt;
use shop_client::{Client, Error, OrderId};

use super::Exit;
use super::output::Output;

/// Prints each transition of `order_id` as it happens (from its first), then the final order;
/// the exit says how the saga ended, or that it did not within `timeout`.
pub(super) async fn follow(
    client: &Client,
    order_id: OrderId,
    timeout: Duration,
    out: &Output,
) -> Result<Exit, Error> {
    let followed = async {
        let mut transitions = client.watch(order_id);
        while let Some(transition) = transitions.next().await {
            let transition = transition?;
            out.transition(&transition);
            if transition.is_terminal() {
                break;
            }
        }
        client.get_order(order_id).await
    };
    match tokio::time::timeout(timeout, followed).await {
        Ok(order) => {
            let order = order?;
            out.order(&order);
            Ok(Exit::of(order.status))
        }
        Err(_) => {
            eprintln!(
                "no outcome within {timeout:?}; the saga goes on: shopctl order watch {order_id}"
            );
            Ok(Exit::Timeout)
        }
    }
}
