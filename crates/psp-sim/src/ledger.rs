//! What the simulated provider knows: every request by idempotency key, its decided outcome and
//! when that outcome becomes visible.
//!
//! Outcomes follow the payment method, so tests and demos are deterministic:
//!
//! | payment method                       | outcome                                               |
//! |--------------------------------------|-------------------------------------------------------|
//! | `pm_visa_4242`, `pm_mastercard_5555` | succeeds                                              |
//! | `pm_slow_3s`                         | succeeds, after the slow delay (3 s by default)       |
//! | `pm_flaky`                           | the first requests answer `503`, then it succeeds     |
//! | `pm_card_declined`                   | fails: `card_declined`                                |
//! | `pm_insufficient_funds`              | fails: `insufficient_funds`                           |
//! | any other `pm_…`                     | fails: `invalid_payment_method`                       |
//!
//! The ledger lives in memory: after a restart the simulator has forgotten earlier requests (a
//! real provider would not). payment-svc keeps its own records, so a repeated request after a
//! restart is simply a new one with the same outcome. For the same reason requests are kept
//! only for a retention period (`PSP_SIM_RETENTION_S`, an hour by default): a long load test
//! would otherwise grow the simulator by every charge it ever saw.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use psp_contract::{Charge, CreateCharge, CreateRefund, FailureCode, Object, Refund, Status};

/// Timing and failure knobs.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Time from a request to its outcome (and webhook).
    pub delay: Duration,
    /// The same for `pm_slow_3s`.
    pub slow_delay: Duration,
    /// Requests of `pm_flaky` that answer `503` before one is accepted.
    pub flaky_failures: u32,
    /// How long a decided request is remembered (idempotency, refunds of its charge).
    pub retention: Duration,
}

/// Insertions between two sweeps of expired entries: the sweep walks the whole ledger, so it
/// runs once per this many requests.
const SWEEP_EVERY: usize = 4096;

/// What one idempotency key stands for.
#[derive(Debug)]
struct Entry {
    /// The request as first sent, to refuse a different request under the same key.
    request: String,
    /// The object in its final state.
    decided: Object,
    /// When the final state becomes visible; until then the object shows as `pending`.
    decided_at: Instant,
}

impl Entry {
    fn view(&self, now: Instant) -> Object {
        if now >= self.decided_at {
            return self.decided.clone();
        }
        let mut pending = self.decided.clone();
        match &mut pending {
            Object::Charge(charge) => {
                charge.status = Status::Pending;
                charge.failure_code = None;
                charge.failure_message = None;
            }
            Object::Refund(refund) => refund.status = Status::Pending,
        }
        pending
    }
}

/// The answer to a request.
#[derive(Debug)]
pub enum Answer {
    /// A new request: its final object and how long until it is decided (then notified).
    Created {
        /// The object as the merchant sees it now (`pending`).
        view: Object,
        /// The final object, for the webhook.
        decided: Object,
        /// Time until the outcome.
        delay: Duration,
    },
    /// The same key and body as before: the original object, as it stands now.
    Repeated(Object),
    /// The provider is "unavailable" for this request (`pm_flaky`).
    Unavailable {
        /// Which failed attempt this was.
        attempt: u32,
    },
    /// The same key was used for a different request.
    KeyReused,
    /// A refund of a charge that did not succeed.
    NotRefundable,
}

/// The requests the provider remembers, by idempotency key, and their charges by id.
#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<String, Entry>,
    /// Charge id → its final status, for refunds (which name the charge, not its key).
    charges: HashMap<String, Status>,
    /// Insertions since the last sweep.
    since_sweep: usize,
}

impl Entries {
    /// Forgets requests decided longer than `retention` ago.
    fn sweep(&mut self, now: Instant, retention: Duration) {
        let Some(horizon) = now.checked_sub(retention) else {
            return;
        };
        let charges = &mut self.charges;
        self.by_key.retain(|_, entry| {
            let keep = entry.decided_at >= horizon;
            if !keep && let Object::Charge(charge) = &entry.decided {
                charges.remove(&charge.id);
            }
            keep
        });
        self.since_sweep = 0;
    }
}

/// The provider's memory.
#[derive(Debug)]
pub struct Ledger {
    behaviour: Behaviour,
    entries: Mutex<Entries>,
    /// Failed attempts of `pm_flaky` by idempotency key, until the request is accepted.
    flaky_attempts: Mutex<HashMap<String, u32>>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            entries: Mutex::default(),
            flaky_attempts: Mutex::default(),
        }
    }

    /// Takes a charge request.
    pub fn charge(&self, key: &str, request: &CreateCharge) -> Answer {
        let fingerprint = fingerprint(request);
        if let Some(answer) = self.repeat(key, &fingerprint) {
            return answer;
        }
        if request.payment_method == "pm_flaky" {
            let mut attempts = self
                .flaky_attempts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let failed = attempts.entry(key.to_owned()).or_default();
            if *failed < self.behaviour.flaky_failures {
                *failed += 1;
                return Answer::Unavailable { attempt: *failed };
            }
        }
        let (status, failure) = decide(&request.payment_method);
        let decided = Object::Charge(Charge {
            id: format!("ch_{}", Uuid::new_v4().simple()),
            status,
            amount_minor: request.amount_minor,
            currency: request.currency.clone(),
            reference: request.reference.clone(),
            failure_code: failure.map(|(code, _)| code),
            failure_message: failure.map(|(_, message)| message.to_owned()),
        });
        let delay = if request.payment_method == "pm_slow_3s" {
            self.behaviour.slow_delay
        } else {
            self.behaviour.delay
        };
        self.create(key, fingerprint, decided, delay)
    }

    /// Takes a refund request. A refund of a charge this ledger saw fail is refused; a refund
    /// of a charge it does not know (asked before a restart of the simulator) is accepted.
    pub fn refund(&self, key: &str, request: &CreateRefund) -> Answer {
        let fingerprint = fingerprint(request);
        if let Some(answer) = self.repeat(key, &fingerprint) {
            return answer;
        }
        if self.charge_status(&request.charge_id) == Some(Status::Failed) {
            return Answer::NotRefundable;
        }
        let decided = Object::Refund(Refund {
            id: format!("re_{}", Uuid::new_v4().simple()),
            charge_id: request.charge_id.clone(),
            status: Status::Succeeded,
            amount_minor: request.amount_minor,
            reference: request.reference.clone(),
        });
        self.create(key, fingerprint, decided, self.behaviour.delay)
    }

    fn repeat(&self, key: &str, fingerprint: &str) -> Option<Answer> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.by_key.get(key)?;
        Some(if entry.request == fingerprint {
            Answer::Repeated(entry.view(Instant::now()))
        } else {
            Answer::KeyReused
        })
    }

    fn create(&self, key: &str, request: String, decided: Object, delay: Duration) -> Answer {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Two identical requests racing: the first one in wins, the other is a repeat.
        if let Some(entry) = entries.by_key.get(key) {
            return if entry.request == request {
                Answer::Repeated(entry.view(now))
            } else {
                Answer::KeyReused
            };
        }
        let entry = Entry {
            request,
            decided: decided.clone(),
            decided_at: now + delay,
        };
        let view = entry.view(now);
        if let Object::Charge(charge) = &decided {
            entries.charges.insert(charge.id.clone(), charge.status);
        }
        entries.by_key.insert(key.to_owned(), entry);
        entries.since_sweep += 1;
        if entries.since_sweep >= SWEEP_EVERY {
            entries.sweep(now, self.behaviour.retention);
        }
        drop(entries);
        self.flaky_attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        Answer::Created {
            view,
            decided,
            delay,
        }
    }

    /// The final status of charge `id`, if known.
    fn charge_status(&self, id: &str) -> Option<Status> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.charges.get(id).copied()
    }
}

/// The outcome of a charge with `payment_method`.
fn decide(payment_method: &str) -> (Status, Option<(FailureCode, &'static str)>) {
    let failure = match payment_method {
        "pm_visa_4242" | "pm_mastercard_5555" | "pm_slow_3s" | "pm_flaky" => {
            return (Status::Succeeded, None);
        }
        "pm_card_declined" => (FailureCode::CardDeclined, "Your card was declined."),
        "pm_insufficient_funds" => (
            FailureCode::InsufficientFunds,
            "Your card has insufficient funds.",
        ),
        _ => (
            FailureCode::InvalidPaymentMethod,
            "The payment method is not known.",
        ),
    };
    (Status::Failed, Some(failure))
}

fn fingerprint(request: &impl serde::Serialize) -> String {
    serde_json::to_string(request).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        Ledger::new(Behaviour {
            delay: Duration::ZERO,
            slow_delay: Duration::from_secs(3600),
            flaky_failures: 2,
            retention: Duration::from_secs(3600),
        })
    }

    fn charge(method: &str) -> CreateCharge {
        CreateCharge {
            amount_minor: 100,
            currency: "EUR".into(),
            payment_method: method.into(),
            reference: "ord_1".into(),
            webhook_url: None,
        }
    }

    #[test]
    fn outcomes_follow_the_payment_method() {
        let cases = [
            ("pm_visa_4242", Status::Succeeded, None),
            (
                "pm_card_declined",
                Status::Failed,
                Some(FailureCode::CardDeclined),
            ),
            (
                "pm_insufficient_funds",
                Status::Failed,
                Some(FailureCode::InsufficientFunds),
            ),
            (
                "pm_other",
                Status::Failed,
                Some(FailureCode::InvalidPaymentMethod),
            ),
        ];
        let ledger = ledger();
        for (method, status, code) in cases {
            let Answer::Created {
                decided: Object::Charge(decided),
                ..
            } = ledger.charge(method, &charge(method))
            else {
                panic!("{method}: not created");
            };
            assert_eq!(
                (decided.status, decided.failure_code),
                (status, code),
                "{method}"
            );
        }
    }

    #[test]
    fn a_repeat_gets_the_original_and_a_different_body_is_refused() {
        let ledger = ledger();
        let Answer::Created { decided, .. } = ledger.charge("k", &charge("pm_visa_4242")) else {
            panic!("not created");
        };
        let Answer::Repeated(again) = ledger.charge("k", &charge("pm_visa_4242")) else {
            panic!("not a repeat");
        };
        assert_eq!(
            again, decided,
            "decided at once (zero delay), same charge id"
        );
        assert!(matches!(
            ledger.charge("k", &charge("pm_card_declined")),
            Answer::KeyReused
        ));
    }

    #[test]
    fn slow_charges_show_pending_until_decided() {
        let ledger = ledger();
        let Answer::Created { view, delay, .. } = ledger.charge("s", &charge("pm_slow_3s")) else {
            panic!("not created");
        };
        assert_eq!(
            (view.status(), delay),
            (Status::Pending, Duration::from_secs(3600))
        );
        let Answer::Repeated(again) = ledger.charge("s", &charge("pm_slow_3s")) else {
            panic!("not a repeat");
        };
        assert_eq!(again.status(), Status::Pending);
    }

    #[test]
    fn flaky_fails_twice_per_key_then_succeeds() {
        let ledger = ledger();
        assert!(matches!(
            ledger.charge("f", &charge("pm_flaky")),
            Answer::Unavailable { attempt: 1 }
        ));
        assert!(matches!(
            ledger.charge("f", &charge("pm_flaky")),
            Answer::Unavailable { attempt: 2 }
        ));
        assert!(matches!(
            ledger.charge("f", &charge("pm_flaky")),
            Answer::Created { .. }
        ));
    }

    #[test]
    fn failed_charges_cannot_be_refunded() {
        let ledger = ledger();
        let Answer::Created { decided, .. } = ledger.charge("d", &charge("pm_card_declined"))
        else {
            panic!("not created");
        };
        let refund = |charge_id: &str| CreateRefund {
            charge_id: charge_id.into(),
            amount_minor: 100,
            reference: "ord_1".into(),
            webhook_url: None,
        };
        assert!(matches!(
            ledger.refund("r1", &refund(decided.id())),
            Answer::NotRefundable
        ));
        assert!(matches!(
            ledger.refund("r2", &refund("ch_unknown")),
            Answer::Created { .. }
        ));
    }

    #[test]
    fn decided_requests_are_forgotten_after_the_retention() {
        let ledger = ledger();
        let Answer::Created {
            decided: Object::Charge(declined),
            ..
        } = ledger.charge("old", &charge("pm_card_declined"))
        else {
            panic!("not created");
        };
        assert_eq!(ledger.charge_status(&declined.id), Some(Status::Failed));
        let later = Instant::now() + Duration::from_secs(7200);
        ledger
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sweep(later, Duration::from_secs(3600));
        assert_eq!(
            ledger.charge_status(&declined.id),
            None,
            "the charge is forgotten"
        );
        assert!(
            matches!(
                ledger.charge("old", &charge("pm_card_declined")),
                Answer::Created { .. }
            ),
            "the key is free again"
        );
    }
}
