//! What each order asks for: weighted mixes of payment methods and SKUs, drawn deterministically.
//!
//! An order's choices depend only on `--seed` and the order's index, never on which worker
//! placed it or when, so two runs with the same seed place the same sequence of orders however
//! the requests interleave. The draw is SplitMix64 rather than a library generator so that the
//! sequence also stays the same across library upgrades.

use std::fmt;
use std::str::FromStr;

/// Weighted choices, written `name=weight,name=weight` (a bare `name` weighs 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// Each choice with its weight, in the order given, so that a draw maps to the same choice
    /// for the same text.
    entries: Vec<(String, u64)>,
    /// Sum of the weights (at least 1): a draw is scaled onto `0..total`.
    total: u64,
}

impl Mix {
    /// The choice for `draw`, a uniformly distributed 64-bit number.
    pub(crate) fn pick(&self, draw: u64) -> &str {
        // Scaling (not `%`) keeps every weight's share exact up to 2^-64.
        let mut point = ((u128::from(draw) * u128::from(self.total)) >> 64) as u64;
        for (name, weight) in &self.entries {
            if point < *weight {
                return name;
            }
            point -= weight;
        }
        // Unreachable for point < total; the last choice is the natural answer anyway.
        self.entries.last().map_or("", |(name, _)| name.as_str())
    }

    /// The choices and their weights, for the report.
    pub(crate) fn weights(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries
            .iter()
            .map(|(name, weight)| (name.as_str(), *weight))
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut entries: Vec<(String, u64)> = Vec::new();
        for part in text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let (name, weight) = match part.split_once('=') {
                Some((name, weight)) => {
                    let weight = weight.trim().parse::<u64>().map_err(|_| {
                        format!("{part:?}: the weight after `=` must be a whole number")
                    })?;
                    (name.trim(), weight)
                }
                None => (part, 1),
            };
            if name.is_empty() {
                return Err(format!("{part:?}: a name comes before `=`"));
            }
            if entries.iter().any(|(seen, _)| seen == name) {
                return Err(format!("{name:?} is listed twice"));
            }
            if weight > 0 {
                entries.push((name.to_owned(), weight));
            }
        }
        let total = entries
            .iter()
            .try_fold(0_u64, |sum, (_, weight)| sum.checked_add(*weight))
            .ok_or("the weights add up to more than 2^64")?;
        if total == 0 {
            return Err(format!(
                "{text:?}: give at least one choice with a weight above 0, like `a=90,b=10`"
            ));
        }
        Ok(Self { entries, total })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .entries
            .iter()
            .map(|(name, weight)| format!("{name}={weight}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// One step of SplitMix64: a well-mixed 64-bit number from any input.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What one order asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderSpec<'a> {
    /// The single line's SKU.
    pub(crate) sku: &'a str,
    /// The payment method (psp-sim decides the outcome from it).
    pub(crate) payment_method: &'a str,
}

/// The two mixes and the seed: everything that decides the sequence of orders.
#[derive(Debug, Clone)]
pub(crate) struct Mixes {
    /// Payment methods (`--mix`).
    pub(crate) payment: Mix,
    /// SKUs (`--skus`).
    pub(crate) skus: Mix,
    /// `--seed`.
    pub(crate) seed: u64,
}

impl Mixes {
    /// The choices of order number `index`.
    pub(crate) fn order(&self, index: u64) -> OrderSpec<'_> {
        let base = splitmix64(self.seed ^ splitmix64(index));
        OrderSpec {
            sku: self.skus.pick(splitmix64(base ^ 1)),
            payment_method: self.payment.pick(splitmix64(base ^ 2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(text: &str) -> Mix {
        text.parse().unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn parses_weights_and_bare_names() {
        let parsed = mix("pm_visa_4242=90, pm_card_declined=10");
        assert_eq!(
            parsed.weights().collect::<Vec<_>>(),
            [("pm_visa_4242", 90), ("pm_card_declined", 10)]
        );
        assert_eq!(parsed.to_string(), "pm_visa_4242=90,pm_card_declined=10");
        let bare = mix("WIDGET-42,GADGET-7=2");
        assert_eq!(
            bare.weights().collect::<Vec<_>>(),
            [("WIDGET-42", 1), ("GADGET-7", 2)]
        );
        // A zero weight is allowed (handy to switch a choice off) but never drawn.
        assert_eq!(mix("a=0,b=1").weights().collect::<Vec<_>>(), [("b", 1)]);
    }

    #[test]
    fn rejects_what_cannot_be_a_mix() {
        for bad in ["", "a=x", "=3", "a=1,a=2", "a=0", "a=-1", ","] {
            assert!(bad.parse::<Mix>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn draws_follow_the_weights() {
        let parsed = mix("a=90,b=10");
        let draws = 100_000_u64;
        let b = (0..draws)
            .filter(|i| parsed.pick(splitmix64(*i)) == "b")
            .count();
        let share = b as f64 / draws as f64;
        assert!((0.09..0.11).contains(&share), "b drawn {share}");
        assert_eq!(parsed.pick(0), "a");
        assert_eq!(parsed.pick(u64::MAX), "b");
    }

    #[test]
    fn the_same_seed_places_the_same_orders() {
        let mixes = |seed| Mixes {
            payment: mix("pm_visa_4242=90,pm_card_declined=10"),
            skus: mix("WIDGET-42=1,GADGET-7=1,DOOHICKEY-3=1"),
            seed,
        };
        let (one, again, other) = (mixes(7), mixes(7), mixes(8));
        let sequence = |m: &Mixes| {
            (0..50)
                .map(|i| m.order(i).sku.to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(sequence(&one), sequence(&again));
        assert_ne!(sequence(&one), sequence(&other));
        let skus: std::collections::BTreeSet<_> = (0..300).map(|i| one.order(i).sku).collect();
        assert_eq!(skus.len(), 3, "every SKU is drawn");
    }
}
