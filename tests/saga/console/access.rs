//! Who the console lets in, spoken in plain HTTP: operators by key or session, never customers;
//! sessions end when the operator signs out; state changes need the page's CSRF token.

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use saga_tests::Problem;

use super::{ALICE, OPERATOR, Shop};

/// `name=value` of the `Set-Cookie` named `name` in `response`, with the whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|value| {
            let pair = value.split(';').next().unwrap_or_default().to_owned();
            (pair, value.to_owned())
        })
}

/// `pairs` as an HTML form posts them (`application/x-www-form-urlencoded`).
fn form_body(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|byte| match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(byte).to_string()
                }
                _ => format!("%{byte:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Reads a problem of `status` whose type ends with `kind`.
async fn problem(response: reqwest::Response, status: StatusCode, kind: &str) -> Result<Problem> {
    let problem = Problem::expect(response, status).await?;
    ensure!(problem.problem_type.ends_with(kind), "{problem:?}");
    Ok(problem)
}

/// The value of the hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

#[tokio::test]
async fn operators_get_in_customers_do_not_and_sessions_end_at_sign_out() -> Result<()> {
    let shop = Shop::start(&[]).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let order_id = shop
        .customer
        .place_order("WIDGET-42", 1, "pm_visa_4242")
        .await?;

    // Nobody: the page sends the browser to the sign-in form, the JSON routes answer 401.
    let page = http.get(shop.url("/console?status=open")).send().await?;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers().get(LOCATION).and_then(|l| l.to_str().ok()),
        Some("/console/login?next=/console%3Fstatus%3Dopen")
    );
    // A browser opening an order's page cannot send a key: it is sent to the console's copy.
    let timeline_page = http
        .get(shop.url(&format!("/orders/{order_id}")))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await?;
    assert_eq!(timeline_page.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        timeline_page
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok()),
        Some(format!("/console/orders/{order_id}").as_str())
    );
    let summary = http.get(shop.url("/console/api/summary")).send().await?;
    problem(summary, StatusCode::UNAUTHORIZED, "unauthorized").await?;
    // A customer's key: 403, named.
    let customer = http
        .get(shop.url("/console/api/summary"))
        .bearer_auth(ALICE)
        .send()
        .await?;
    let refused = problem(customer, StatusCode::FORBIDDEN, "forbidden").await?;
    ensure!(refused.detail.contains("customer"), "{refused:?}");
    // An operator's key, as a script sends it: in, and any principal's order is visible.
    let timeline: Value = http
        .get(shop.url(&format!("/console/api/orders/{order_id}/timeline")))
        .bearer_auth(OPERATOR)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(timeline["order_id"], order_id.as_str());

    // The browser's way: the form's token, then the key.
    let form = http.get(shop.url("/console/login")).send().await?;
    let (login_cookie, _) = set_cookie(&form, "shop_console_login").context("login cookie")?;
    let html = form.text().await?;
    let login_token = hidden(&html, "login_token").context("login token")?;
    let customer_login = http
        .post(shop.url("/console/login"))
        .header(COOKIE, &login_cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("key", ALICE),
            ("login_token", &login_token),
            ("next", "/console"),
        ]))
        .send()
        .await?;
    assert_eq!(customer_login.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&customer_login, "shop_console").is_none());
    // Without the form's own cookie (a form posted from another site): refused.
    let forged = http
        .post(shop.url("/console/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("key", OPERATOR),
            ("login_token", &login_token),
        ]))
        .send()
        .await?;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let signed_in = http
        .post(shop.url("/console/login"))
        .header(COOKIE, &login_cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("key", OPERATOR),
            ("login_token", &login_token),
            ("next", "https://evil.example/"),
        ]))
        .send()
        .await?;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        signed_in
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok()),
        Some("/console"),
        "no open redirect"
    );
    let (session, header) = set_cookie(&signed_in, "shop_console").context("session cookie")?;
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        ensure!(header.contains(flag), "{flag} missing: {header}");
    }

    // The page carries the CSRF token; a state change without it is refused, with it done.
    let page = http
        .get(shop.url("/console"))
        .header(COOKIE, &session)
        .send()
        .await?;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await?;
    let at = html
        .find("name=\"csrf-token\" content=\"")
        .context("csrf meta")?;
    let rest = &html[at + 27..];
    let csrf = rest[..rest.find('"').context("csrf end")?].to_owned();
    ensure!(csrf.len() >= 32, "{csrf}");
    let replay = json!({ "all_of_topic": "payments.dlq" });
    let without = http
        .post(shop.url("/console/api/dead-letters/replay"))
        .header(COOKIE, &session)
        .json(&replay)
        .send()
        .await?;
    problem(without, StatusCode::FORBIDDEN, "csrf").await?;
    let elsewhere = http
        .post(shop.url("/console/api/dead-letters/replay"))
        .header(COOKIE, &session)
        .header("x-csrf-token", &csrf)
        .header("origin", "https://evil.example")
        .json(&replay)
        .send()
        .await?;
    problem(elsewhere, StatusCode::FORBIDDEN, "csrf").await?;
    let with = http
        .post(shop.url("/console/api/dead-letters/replay"))
        .header(COOKIE, &session)
        .header("x-csrf-token", &csrf)
        .json(&replay)
        .send()
        .await?
        .error_for_status()?
        .json::<Value>()
        .await?;
    assert_eq!(with["replayed"], json!([]), "{with}");

    // Signing out ends the session on the server: the old cookie opens nothing.
    let out = http
        .post(shop.url("/console/logout"))
        .header(COOKIE, &session)
        .header("x-csrf-token", &csrf)
        .send()
        .await?;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let (cleared, _) = set_cookie(&out, "shop_console").context("cleared cookie")?;
    assert_eq!(cleared, "shop_console=");
    let after = http
        .get(shop.url("/console/api/summary"))
        .header(COOKIE, &session)
        .send()
        .await?;
    problem(after, StatusCode::UNAUTHORIZED, "unauthorized").await?;
    Ok(())
}
