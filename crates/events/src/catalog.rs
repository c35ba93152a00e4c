//! The product catalog: prices for order-api, initial stock for inventory-svc.
//!
//! One file (`config/catalog.json`, or `CATALOG_PATH`) so both services agree on what exists;
//! here, in the shared vocabulary, so that neither service depends on the other for it.
//! Prices are decimal strings in the file ("24.99"), integer minor units in memory.
//!
//! Parsing only: each service reads the file it is configured with and hands its text to
//! [`Catalog::parse`].

use std::collections::HashMap;

use serde::Deserialize;

use crate::{Currency, EventError, Money, Sku};

/// One product.
#[derive(Clone, Debug)]
pub struct Product {
    /// Its SKU.
    pub sku: Sku,
    /// Display name.
    pub name: String,
    /// Price of one unit.
    pub unit_price: Money,
    /// Stock inventory-svc starts with when its database is new.
    pub initial_stock: u32,
}

/// Every product by SKU.
#[derive(Clone, Debug)]
pub struct Catalog {
    products: HashMap<Sku, Product>,
    /// The currency of every price.
    pub currency: Currency,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    currency: Currency,
    products: Vec<ProductFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductFile {
    sku: Sku,
    name: String,
    unit_price: String,
    initial_stock: u32,
}

impl Catalog {
    /// The catalog shipped with the project (`config/catalog.json`), used when no file is
    /// configured.
    pub const BUILT_IN: &'static str = include_str!("../../../config/catalog.json");

    /// The built-in catalog, parsed.
    pub fn built_in() -> Result<Self, EventError> {
        Self::parse(Self::BUILT_IN)
    }

    /// Parses catalog JSON.
    pub fn parse(text: &str) -> Result<Self, EventError> {
        let file: CatalogFile = serde_json::from_str(text).map_err(EventError::InvalidCatalog)?;
        let mut products = HashMap::with_capacity(file.products.len());
        for product in file.products {
            let minor = parse_price(&product.unit_price).ok_or_else(|| {
                EventError::invalid(
                    "catalog",
                    format!(
                        "{}: price {:?} is not like \"24.99\"",
                        product.sku, product.unit_price
                    ),
                )
            })?;
            let product = Product {
                unit_price: Money::new(minor, file.currency),
                sku: product.sku,
                name: product.name,
                initial_stock: product.initial_stock,
            };
            if let Some(previous) = products.insert(product.sku.clone(), product) {
                return Err(EventError::invalid(
                    "catalog",
                    format!("{} is listed twice", previous.sku),
                ));
            }
        }
        Ok(Self {
            products,
            currency: file.currency,
        })
    }

    /// The product with `sku`, if sold.
    pub fn get(&self, sku: &Sku) -> Option<&Product> {
        self.products.get(sku)
    }

    /// Every product, in no particular order.
    pub fn products(&self) -> impl Iterator<Item = &Product> {
        self.products.values()
    }
}

/// "24.99" → 2499; at most two decimals, no sign, no exponent.
fn parse_price(text: &str) -> Option<i64> {
    let (units, cents) = match text.split_once('.') {
        Some((units, cents)) if (1..=2).contains(&cents.len()) => (units, cents),
        Some(_) => return None,
        None => (text, "0"),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(units) || !digits(cents) {
        return None;
    }
    let cents: i64 = if cents.len() == 1 {
        cents.parse::<i64>().ok()? * 10
    } else {
        cents.parse().ok()?
    };
    units
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_catalog_is_an_error() {
        let listed_twice = r#"{"currency": "USD", "products": [
            {"sku": "A-1", "name": "a", "unit_price": "1.00", "initial_stock": 1},
            {"sku": "A-1", "name": "a", "unit_price": "2.00", "initial_stock": 1}]}"#;
        let bad_price = r#"{"currency": "USD", "products": [
            {"sku": "A-1", "name": "a", "unit_price": "1,00", "initial_stock": 1}]}"#;
        for text in [listed_twice, bad_price, "{}", "not json"] {
            assert!(Catalog::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn parses_prices_exactly() {
        assert_eq!(parse_price("24.99"), Some(2499));
        assert_eq!(parse_price("12.5"), Some(1250));
        assert_eq!(parse_price("149"), Some(14900));
        for bad in ["", "-1.00", "1.999", "1e3", ".50", "abc"] {
            assert_eq!(parse_price(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn built_in_catalog_has_the_documented_products() -> Result<(), EventError> {
        let catalog = Catalog::built_in()?;
        let widget = catalog.get(&Sku::parse("WIDGET-42")?);
        assert_eq!(widget.map(|p| p.unit_price.amount_minor), Some(2499));
        assert!(
            catalog.products().any(|p| p.initial_stock == 0),
            "an out-of-stock item"
        );
        Ok(())
    }
}
