//! The client never sends a request on a connection that has waited unused for longer than
//! [`POOL_IDLE_TIMEOUT`]: a server closes such connections (the shop after 10 s), and a request
//! sent on one just as it closes fails half-sent. Checked over real HTTP by the peer address
//! each request arrives from.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::get;
use shop_client::{Client, OrderId, POOL_IDLE_TIMEOUT};

/// The address of every request's connection, in order.
type Peers = Arc<Mutex<Vec<SocketAddr>>>;

async fn record(
    State(peers): State<Peers>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> StatusCode {
    peers.lock().expect("not poisoned").push(peer);
    StatusCode::NOT_FOUND
}

#[tokio::test]
async fn a_connection_idle_past_the_pool_timeout_is_not_used_again() {
    let peers = Peers::default();
    let app = axum::Router::new()
        .route("/api/orders/{order_id}", get(record))
        .with_state(Arc::clone(&peers));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let client = Client::new(url).expect("a client");
    let order: OrderId = "ord_0190aaaa000070008000000000000001"
        .parse()
        .expect("an order id");

    // Answered `404`: only the connection each request took matters here.
    for _ in 0..2 {
        assert!(client.get_order(order).await.is_err());
    }
    // The scenario's idle time, not a wait for an outcome: the connection sits unused for
    // longer than the pool keeps one.
    tokio::time::sleep(POOL_IDLE_TIMEOUT + Duration::from_millis(500)).await;
    assert!(client.get_order(order).await.is_err());

    let peers = peers.lock().expect("not poisoned").clone();
    assert_eq!(peers.len(), 3, "{peers:?}");
    assert_eq!(peers[0], peers[1], "back to back, the connection is kept");
    assert_ne!(
        peers[1], peers[2],
        "a connection idle for longer than {POOL_IDLE_TIMEOUT:?} was used again"
    );
}
