//! The saga timeline of an order, as JSON (`GET /api/orders/{id}/timeline`) and as the page
//! people read (`GET /orders/{id}`), drawn by a real browser: headless Chromium loads the page
//! from order-api, runs its script, and the test reads the resulting DOM, on a desktop screen
//! and a phone's (screenshots of both in the artifacts directory).

use anyhow::{Context, Result};
use reqwest::StatusCode;

use saga_tests::{Browser, DEADLINE, Page, Problem, Stack, Status, TimelineEvent, wait_for};

/// The trace viewer order-api is told about; nothing listens there, the page only links to it.
/// A trace viewer that is not Jaeger (Phoenix's form): the page fills in the template.
const TRACE_URL_TEMPLATE: &str = "http://phoenix.example:6006/redirects/traces/{trace_id}";
/// What every link of [`TRACE_URL_TEMPLATE`] starts with.
const TRACE_URL_PREFIX: &str = "http://phoenix.example:6006/redirects/traces/";

/// An out-of-stock order's saga, in the order it happens.
const OUT_OF_STOCK: [&str; 6] = [
    "order.created",
    "payment.initiated",
    "payment.completed",
    "stock.rejected",
    "payment.refunded",
    "order.cancelled",
];

/// Places a sold-out order and waits until its saga is over and every event of it is recorded:
/// a reply from another topic (`stock.rejected`) may be recorded after the order is cancelled.
async fn out_of_stock_order(stack: &Stack) -> Result<String> {
    let order_id = stack.place_order("GIZMO-9", 1, "pm_visa_4242").await?;
    stack.wait_terminal(&order_id).await?;
    let expected = i64::try_from(OUT_OF_STOCK.len())?;
    wait_for(
        || stack.saga_events_for(&order_id),
        |recorded| *recorded == expected,
    )
    .await?;
    Ok(order_id)
}

async fn get(stack: &Stack, path: &str) -> Result<reqwest::Response> {
    Ok(stack.http.get(stack.url(path)).send().await?)
}

fn service_of(event_type: &str) -> &'static str {
    match event_type.split('.').next() {
        Some("order") => "order-api",
        Some("payment") => "payment-svc",
        Some("stock") => "inventory-svc",
        _ => "unknown",
    }
}

#[tokio::test]
async fn an_out_of_stock_order_reads_as_a_timeline_of_its_events() -> Result<()> {
    let stack = Stack::start().await?;
    let order_id = out_of_stock_order(&stack).await?;
    let timeline = stack.timeline(&order_id).await?;
    let events = &timeline.events;

    assert_eq!(timeline.order_id.to_string(), order_id);
    assert_eq!(timeline.status, Status::Cancelled);
    assert_eq!(
        timeline.cancellation_reason.as_deref(),
        Some("out_of_stock")
    );

    // Every event once; in time order, where only the two replies of different services may
    // swap places, and only because their own times say so.
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let (mut sorted, mut expected) = (types.clone(), OUT_OF_STOCK.to_vec());
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "{timeline:#?}");
    let mut swapped = OUT_OF_STOCK;
    swapped.swap(2, 3);
    assert!(
        types == OUT_OF_STOCK || types == swapped,
        "{types:?}\n{timeline:#?}"
    );
    let times = events
        .iter()
        .map(TimelineEvent::occurred)
        .collect::<Result<Vec<_>>>()?;
    assert!(
        times.windows(2).all(|pair| pair[0] <= pair[1]),
        "{timeline:#?}"
    );

    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.seq, index + 1, "{event:?}");
        assert_eq!(event.service, service_of(&event.event_type), "{event:?}");
        event.recorded()?;
        let delay = event.delay_ms;
        assert!(delay >= 0.0, "{event:?}");
        if index == 0 {
            assert!(delay.abs() < f64::EPSILON, "{event:?}");
        } else {
            let micros = (times[index] - times[index - 1])
                .num_microseconds()
                .context("delay")?;
            assert!(
                (delay * 1000.0 - micros as f64).abs() < 1.0,
                "{delay} ms vs {micros} µs: {event:?}"
            );
        }
    }

    // The saga runs from its first event to its terminal one.
    assert_eq!(timeline.started_at, events[0].occurred_at);
    assert_eq!(timeline.finished_at.as_ref(), Some(&events[5].occurred_at));
    let duration = timeline.duration_ms;
    let micros = (times[5] - times[0]).num_microseconds().context("span")?;
    assert!(
        (duration * 1000.0 - micros as f64).abs() < 1.0,
        "{timeline:#?}"
    );
    // The order's trace id is the first an event has (none while trace export is off).
    let first_trace = events.iter().find_map(|e| e.trace_id.as_ref());
    assert_eq!(timeline.trace_id.as_ref(), first_trace, "{timeline:#?}");

    // Unknown and malformed ids are not found, as problems.
    for id in ["ord_0123456789abcdef0123456789abcdef", "nope"] {
        let response = get(&stack, &format!("/api/orders/{id}/timeline")).await?;
        Problem::expect(response, StatusCode::NOT_FOUND)
            .await
            .context(id)?;
    }
    Ok(())
}

#[tokio::test]
async fn the_timeline_page_draws_the_saga_in_a_browser() -> Result<()> {
    let browser = Browser::launch().await?;
    let stack = Stack::start_with_env(&[("TRACE_URL_TEMPLATE", TRACE_URL_TEMPLATE)]).await?;
    let order_id = out_of_stock_order(&stack).await?;
    let timeline = stack.timeline(&order_id).await?;
    let events = &timeline.events;
    let page_path = format!("/orders/{order_id}");

    let response = get(&stack, &page_path).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let html = response.text().await?;
    // The rows are the script's work: the page as served names no event.
    for event_type in OUT_OF_STOCK {
        assert!(
            !html.contains(event_type),
            "{event_type} in the served page"
        );
    }

    let page = open_finished_timeline(&browser, &stack, &page_path).await?;
    let dom = page.eval("document.documentElement.outerHTML").await?;
    let texts = async |selector: &str| page.texts(selector).await;
    assert_eq!(texts("#status").await?, ["cancelled"], "{dom}");
    assert_eq!(texts("#order-id").await?, [order_id.as_str()], "{dom}");
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(texts(".event .ev-type").await?, types, "{dom}");
    let services: Vec<&str> = events.iter().map(|e| e.service.as_str()).collect();
    assert_eq!(texts(".event .ev-service").await?, services, "{dom}");
    assert_eq!(
        texts(".event .ev-delay").await?.len(),
        events.len(),
        "{dom}"
    );
    assert_eq!(texts(".event .ev-bar").await?.len(), events.len(), "{dom}");

    // The trace id links to the trace viewer when there is one.
    let links = page
        .eval("Array.from(document.links, (link) => link.href)")
        .await?;
    let links: Vec<String> = serde_json::from_value(links)?;
    let to_viewer: Vec<&String> = links
        .iter()
        .filter(|href| href.starts_with(TRACE_URL_PREFIX))
        .collect();
    match &timeline.trace_id {
        Some(trace_id) => {
            assert_eq!(
                to_viewer,
                [&format!("{TRACE_URL_PREFIX}{trace_id}")],
                "{dom}"
            );
        }
        None => {
            assert!(to_viewer.is_empty(), "{dom}");
            assert_eq!(texts("#trace").await?, ["not traced"], "{dom}");
        }
    }
    assert_eq!(page.errors(), Vec::<String>::new());

    let response = get(&stack, "/orders/ord_0123456789abcdef0123456789abcdef").await?;
    Problem::expect(response, StatusCode::NOT_FOUND).await?;
    Ok(())
}

#[tokio::test]
async fn the_timeline_page_fits_a_desktop_and_a_phone_screen() -> Result<()> {
    let browser = Browser::launch().await?;
    let stack = Stack::start().await?;
    let order_id = out_of_stock_order(&stack).await?;
    let page = open_finished_timeline(&browser, &stack, &format!("/orders/{order_id}")).await?;
    assert_eq!(page.texts("li.event").await?.len(), OUT_OF_STOCK.len());

    for (name, width, height, mobile) in [
        ("timeline-desktop-1280x800", 1280, 800, false),
        ("timeline-phone-390x844", 390, 844, true),
    ] {
        page.set_viewport(width, height, mobile).await?;
        let shot = page.screenshot(name).await?;
        // A phone zooms out to show a page wider than itself, which widens `innerWidth` too.
        let widths = page
            .eval("[document.documentElement.scrollWidth, innerWidth]")
            .await?;
        let [page_width, viewport]: [u64; 2] = serde_json::from_value(widths)?;
        assert!(
            page_width <= viewport && viewport == u64::from(width),
            "{name}: the page is {page_width} px wide, the viewport {viewport} px, the screen \
             {width} px; see {}",
            shot.display()
        );
    }
    assert_eq!(page.errors(), Vec::<String>::new());
    Ok(())
}

/// Opens the timeline page at `path` of `stack` in a new tab of `browser`, and waits until its
/// script has drawn the finished saga.
async fn open_finished_timeline(browser: &Browser, stack: &Stack, path: &str) -> Result<Page> {
    let page = browser.new_page().await?;
    page.goto(&stack.url(path)).await?;
    page.wait_for(
        r#"document.getElementById("app").dataset.state === "finished""#,
        DEADLINE,
    )
    .await?;
    Ok(page)
}
