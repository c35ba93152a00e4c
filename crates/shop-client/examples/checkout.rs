//! A checkout: place an order, answer at once when the saga is fast, else follow it.
//!
//! ```sh
//! shopctl up &                                  # order-api on http://127.0.0.1:8080
//! cargo run -p shop-client --example checkout   # or: … -- http://host:port [payment method]
//! ```
//!
//! The base URL comes from the first argument, else `ORDER_API_URL`, else `shopctl up`'s
//! address; `ORDER_API_KEY` is sent as the API key when set. Try `pm_slow_3s` as the payment
//! method to see the asynchronous path, `pm_card_declined` for a cancellation.

use std::time::Duration;

use futures::StreamExt;
use shop_client::{Client, Error, NewOrder, OrderStatus, PlaceOptions, Placed};

/// How long the checkout page may keep the customer waiting for a definite answer.
const PATIENCE: Duration = Duration::from_secs(30);

/// How long the POST itself may wait for the saga (`Prefer: wait`): a fast saga answers
/// synchronously, like an ordinary checkout.
const SYNC_WAIT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base_url = args
        .next()
        .or_else(|| std::env::var("ORDER_API_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let payment_method = args.next().unwrap_or_else(|| "pm_visa_4242".to_owned());

    let mut builder = Client::builder(&base_url);
    if let Ok(key) = std::env::var("ORDER_API_KEY") {
        builder = builder.api_key(key);
    }
    let client = builder.build()?;
    let order = NewOrder::new("usr_checkout".parse()?, payment_method.parse()?)
        .line("WIDGET-42".parse()?, 2)
        .line("GADGET-7".parse()?, 1);

    let placed = match client
        .place_order(&order, PlaceOptions::default().wait(SYNC_WAIT))
        .await
    {
        Ok(placed) => placed,
        Err(Error::Validation { detail, fields, .. }) => {
            let fields: Vec<&str> = fields.iter().map(|field| field.field.as_str()).collect();
            eprintln!("The order was refused ({}): {detail}", fields.join(", "));
            std::process::exit(2);
        }
        Err(error) => return Err(error.into()),
    };
    let order_id = match placed {
        Placed::Finished(order) => {
            println!(
                "{}: {} at once{}",
                order.order_id,
                order.status,
                outcome(&order)
            );
            return Ok(());
        }
        Placed::Accepted { order_id, .. } => order_id,
    };
    println!("{order_id}: accepted, following the saga");

    // Print each transition as it happens, within the page's patience.
    let follow = async {
        let mut transitions = client.watch(order_id);
        while let Some(transition) = transitions.next().await {
            let transition = transition?;
            let from = transition.from.map_or("(new)", OrderStatus::as_str);
            let reason = transition
                .reason
                .map(|reason| format!(" ({})", reason.as_str()))
                .unwrap_or_default();
            println!(
                "{}  #{} {from} → {}{reason}  [{}]",
                transition.at.format("%H:%M:%S%.3f"),
                transition.seq,
                transition.to,
                transition.cause
            );
        }
        Ok::<_, Error>(())
    };
    match tokio::time::timeout(PATIENCE, follow).await {
        Ok(followed) => followed?,
        Err(_) => {
            println!("{order_id}: no outcome within {PATIENCE:?}; it goes on, ask again later");
            return Ok(());
        }
    }
    let order = client.get_order(order_id).await?;
    println!("{}: {}{}", order.order_id, order.status, outcome(&order));
    Ok(())
}

/// The total of a confirmed order, the reason of a cancelled one.
fn outcome(order: &shop_client::Order) -> String {
    match order.cancellation_reason {
        Some(reason) => format!(" ({})", reason.as_str()),
        None => format!(", total {}", order.total),
    }
}
