//! The harness's browser driver against a small site of its own, served over real HTTP: what
//! the tests of order-api's pages rely on — typing, clicking, keyboard, forms, cookies, extra
//! headers, errors — works, and fails loudly where a person could not do the same.

use anyhow::Result;
use axum::Form;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use serde::Deserialize;

use saga_tests::{Browser, Cookie, DEADLINE, Key, SameSite, eventually};

const SIGN_IN: &str = r#"<!doctype html>
<title>Sign in</title>
<form action="/signed-in" method="post">
  <input id="name" name="name"> <input id="password" name="password" type="password">
  <button>Sign in</button>
</form>
<p id="typed"></p>
<button id="count" type="button" onclick="this.textContent = Number(this.textContent) + 1">0</button>
<button id="hidden" type="button" hidden>never</button>
<script>
  document.getElementById("name").addEventListener("input", (event) => {
    document.getElementById("typed").textContent = event.target.value;
  });
</script>
"#;

#[derive(Deserialize)]
struct SignIn {
    name: String,
}

/// Serves the site on a free port and returns its address.
async fn site() -> Result<String> {
    let app = axum::Router::new()
        .route("/", get(|| async { Html(SIGN_IN) }))
        // Asked for by every page; without it each would report a 404.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/signed-in",
            post(|Form(form): Form<SignIn>| async move {
                let cookie = "session=s3cret; Path=/; HttpOnly; SameSite=Strict";
                let page = format!("<!doctype html><p id=\"who\">{}</p>", form.name);
                ([(header::SET_COOKIE, cookie)], Html(page)).into_response()
            }),
        )
        .route(
            "/key",
            get(|headers: HeaderMap| async move {
                let key = headers.get("x-api-key").and_then(|key| key.to_str().ok());
                Html(format!("<!doctype html><p id=\"key\">{}</p>", key.unwrap_or("none")))
            }),
        )
        .route(
            "/broken",
            get(|| async {
                Html(r#"<!doctype html><img src="/missing.png"><script>console.error("drawn badly")</script>"#)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

#[tokio::test]
async fn a_person_signs_in_with_the_keyboard_and_gets_a_session_cookie() -> Result<()> {
    let base = site().await?;
    let browser = Browser::launch().await?;
    let page = browser.new_page().await?;
    page.goto(&format!("{base}/")).await?;

    // Clicks land where a mouse would; typing reaches the page's listeners.
    page.click("#count").await?;
    page.click("#count").await?;
    assert_eq!(page.texts("#count").await?, ["2"]);
    let hidden = page.click("#hidden").await.expect_err("a hidden button");
    assert!(format!("{hidden:#}").contains("not visible"), "{hidden:#}");
    let missing = page.click("#nowhere").await.expect_err("no such element");
    assert!(
        format!("{missing:#}").contains("nothing matches"),
        "{missing:#}"
    );
    let thrown = page.eval("null.name").await.expect_err("a TypeError");
    assert!(format!("{thrown:#}").contains("TypeError"), "{thrown:#}");

    page.fill("#name", "operator").await?;
    assert_eq!(page.texts("#typed").await?, ["operator"]);

    // Tab to the password, Enter submits the form.
    page.press_key(Key::Tab).await?;
    assert_eq!(page.eval("document.activeElement.id").await?, "password");
    page.fill("#password", "hunter2").await?;
    page.press_key(Key::Enter).await?;
    page.wait_for(r#"location.pathname === "/signed-in""#, DEADLINE)
        .await?;
    assert_eq!(page.url().await?, format!("{base}/signed-in"));
    assert_eq!(page.texts("#who").await?, ["operator"]);
    let session = Cookie {
        name: "session".to_owned(),
        value: "s3cret".to_owned(),
        http_only: true,
        secure: false,
        same_site: Some(SameSite::Strict),
    };
    assert_eq!(page.cookies().await?, [session]);
    assert_eq!(page.errors(), Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn a_page_sends_extra_headers_and_reports_its_errors() -> Result<()> {
    let base = site().await?;
    let browser = Browser::launch().await?;
    let page = browser.new_page().await?;

    page.goto(&format!("{base}/key")).await?;
    assert_eq!(page.texts("#key").await?, ["none"]);
    page.set_extra_headers(&[("x-api-key", "k-123")]).await?;
    page.goto(&format!("{base}/key")).await?;
    assert_eq!(page.texts("#key").await?, ["k-123"]);

    page.goto(&format!("{base}/broken")).await?;
    let errors = eventually(|| async {
        let errors = page.errors();
        let seen = |text: &str| errors.iter().any(|error| error.contains(text));
        if seen("drawn badly") && seen("404") {
            Ok(errors)
        } else {
            Err(format!("errors so far: {errors:?}"))
        }
    })
    .await?;
    assert_eq!(errors.len(), 2, "{errors:?}");
    Ok(())
}
