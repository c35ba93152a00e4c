//! How `shopctl order` prints: lines for people, or one JSON object per line for scripts.
//!
//! The JSON is the API's own (an order as `GET /api/orders/{id}` answers it, a transition as
//! [`Transition`] serialises), so a script reads the same fields the HTTP API documents. Errors
//! go to stderr either way, so that stdout stays parseable.

use std::error::Error as _;

use serde::Serialize;
use shop_client::{Error, Order, OrderStatus, OrderSummary, Transition};

/// Where and how results are printed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Output {
    /// `--json`: one JSON object per line on stdout.
    json: bool,
}

impl Output {
    pub(super) fn new(json: bool) -> Self {
        Self { json }
    }

    pub(super) fn is_json(self) -> bool {
        self.json
    }

    /// One transition: `12:00:01.234  pending → payment_processing  order.created`.
    pub(super) fn transition(self, transition: &Transition) {
        if self.json {
            return json_line(transition);
        }
        let from = transition.from.map_or("", OrderStatus::as_str);
        let reason = transition
            .reason
            .map(|reason| format!(" ({})", reason.as_str()))
            .unwrap_or_default();
        println!(
            "{}  {from:>18} → {}{reason}  {}",
            transition.at.format("%H:%M:%S%.3f"),
            transition.to,
            transition.cause
        );
    }

    /// An order's history as transitions, for an order read at once rather than followed
    /// (`get`, or a `place --wait` that saw the end).
    pub(super) fn history(self, order: &Order) {
        let mut from = None;
        for entry in &order.history {
            self.transition(&Transition {
                order_id: order.order_id,
                seq: entry.seq,
                from,
                to: entry.status,
                at: entry.timestamp,
                reason: entry.reason,
                cause: entry.cause.clone(),
            });
            from = Some(entry.status);
        }
    }

    /// The order: its JSON, or a summary line (id, status, total, why it was cancelled).
    pub(super) fn order(self, order: &Order) {
        if self.json {
            return json_line(order);
        }
        let reason = order
            .cancellation_reason
            .map(|reason| format!(" ({})", reason.as_str()))
            .unwrap_or_default();
        println!(
            "{}  {}{reason}  total {}",
            order.order_id, order.status, order.total
        );
    }

    /// The header of a list in text.
    pub(super) fn list_header(self) {
        if !self.json {
            println!(
                "{:<36}  {:<18}  {:>14}  {:<24}  REASON",
                "ORDER", "STATUS", "TOTAL", "CREATED"
            );
        }
    }

    /// One order of a list: its JSON, or a row of the table.
    pub(super) fn summary(self, order: &OrderSummary) {
        if self.json {
            return json_line(order);
        }
        println!(
            "{:<36}  {:<18}  {:>14}  {:<24}  {}",
            order.order_id.to_string(),
            order.status.as_str(),
            order.total.to_string(),
            order
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            order
                .cancellation_reason
                .map_or("", |reason| reason.as_str()),
        );
    }
}

/// `value` as one line of JSON on stdout.
fn json_line(value: &impl Serialize) {
    match serde_json::to_string(value) {
        Ok(line) => println!("{line}"),
        // Only a map with non-string keys fails to serialise; none of ours has one.
        Err(error) => eprintln!("error: cannot print the answer as JSON: {error}"),
    }
}

/// Prints `error` on stderr for a person: the problem's title and detail and the fields at
/// fault when order-api refused, else the error and its causes on one line.
pub(super) fn report(error: &Error) {
    if let Some(problem) = error.problem() {
        let title = if problem.title.is_empty() {
            error.kind()
        } else {
            problem.title.as_str()
        };
        eprintln!("error: {title} ({}): {}", problem.status, problem.detail);
        if let Error::Validation { fields, .. } = error {
            for field in fields {
                // order-api names the field in the detail printed above; the name alone then.
                if field.detail == problem.detail {
                    eprintln!("  field: {}", field.field);
                } else {
                    eprintln!("  {}: {}", field.field, field.detail);
                }
            }
        }
        return;
    }
    let mut line = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        // reqwest repeats its own message in its first cause.
        let cause_text = cause.to_string();
        if !line.contains(&cause_text) {
            line.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    eprintln!("{line}");
    if matches!(error, Error::Transport(transport) if transport.is_connect()) {
        eprintln!(
            "hint: is the shop running? `shopctl up` serves order-api at http://127.0.0.1:8080"
        );
    }
}
