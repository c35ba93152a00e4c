//! `GET /api/orders`: each principal lists its own orders only, newest first, and paging with
//! the cursor (or the `Link` header) yields every order exactly once, in order, even while new
//! orders arrive.

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::json;

use saga_tests::{Accepted, Problem, Stack, Status, eventually};

const ALICE: &str = "sk_test_alice_0001";
const BOB: &str = "sk_test_bob_00002";

/// A page as the API answers it.
#[derive(Debug, Deserialize)]
struct Page {
    items: Vec<Summary>,
    next_cursor: Option<String>,
}

/// One order of a page (the fields this test reads).
#[derive(Debug, Deserialize)]
struct Summary {
    order_id: String,
    status: Status,
    total_minor: i64,
    status_url: String,
}

/// order-api as one principal calls it: with `key`, or anonymously without one.
struct Client<'a> {
    stack: &'a Stack,
    http: reqwest::Client,
}

impl<'a> Client<'a> {
    fn new(stack: &'a Stack, key: Option<&str>) -> Result<Self> {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert("x-api-key", HeaderValue::from_str(key)?);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self { stack, http })
    }

    /// Places an order of one widget paid with `payment_method`; returns its id.
    async fn place(&self, payment_method: &str) -> Result<String> {
        let body = json!({"user_id": "usr_list", "items": [{"sku": "WIDGET-42", "quantity": 1}],
                          "payment_method": payment_method});
        let response = self
            .http
            .post(self.stack.url("/api/orders"))
            .json(&body)
            .send()
            .await?;
        ensure!(response.status() == StatusCode::ACCEPTED, "{response:?}");
        Ok(response.json::<Accepted>().await?.order_id.to_string())
    }

    /// `GET` of `path_and_query`, which must answer a page; with the next page's URL from the
    /// `Link` header, if there is one.
    async fn page(&self, path_and_query: &str) -> Result<(Page, Option<String>)> {
        let response = self.http.get(self.stack.url(path_and_query)).send().await?;
        ensure!(response.status() == StatusCode::OK, "{response:?}");
        let next = match response.headers().get("link") {
            None => None,
            Some(link) => {
                let link = link.to_str()?;
                let target = link
                    .strip_prefix('<')
                    .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
                    .with_context(|| format!("not a next link: {link}"))?;
                Some(target.to_owned())
            }
        };
        let page: Page = response.json().await?;
        ensure!(
            page.next_cursor.is_some() == next.is_some(),
            "the Link header and next_cursor disagree: {page:?} {next:?}"
        );
        Ok((page, next))
    }

    /// Every order of the listing that starts at `first`, page by page; `between` runs after
    /// each page.
    async fn every_page(
        &self,
        first: &str,
        mut between: impl AsyncFnMut() -> Result<()>,
    ) -> Result<Vec<Vec<Summary>>> {
        let mut pages = Vec::new();
        let mut url = Some(first.to_owned());
        while let Some(current) = url {
            let (page, next) = self.page(&current).await?;
            pages.push(page.items);
            between().await?;
            url = next;
        }
        Ok(pages)
    }

    /// The ids of every order of the listing at `first`, in order.
    async fn ids(&self, first: &str) -> Result<Vec<String>> {
        let pages = self.every_page(first, async || Ok(())).await?;
        Ok(pages
            .into_iter()
            .flatten()
            .map(|order| order.order_id)
            .collect())
    }
}

#[tokio::test]
async fn each_principal_pages_through_its_own_orders_newest_first() -> Result<()> {
    let stack =
        Stack::start_with_env(&[("API_KEYS", "alice:sk_test_alice_0001,bob:sk_test_bob_00002")])
            .await?;
    let alice = Client::new(&stack, Some(ALICE))?;
    let bob = Client::new(&stack, Some(BOB))?;
    let anonymous = Client::new(&stack, None)?;

    // Alice's orders, one after the other (so each is newer than the one before), two of them
    // declined; Bob's and an anonymous one in between.
    let mut alices = Vec::new();
    let mut declined = Vec::new();
    for n in 0..7 {
        let method = if n % 3 == 1 {
            "pm_card_declined"
        } else {
            "pm_visa_4242"
        };
        let id = alice.place(method).await?;
        if method == "pm_card_declined" {
            declined.push(id.clone());
        }
        alices.push(id);
    }
    let bobs = vec![bob.place("pm_visa_4242").await?];
    let anonymous_ones = vec![anonymous.place("pm_visa_4242").await?];
    let newest_first = |ids: &[String]| ids.iter().rev().cloned().collect::<Vec<_>>();

    // Each sees its own only.
    assert_eq!(alice.ids("/api/orders").await?, newest_first(&alices));
    assert_eq!(bob.ids("/api/orders").await?, bobs);
    assert_eq!(anonymous.ids("/api/orders").await?, anonymous_ones);

    // Three a page: 3 + 3 + 1, every order once, in order, though Alice places an order after
    // each page (newer than every page she holds: it shifts none of them).
    let mut placed_meanwhile = Vec::new();
    let pages = alice
        .every_page("/api/orders?limit=3", async || {
            placed_meanwhile.push(alice.place("pm_visa_4242").await?);
            Ok(())
        })
        .await?;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let listed: Vec<&Summary> = pages.iter().flatten().collect();
    let ids: Vec<String> = listed.iter().map(|order| order.order_id.clone()).collect();
    assert_eq!(ids, newest_first(&alices));
    for order in &listed {
        assert_eq!(order.status_url, format!("/api/orders/{}", order.order_id));
        assert_eq!(order.total_minor, 2499);
    }
    let (newest, _) = alice.page("/api/orders?limit=1").await?;
    assert_eq!(
        newest.items.first().map(|order| &order.order_id),
        placed_meanwhile.last()
    );

    // A filter by status, paged too: the declined orders once they are cancelled.
    let cancelled = eventually(|| async {
        let ids = alice
            .ids("/api/orders?status=cancelled&limit=1")
            .await
            .map_err(|error| format!("{error:#}"))?;
        if ids.len() == declined.len() {
            Ok(ids)
        } else {
            Err(format!("cancelled so far: {ids:?}"))
        }
    })
    .await?;
    assert_eq!(cancelled, newest_first(&declined));
    let (confirmed, _) = alice.page("/api/orders?status=confirmed&limit=100").await?;
    assert!(
        confirmed
            .items
            .iter()
            .all(|order| order.status == Status::Confirmed && !declined.contains(&order.order_id)),
        "{confirmed:?}"
    );

    // A cursor the API did not give, a bad status or limit: 400 problems.
    for query in [
        "cursor=bm90IGEga2V5",
        "cursor=%25%25",
        "status=done",
        "limit=101",
    ] {
        let response = alice
            .http
            .get(stack.url(&format!("/api/orders?{query}")))
            .send()
            .await?;
        Problem::expect(response, StatusCode::BAD_REQUEST)
            .await
            .with_context(|| query.to_owned())?;
    }
    Ok(())
}
