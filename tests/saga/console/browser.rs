//! The console in a real browser (headless Chromium driven over the DevTools protocol): an
//! operator signs in, reads every saga with the right counts, follows new ones live, opens a
//! timeline, signs out; a poisoned event shows among the dead letters and a replay from the
//! page completes its order. A screenshot of each page is kept (see `docs/testing.md`).

use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::Value;

use saga_tests::{Browser, Key, Page, SameSite};
use saga_tests::{KafkaTool, OtlpReceiver, ServiceKind, Stack, Status, is_event};

use super::{ALICE, OPERATOR, Shop};

/// A trace viewer's URL form (nothing listens there; the page only links to it).
const TRACE_URL_TEMPLATE: &str = "http://phoenix.example:6006/redirects/traces/{trace_id}";

/// How long a page may take to show what the test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

/// The number a count card shows.
async fn count(page: &Page, name: &str) -> Result<i64> {
    let value = page
        .eval(&format!(
            "Number(document.querySelector('[data-count=\"{name}\"]').textContent)"
        ))
        .await?;
    Ok(value.as_f64().unwrap_or(-1.0) as i64)
}

/// Screenshots at a desk and on a phone; on the phone the page itself must not scroll sideways
/// (wide tables scroll inside their frame).
async fn screenshots(page: &Page, name: &str) -> Result<()> {
    page.set_viewport(1280, 800, false).await?;
    page.screenshot(&format!("{name}-1280")).await?;
    page.set_viewport(390, 844, true).await?;
    let fits = page
        .eval("document.documentElement.scrollWidth <= window.innerWidth")
        .await?;
    page.screenshot(&format!("{name}-phone")).await?;
    ensure!(
        fits == Value::Bool(true),
        "{name} overflows a phone's width"
    );
    page.set_viewport(1280, 800, false).await?;
    Ok(())
}

#[tokio::test]
async fn an_operator_signs_in_and_follows_every_saga_in_a_browser() -> Result<()> {
    // Traced (spans go to a receiver of the test's own), so that every order has a trace to link.
    let (_spans, endpoint) = OtlpReceiver::start().await?;
    let shop = Shop::start(&[
        ("TRACE_URL_TEMPLATE", TRACE_URL_TEMPLATE),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
    ])
    .await?;
    let mut orders = Vec::new();
    for (sku, method) in [
        ("WIDGET-42", "pm_visa_4242"),
        ("GADGET-7", "pm_visa_4242"),
        ("DOOHICKEY-3", "pm_mastercard_5555"),
        ("WIDGET-42", "pm_card_declined"),
        ("GIZMO-9", "pm_visa_4242"),
    ] {
        orders.push(shop.customer.place_order(sku, 1, method).await?);
    }
    for order_id in &orders {
        shop.customer.wait_terminal(order_id).await?;
    }

    let browser = Browser::launch().await?;
    let page = browser.new_page().await?;
    // Not signed in: sent to the form, which a customer's key does not pass.
    page.goto(&shop.url("/console")).await?;
    ensure!(
        page.url().await?.contains("/console/login"),
        "{}",
        page.url().await?
    );
    screenshots(&page, "console-login").await?;
    page.fill("#key", ALICE).await?;
    page.click("#login button[type=submit]").await?;
    page.wait_for(
        "document.getElementById('message').textContent.includes('customer')",
        PATIENCE,
    )
    .await?;
    // The operator's key opens the console (typed and sent with the keyboard alone), as a
    // cookie scripts cannot read.
    page.fill("#key", OPERATOR).await?;
    page.press_key(Key::Enter).await?;
    page.wait_for("document.body.dataset.page === 'sagas'", PATIENCE)
        .await?;
    let session = page
        .cookies()
        .await?
        .into_iter()
        .find(|cookie| cookie.name == "shop_console")
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))?;
    ensure!(session.http_only && session.same_site == Some(SameSite::Strict));

    // Every order, with the right counts, each linked to its timeline and its trace.
    page.wait_for(
        "document.querySelectorAll('#orders tbody tr[data-order-id]').length === 5",
        PATIENCE,
    )
    .await?;
    page.wait_for(
        "document.querySelector('[data-count=\"confirmed\"]').textContent === '3'",
        PATIENCE,
    )
    .await?;
    assert_eq!(count(&page, "cancelled").await?, 2);
    assert_eq!(count(&page, "all").await?, 5);
    assert_eq!(count(&page, "stuck").await?, 0);
    let links = page
        .eval("Array.from(document.querySelectorAll('#orders tbody a.trace-link'), (a) => a.href)")
        .await?;
    let links: Vec<String> = serde_json::from_value(links)?;
    ensure!(links.len() == 5, "{links:?}");
    ensure!(
        links
            .iter()
            .all(|link| link.starts_with("http://phoenix.example:6006/redirects/traces/")),
        "{links:?}"
    );
    screenshots(&page, "console-sagas").await?;

    // A filter by count: the cancelled ones only, with their reasons.
    page.click("[data-filter-status=cancelled]").await?;
    page.wait_for(
        "document.querySelectorAll('#orders tbody tr[data-order-id]').length === 2 && \
         [...document.querySelectorAll('#orders tbody tr[data-order-id]')].every((tr) => tr.dataset.status === 'cancelled')",
        PATIENCE,
    )
    .await?;
    ensure!(page.url().await?.contains("status=cancelled"));
    page.click("[data-filter-status='']").await?;

    // Live: an order placed while the page is open appears, counted, without a reload.
    page.eval("window.notReloaded = true").await?;
    let live = shop
        .customer
        .place_order("WIDGET-42", 1, "pm_visa_4242")
        .await?;
    shop.customer.wait_terminal(&live).await?;
    page.wait_for(
        &format!(
            "document.querySelector('[data-count=\"confirmed\"]').textContent === '4' && \
             document.querySelector('#orders tbody tr[data-order-id=\"{live}\"]') !== null"
        ),
        PATIENCE,
    )
    .await?;
    ensure!(page.eval("window.notReloaded === true").await? == Value::Bool(true));

    // The timeline of the out-of-stock order says why it was cancelled.
    let sold_out = &orders[4];
    page.click(&format!("#orders tbody tr[data-order-id=\"{sold_out}\"] a"))
        .await?;
    page.wait_for(
        "document.getElementById('reason') && document.getElementById('reason').textContent === 'out_of_stock'",
        PATIENCE,
    )
    .await?;
    screenshots(&page, "console-timeline").await?;

    // Signing out ends the session: the console sends the browser back to the form. The page's
    // first list is awaited: signed out under it, that request would be answered 401.
    page.goto(&shop.url("/console")).await?;
    page.wait_for(
        "document.body.dataset.page === 'sagas' && \
         document.getElementById('main').dataset.state === 'ready' && \
         document.querySelectorAll('#orders tbody tr[data-order-id]').length === 6",
        PATIENCE,
    )
    .await?;
    page.click("#sign-out").await?;
    page.wait_for("location.pathname === '/console/login'", PATIENCE)
        .await?;
    page.goto(&shop.url("/console/dead-letters")).await?;
    ensure!(
        page.url().await?.contains("/console/login?next="),
        "{}",
        page.url().await?
    );
    // Nothing went wrong in the pages but the customer's sign-in, refused with 403 on purpose.
    let errors: Vec<String> = page
        .errors()
        .into_iter()
        .filter(|error| !(error.contains("403") && error.contains("/console/login")))
        .collect();
    ensure!(errors.is_empty(), "{errors:?}");
    Ok(())
}

#[tokio::test]
async fn a_poisoned_event_is_replayed_from_the_console_and_its_order_completes() -> Result<()> {
    // `shopctl up`'s way: requests on loopback act as the developer, who needs no sign-in.
    let stack = Stack::start_with_env(&[
        ("DB_BUSY_TIMEOUT_MS", "20"),
        ("CONSUMER_MAX_ATTEMPTS", "2"),
        ("CONSUMER_INITIAL_BACKOFF_MS", "10"),
    ])
    .await?;
    // inventory-svc cannot write: the payment's event is dead-lettered after two attempts.
    let lock = stack.lock_db(ServiceKind::Inventory)?;
    let order_id = stack.place_order("WIDGET-42", 2, "pm_visa_4242").await?;
    let kafka: KafkaTool = stack.kafka()?;
    kafka.find("payments.dlq", |m| {
        is_event(m, "shop.payment.completed.v1", &order_id)
    })?;
    stack
        .wait_order(&order_id, |o| o.status == Status::PaymentConfirmed)
        .await?;
    lock.release()?;

    let browser = Browser::launch().await?;
    let page = browser.new_page().await?;
    page.goto(&stack.url("/console/dead-letters")).await?;
    let row = format!("#letters tbody tr[data-order-id=\"{order_id}\"]");
    page.wait_for(
        &format!("document.querySelector('{row}') !== null"),
        PATIENCE,
    )
    .await?;
    let texts = page.texts(&format!("{row} td")).await?.join(" | ");
    for expected in [
        "payments.dlq",
        "payment.completed",
        "inventory-svc",
        "transient",
    ] {
        ensure!(texts.contains(expected), "{expected} missing: {texts}");
    }
    screenshots(&page, "console-dead-letters").await?;

    // Select it, replay, confirm.
    page.click(&format!("{row} input[data-select]")).await?;
    page.click("#replay-selected").await?;
    page.wait_for("document.getElementById('confirm').open", PATIENCE)
        .await?;
    page.click("#confirm-ok").await?;
    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(order.status, Status::Confirmed, "{order}");
    // Replayed, it leaves the list of letters to handle.
    page.wait_for(
        &format!("document.querySelector('{row}') === null"),
        PATIENCE,
    )
    .await?;
    ensure!(page.errors().is_empty(), "{:?}", page.errors());
    Ok(())
}
