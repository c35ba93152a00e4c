//! Encode and decode of the envelopes every saga hop handles.
//!
//! Each hop of a saga decodes the event it consumes and encodes the one it produces, so these
//! costs are paid five times per confirmed order, on each service's consumer lane. The samples
//! are shaped like real traffic: one line, a trace context, a causation id where a real event has
//! one. Run with `cargo bench -p events` (add `-- --quick` for a fast look).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use events::{Currency, Envelope, EventId, LineItem, Money, OrderId, PaymentCompleted, Sku};

/// A W3C trace context as the outbox stamps it on every event.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn order_created() -> Result<Envelope, events::EventError> {
    let mut envelope = events::testing::order_created_envelope(OrderId::new(), 2499);
    envelope.meta.traceparent = Some(TRACEPARENT.to_owned());
    Ok(envelope)
}

fn payment_completed() -> Result<Envelope, events::EventError> {
    let mut envelope = Envelope::new(
        "/shop/payment-svc",
        PaymentCompleted {
            order_id: OrderId::new(),
            payment_id: "ch_3f9a1c2e7b5d4e8fa0b1c2d3".to_owned(),
            amount: Money::new(2499, Currency::USD),
            items: vec![LineItem {
                sku: Sku::parse("WIDGET-42")?,
                quantity: 1,
            }],
        },
        Some(EventId::new()),
    );
    envelope.meta.traceparent = Some(TRACEPARENT.to_owned());
    Ok(envelope)
}

fn envelope_benches(c: &mut Criterion) {
    let (Ok(created), Ok(completed)) = (order_created(), payment_completed()) else {
        panic!("the sample events are valid");
    };
    let created_bytes = created.encode();
    let completed_bytes = completed.encode();

    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Bytes(created_bytes.len() as u64));
    group.bench_function("encode order.created", |b| {
        b.iter(|| black_box(&created).encode())
    });
    group.bench_function("decode order.created", |b| {
        b.iter(|| Envelope::decode(black_box(&created_bytes)))
    });
    group.throughput(Throughput::Bytes(completed_bytes.len() as u64));
    group.bench_function("decode payment.completed", |b| {
        b.iter(|| Envelope::decode(black_box(&completed_bytes)))
    });
    group.finish();
}

criterion_group!(benches, envelope_benches);
criterion_main!(benches);
