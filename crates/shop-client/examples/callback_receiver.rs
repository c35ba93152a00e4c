//! Receives order callbacks, verifies them and prints each one.
//!
//! ```sh
//! CALLBACK_SECRET=whsec_… cargo run -p shop-client --example callback_receiver -- 127.0.0.1:9000
//! ```
//!
//! The secret is the one order-api holds for this client (`CALLBACK_SECRETS`); the address to
//! listen on is the first argument, else `CALLBACK_ADDR`, else `127.0.0.1:9000`. Place orders
//! with `"callback_url": "http://127.0.0.1:9000/callbacks"`.

use axum::Router;
use axum::routing::post;
use shop_client::callback::{CallbackVerifier, OrderCallback, VerifiedCallback};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("CALLBACK_SECRET")
        .map_err(|_| "set CALLBACK_SECRET to the whsec_… secret order-api signs with")?;
    let verifier = CallbackVerifier::new(&secret)?;
    let address = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("CALLBACK_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned());

    let app = Router::new()
        .route("/callbacks", post(receive))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("Listening on http://{}/callbacks", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Runs only for a callback that passed every check; a refused one was answered already.
async fn receive(
    VerifiedCallback {
        webhook_id,
        callback,
    }: VerifiedCallback,
) {
    match callback {
        OrderCallback::Confirmed {
            order_id,
            timestamp,
        } => println!("{webhook_id}: order {order_id} confirmed at {timestamp}"),
        OrderCallback::Cancelled {
            order_id,
            reason,
            timestamp,
        } => println!(
            "{webhook_id}: order {order_id} cancelled at {timestamp} ({})",
            reason.as_str()
        ),
    }
}
