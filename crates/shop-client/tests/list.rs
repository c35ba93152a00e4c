//! `Client::list_orders` against a scripted order-api over real HTTP: the options become the
//! query the API documents, the cursor leads from page to page, and a refusal is typed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use shop_client::{Client, Error, ListOptions, OrderStatus};

/// The order ids the scripted server lists, newest first.
const IDS: [&str; 3] = [
    "ord_0190aaaa000070008000000000000003",
    "ord_0190aaaa000070008000000000000002",
    "ord_0190aaaa000070008000000000000001",
];

/// Every query the server was asked, in order.
type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// Pages of `limit` orders (2 by default); the cursor is the index of the next order.
async fn list(State(seen): State<Seen>, Query(query): Query<HashMap<String, String>>) -> Response {
    seen.lock().expect("not poisoned").push(query.clone());
    let Ok(from) = query
        .get("cursor")
        .map_or(Ok(0), |cursor| cursor.parse::<usize>())
    else {
        let problem = serde_json::json!({"type": "https://shop.example/problems/bad-query",
            "title": "Bad query", "status": 400, "detail": "cursor is not one the API gave."});
        return (StatusCode::BAD_REQUEST, axum::Json(problem)).into_response();
    };
    let limit: usize = query
        .get("limit")
        .map_or(2, |limit| limit.parse().unwrap_or(2));
    let to = (from + limit).min(IDS.len());
    let items: Vec<serde_json::Value> = IDS[from..to]
        .iter()
        .map(|id| {
            serde_json::json!({"order_id": id, "user_id": "usr_1", "status": "confirmed",
                "cancellation_reason": null, "total": 24.99, "total_minor": 2499,
                "currency": "USD", "created_at": "2026-01-01T00:00:01Z",
                "updated_at": "2026-01-01T00:00:02Z", "status_url": format!("/api/orders/{id}"),
                "events_url": format!("/api/orders/{id}/events")})
        })
        .collect();
    let next_cursor = (to < IDS.len()).then(|| to.to_string());
    axum::Json(serde_json::json!({"items": items, "next_cursor": next_cursor})).into_response()
}

async fn serve() -> Result<(Client, Seen), Box<dyn std::error::Error>> {
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/api/orders", get(list))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((Client::new(url)?, seen))
}

#[tokio::test]
async fn the_cursor_leads_through_every_page_once() -> Result<(), Box<dyn std::error::Error>> {
    let (client, seen) = serve().await?;
    let mut options = ListOptions::default()
        .status(OrderStatus::Confirmed)
        .limit(2);
    let mut listed = Vec::new();
    loop {
        let page = client.list_orders(&options).await?;
        listed.extend(page.items.iter().map(|order| order.order_id.to_string()));
        match page.next_cursor {
            Some(cursor) => options = options.cursor(cursor),
            None => break,
        }
    }
    assert_eq!(listed, IDS);
    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 2, "two pages: {seen:?}");
    assert_eq!(seen[0].get("status").map(String::as_str), Some("confirmed"));
    assert_eq!(seen[0].get("limit").map(String::as_str), Some("2"));
    assert_eq!(seen[0].get("cursor"), None);
    assert_eq!(seen[1].get("cursor").map(String::as_str), Some("2"));
    assert_eq!(seen[1].get("status").map(String::as_str), Some("confirmed"));
    Ok(())
}

#[tokio::test]
async fn a_refused_cursor_is_a_validation_error() -> Result<(), Box<dyn std::error::Error>> {
    let (client, _) = serve().await?;
    let error = client
        .list_orders(&ListOptions::default().cursor("not-ours"))
        .await
        .expect_err("the server refuses the cursor");
    assert!(matches!(error, Error::Validation { .. }), "{error:?}");
    assert_eq!(error.kind(), "validation");
    Ok(())
}
