//! The operator console (`/console` on order-api): who gets in ([`access`]), and what an
//! operator sees and does in a real browser ([`browser`]).

mod access;
mod browser;
mod callbacks;

use anyhow::Result;

use saga_tests::{Orders, Stack};

/// A customer's key.
const ALICE: &str = "sk_test_alice_0001";
/// An operator's key.
const OPERATOR: &str = "op_test_console_0001";

/// A stack that requires keys: `alice` is a customer, `ops` an operator.
struct Shop {
    stack: Stack,
    /// order-api as alice calls it.
    customer: Orders,
}

impl Shop {
    async fn start(extra: &[(&str, &str)]) -> Result<Self> {
        let mut env = vec![
            ("ALLOW_ANONYMOUS", "false"),
            ("API_KEYS", "alice:sk_test_alice_0001"),
            ("OPERATOR_KEYS", "ops:op_test_console_0001"),
        ];
        env.extend_from_slice(extra);
        let stack = Stack::start_with_env(&env).await?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-api-key",
            reqwest::header::HeaderValue::from_static(ALICE),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()?;
        let customer = Orders::new(&http, stack.url(""));
        Ok(Self { stack, customer })
    }

    fn url(&self, path: &str) -> String {
        self.stack.url(path)
    }
}
