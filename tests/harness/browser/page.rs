//! One browser tab, as a test drives it: load a URL, run script, click, type, look.
//!
//! Clicks and key presses go through the browser's input pipeline (`Input.*`), as a person's
//! would: a click lands on whatever is drawn at the element's centre, so a hidden or covered
//! button fails the test instead of being clicked by script.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use super::cdp::{Connection, Event};
use crate::{DEADLINE, eventually_within};

/// A tab of a [`super::Browser`]. Everything the page reports as going wrong — console errors,
/// uncaught exceptions, resources that failed to load — is collected for [`Page::errors`].
#[derive(Debug)]
pub struct Page {
    connection: Arc<Connection>,
    /// The flat session this tab's commands and events carry.
    session_id: String,
    /// What went wrong in the page so far, as the console would show it.
    errors: Arc<Mutex<Vec<String>>>,
    /// Fills `errors` from the page's events; stopped when the page is dropped.
    watcher: JoinHandle<()>,
}

/// A cookie as the browser stores it (`Network.getCookies`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    pub name: String,
    pub value: String,
    /// Hidden from the page's scripts.
    pub http_only: bool,
    /// Sent over HTTPS only.
    pub secure: bool,
    /// Whether other sites' requests carry it; `None` when the server did not say.
    pub same_site: Option<SameSite>,
}

/// A cookie's `SameSite` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// A key [`Page::press_key`] can press: those that move through and submit a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Enter,
    Tab,
    Escape,
    Backspace,
    Space,
}

impl Key {
    /// Its DOM `key`, DOM `code`, Windows virtual key code and the text it types.
    fn codes(self) -> (&'static str, &'static str, u32, Option<&'static str>) {
        match self {
            Key::Enter => ("Enter", "Enter", 13, Some("\r")),
            Key::Tab => ("Tab", "Tab", 9, None),
            Key::Escape => ("Escape", "Escape", 27, None),
            Key::Backspace => ("Backspace", "Backspace", 8, None),
            Key::Space => (" ", "Space", 32, Some(" ")),
        }
    }
}

impl Page {
    /// Takes over the tab of `session_id`: turns on the events the page's methods rely on and
    /// starts collecting its errors.
    pub(super) async fn attach(connection: Arc<Connection>, session_id: String) -> Result<Self> {
        // Subscribed before the domains are on, so no error escapes.
        let events = connection.events();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let watcher = tokio::spawn(collect_errors(
            events,
            session_id.clone(),
            Arc::clone(&errors),
        ));
        let page = Self {
            connection,
            session_id,
            errors,
            watcher,
        };
        for domain in ["Page", "Runtime", "Network", "Log"] {
            page.call(&format!("{domain}.enable"), json!({})).await?;
        }
        page.call("Page.setLifecycleEventsEnabled", json!({ "enabled": true }))
            .await?;
        Ok(page)
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.connection
            .call(Some(&self.session_id), method, params)
            .await
    }

    /// Loads `url` and waits (up to [`DEADLINE`]) for its `load` event: the document, its
    /// styles, scripts and images are in. What the scripts fetch afterwards is for
    /// [`Page::wait_for`]. An HTTP error page loads like any other; a network error is an `Err`.
    pub async fn goto(&self, url: &str) -> Result<()> {
        let mut events = self.connection.events();
        let navigated = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = navigated["errorText"].as_str() {
            bail!("loading {url}: {error}");
        }
        // A jump within the same document starts no new load.
        let Some(loader) = navigated["loaderId"].as_str() else {
            return Ok(());
        };
        let loaded = async {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => bail!("the browser went away"),
                };
                if event.session_id.as_deref() == Some(&self.session_id)
                    && event.method == "Page.lifecycleEvent"
                    && event.params["name"] == "load"
                    && event.params["loaderId"] == loader
                {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(DEADLINE, loaded)
            .await
            .with_context(|| format!("{url} did not load within {DEADLINE:?}"))?
    }

    /// Evaluates the JavaScript expression `js` in the page, awaits it if it is a promise, and
    /// returns its value as JSON (`null` for `undefined`, and for what JSON cannot hold). A
    /// thrown exception is an `Err` with its message.
    pub async fn eval(&self, js: &str) -> Result<Value> {
        let evaluated = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": js,
                    "awaitPromise": true,
                    "returnByValue": true,
                    "userGesture": true,
                }),
            )
            .await?;
        if let Some(thrown) = evaluated.get("exceptionDetails") {
            let message = thrown["exception"]["description"]
                .as_str()
                .or_else(|| thrown["text"].as_str())
                .unwrap_or("an exception");
            bail!("{message}");
        }
        Ok(evaluated["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// Polls the JavaScript expression `predicate` until it is truthy, failing after
    /// `timeout` with what it last gave. An expression that throws is polled again: the
    /// element it reads may not exist yet.
    pub async fn wait_for(&self, predicate: &str, timeout: Duration) -> Result<()> {
        let check = format!("Boolean({predicate})");
        eventually_within(timeout, || async {
            match self.eval(&check).await {
                Ok(Value::Bool(true)) => Ok(()),
                Ok(_) => Err(format!("`{predicate}` is still false")),
                Err(error) => Err(format!("`{predicate}` throws: {error:#}")),
            }
        })
        .await
    }

    /// The text of every element `selector` matches, in document order.
    pub async fn texts(&self, selector: &str) -> Result<Vec<String>> {
        let texts = self
            .eval(&format!(
                "Array.from(document.querySelectorAll({}), (node) => node.textContent)",
                js_string(selector)
            ))
            .await?;
        Ok(serde_json::from_value(texts)?)
    }

    /// Clicks the first element `selector` matches, with the mouse, at its centre (scrolled
    /// into view). Fails if nothing matches, if it has no size, or if something else is drawn
    /// over that point.
    pub async fn click(&self, selector: &str) -> Result<()> {
        let point = self
            .eval(&format!(
                r#"(() => {{
                    const target = document.querySelector({selector});
                    if (!target) throw new Error("nothing matches " + {selector});
                    target.scrollIntoView({{ block: "center", inline: "center" }});
                    const box = target.getBoundingClientRect();
                    if (box.width === 0 || box.height === 0) throw new Error({selector} + " is not visible");
                    const x = box.left + box.width / 2, y = box.top + box.height / 2;
                    const hit = document.elementFromPoint(x, y);
                    if (!target.contains(hit)) throw new Error({selector} + " is covered by " + (hit ? hit.outerHTML.slice(0, 80) : "nothing"));
                    return {{ x, y }};
                }})()"#,
                selector = js_string(selector)
            ))
            .await
            .with_context(|| format!("clicking {selector}"))?;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": point["x"], "y": point["y"], "button": "left", "clickCount": 1 }),
            )
            .await?;
        }
        Ok(())
    }

    /// Puts `text` into the form field `selector` matches, as if typed: focuses it, sets its
    /// value and fires `input` and `change`, which the page's scripts listen to.
    pub async fn fill(&self, selector: &str, text: &str) -> Result<()> {
        self.eval(&format!(
            r#"(() => {{
                const field = document.querySelector({selector});
                if (!field) throw new Error("nothing matches " + {selector});
                field.focus();
                field.value = {text};
                field.dispatchEvent(new Event("input", {{ bubbles: true }}));
                field.dispatchEvent(new Event("change", {{ bubbles: true }}));
            }})()"#,
            selector = js_string(selector),
            text = js_string(text),
        ))
        .await
        .with_context(|| format!("filling {selector}"))?;
        Ok(())
    }

    /// Presses and releases `key` on whatever has the focus: `Tab` moves it, `Enter` submits
    /// a form or follows a link.
    pub async fn press_key(&self, key: Key) -> Result<()> {
        let (name, code, key_code, text) = key.codes();
        let mut down = json!({
            "type": if text.is_some() { "keyDown" } else { "rawKeyDown" },
            "key": name,
            "code": code,
            "windowsVirtualKeyCode": key_code,
        });
        if let Some(text) = text {
            down["text"] = json!(text);
        }
        self.call("Input.dispatchKeyEvent", down).await?;
        let up = json!({ "type": "keyUp", "key": name, "code": code, "windowsVirtualKeyCode": key_code });
        self.call("Input.dispatchKeyEvent", up).await?;
        Ok(())
    }

    /// The address of the document shown now (after redirects and script navigation).
    pub async fn url(&self) -> Result<String> {
        let href = self.eval("location.href").await?;
        href.as_str()
            .map(str::to_owned)
            .context("location.href is not a string")
    }

    /// Lays the page out for a screen of `width` × `height` CSS pixels; `mobile` as a phone
    /// does (the page's `<meta name="viewport">` applies, touch instead of a mouse).
    pub async fn set_viewport(&self, width: u32, height: u32, mobile: bool) -> Result<()> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await?;
        self.call(
            "Emulation.setTouchEmulationEnabled",
            json!({ "enabled": mobile }),
        )
        .await?;
        Ok(())
    }

    /// Saves a PNG of the whole page, not just the viewport, as `<name>.png` in the
    /// [artifacts directory](crate::artifacts_dir), and returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<std::path::PathBuf> {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let clip =
            json!({ "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1 });
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "clip": clip, "captureBeyondViewport": true }),
            )
            .await?;
        let png = STANDARD.decode(shot["data"].as_str().context("no screenshot data")?)?;
        let dir = crate::artifacts_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The cookies the browser would send to the page's address.
    pub async fn cookies(&self) -> Result<Vec<Cookie>> {
        let found = self.call("Network.getCookies", json!({})).await?;
        Ok(serde_json::from_value(found["cookies"].clone())?)
    }

    /// Adds `headers` to every request the page makes from now on, replacing any added
    /// before: what a browser would not send by itself, such as an API key.
    pub async fn set_extra_headers(&self, headers: &[(&str, &str)]) -> Result<()> {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), json!(value)))
            .collect();
        self.call("Network.setExtraHTTPHeaders", json!({ "headers": headers }))
            .await?;
        Ok(())
    }

    /// Console errors, uncaught exceptions and failed loads the page has reported so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// `text` as a JavaScript string literal (JSON's string syntax is JavaScript's).
fn js_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// Keeps what went wrong in the page of `session_id`, one line each.
async fn collect_errors(
    mut events: broadcast::Receiver<Event>,
    session_id: String,
    errors: Arc<Mutex<Vec<String>>>,
) {
    loop {
        let error = match events.recv().await {
            Ok(event) if event.session_id.as_deref() == Some(&session_id) => describe_error(&event),
            Ok(_) => None,
            Err(RecvError::Lagged(missed)) => Some(format!("{missed} browser events missed")),
            Err(RecvError::Closed) => return,
        };
        if let Some(error) = error {
            errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(error);
        }
    }
}

/// The error `event` reports, as the console would show it; `None` if it reports none.
fn describe_error(event: &Event) -> Option<String> {
    let params = &event.params;
    match event.method.as_str() {
        "Runtime.consoleAPICalled" if params["type"] == "error" => {
            let args = params["args"].as_array().into_iter().flatten();
            let texts: Vec<String> = args
                .map(|arg| match &arg["value"] {
                    Value::String(text) => text.clone(),
                    Value::Null => arg["description"].as_str().unwrap_or("").to_owned(),
                    value => value.to_string(),
                })
                .collect();
            Some(format!("console.error: {}", texts.join(" ")))
        }
        "Runtime.exceptionThrown" => {
            let thrown = &params["exceptionDetails"];
            let text = thrown["exception"]["description"]
                .as_str()
                .or_else(|| thrown["text"].as_str());
            Some(format!("uncaught: {}", text.unwrap_or("an exception")))
        }
        // Resources that failed to load (404s, refused connections), CSP violations, …
        "Log.entryAdded" if params["entry"]["level"] == "error" => {
            let entry = &params["entry"];
            let text = entry["text"].as_str().unwrap_or("");
            Some(match entry["url"].as_str() {
                Some(url) => format!("{text} ({url})"),
                None => text.to_owned(),
            })
        }
        _ => None,
    }
}
