//! What every request pays around its handler: the middleware of `platform::http::observe`
//! (request id, `SERVER` span, duration histogram, database priority), measured on a route that
//! does nothing, against the same route without it. Logging is installed as a service installs
//! it (`info`, text), so the span's bookkeeping counts; no line is written.
//!
//! Run with `cargo bench -p platform --bench http`.

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

use platform::config::LogSettings;

fn observe(c: &mut Criterion) {
    let _telemetry = platform::telemetry::init("bench", &LogSettings::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let bare = Router::new().route("/orders/{order_id}", get(|| async { "ok" }));
    let observed = platform::http::observe("bench", bare.clone());
    let mut group = c.benchmark_group("http");
    for (name, router) in [("bare route", bare), ("observed route", observed)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let router = router.clone();
                async move {
                    let request = Request::get("/orders/ord_1")
                        .body(Body::empty())
                        .expect("a valid request");
                    let response = router.oneshot(request).await.expect("infallible");
                    axum::body::to_bytes(response.into_body(), 64)
                        .await
                        .expect("a short body")
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, observe);
criterion_main!(benches);
