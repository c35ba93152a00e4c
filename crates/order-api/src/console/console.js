// The operator console's one script: draws the page the server sent as a skeleton, from the
// console's JSON routes, and keeps it current from the live stream (Server-Sent Events).
// Data is written with textContent only, never as markup.
"use strict";

(() => {
  const body = document.body;
  const page = body.dataset.page;
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const byId = (id) => document.getElementById(id);

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function link(href, text, className) {
    const node = element("a", className, text);
    node.href = href;
    return node;
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }

  function when(text) {
    if (!text) return "–";
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? text : date.toLocaleString();
  }

  function showError(message) {
    const error = byId("error");
    if (!error) return;
    error.textContent = message || "";
    error.hidden = !message;
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { accept: "application/json" }, cache: "no-store" });
    if (response.status === 401) {
      location.href = "/console/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("signed out");
    }
    if (!response.ok) throw new Error(await problem(response));
    return response.json();
  }

  async function postJson(url, payload) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", "x-csrf-token": csrf },
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
    if (!response.ok) throw new Error(await problem(response));
    return response.status === 204 ? null : response.json();
  }

  async function problem(response) {
    try {
      const detail = (await response.json()).detail;
      return "HTTP " + response.status + (detail ? ": " + detail : "");
    } catch {
      return "HTTP " + response.status;
    }
  }

  // Navigation, operator, sign-out.
  for (const nav of document.querySelectorAll("[data-nav]")) {
    if (nav.dataset.nav === page) nav.setAttribute("aria-current", "page");
  }
  const signOut = byId("sign-out");
  if (signOut) {
    signOut.hidden = body.dataset.signedIn !== "true";
    signOut.addEventListener("click", async () => {
      try {
        await postJson("/console/logout");
      } finally {
        location.href = "/console/login";
      }
    });
  }

  // The live stream: the counts now and whenever they change.
  const summaryListeners = [];
  let lastSummary = null;
  function follow() {
    const live = byId("live");
    if (!live || !window.EventSource) return;
    const source = new EventSource("/console/api/live");
    source.addEventListener("open", () => {
      live.textContent = "live";
      live.dataset.state = "live";
    });
    source.addEventListener("error", () => {
      live.textContent = "reconnecting…";
      live.dataset.state = "retrying";
    });
    source.addEventListener("summary", (event) => {
      const summary = JSON.parse(event.data);
      const previous = lastSummary;
      lastSummary = summary;
      const pill = byId("nav-dlq");
      const waiting = summary.dead_letters.to_handle + summary.dead_letters.failed_callbacks;
      pill.textContent = String(waiting);
      pill.hidden = waiting === 0;
      for (const listener of summaryListeners) listener(summary, previous);
    });
  }

  // A confirmation before anything that changes state; the dialog is keyboard-usable.
  function confirmAction(text, label) {
    const dialog = byId("confirm");
    byId("confirm-text").textContent = text;
    byId("confirm-ok").textContent = label;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
      byId("confirm-cancel").focus();
    });
  }

  // ---- Sagas ----------------------------------------------------------------------------
  function sagasPage() {
    const form = byId("filters");
    const tbody = document.querySelector("#orders tbody");
    const traceUrl = body.dataset.traceUrl;
    let cursors = [];
    let nextCursor = null;
    let reloadTimer = null;

    function filters() {
      const params = new URLSearchParams();
      for (const [name, value] of new FormData(form)) if (value) params.set(name, value);
      return params;
    }

    function fromUrl() {
      const params = new URLSearchParams(location.search);
      for (const field of form.elements) {
        if (!field.name) continue;
        if (field.type === "checkbox") field.checked = params.get(field.name) === field.value;
        else field.value = params.get(field.name) || "";
      }
    }

    function markCards() {
      const params = filters();
      for (const card of document.querySelectorAll("[data-filter-status]")) {
        const pressed = !params.has("stuck") && (params.get("status") || "") === card.dataset.filterStatus;
        card.setAttribute("aria-pressed", String(pressed));
      }
      const stuckCard = document.querySelector("[data-filter-stuck]");
      stuckCard.setAttribute("aria-pressed", String(params.has("stuck")));
    }

    function row(order) {
      const tr = element("tr");
      tr.dataset.orderId = order.order_id;
      tr.dataset.status = order.status;
      if (order.stuck) tr.classList.add("stuck");
      const id = element("td");
      id.append(link("/console/orders/" + encodeURIComponent(order.order_id), order.order_id, "mono"));
      const status = element("td");
      status.append(element("span", "status status-" + order.status, order.status.replaceAll("_", " ")));
      if (order.cancellation_reason) status.append(element("span", "reason", order.cancellation_reason.replaceAll("_", " ")));
      if (order.stuck) status.append(element("span", "flag", "stuck"));
      const trace = element("td");
      if (order.trace_id && traceUrl) {
        trace.append(link(traceUrl.replaceAll("{trace_id}", encodeURIComponent(order.trace_id)), "trace", "trace-link"));
      } else {
        trace.textContent = order.trace_id ? order.trace_id.slice(0, 8) + "…" : "–";
      }
      const created = element("td", "num", age(order.age_s));
      created.title = when(order.created_at);
      tr.append(
        id,
        element("td", null, order.principal),
        status,
        element("td", "num", order.total + " " + order.currency),
        created,
        element("td", "hide-narrow", when(order.updated_at)),
        trace,
      );
      return tr;
    }

    async function load() {
      const params = filters();
      const cursor = cursors[cursors.length - 1];
      if (cursor) params.set("cursor", cursor);
      main.dataset.state = "loading";
      try {
        const answer = await getJson("/console/api/orders?" + params);
        nextCursor = answer.next_cursor;
        const rows = answer.items.map(row);
        if (rows.length === 0) {
          const empty = element("tr");
          const cell = element("td", "muted", "No order matches.");
          cell.colSpan = 7;
          empty.append(cell);
          rows.push(empty);
        }
        tbody.replaceChildren(...rows);
        byId("older").disabled = !nextCursor;
        byId("newest").disabled = cursors.length === 0;
        byId("page-info").textContent = "page " + (cursors.length + 1);
        showError(null);
        main.dataset.state = "ready";
      } catch (failure) {
        showError("Could not load the orders (" + failure.message + ").");
        main.dataset.state = "error";
      }
    }

    function apply() {
      cursors = [];
      const query = filters().toString();
      history.replaceState(null, "", query ? "?" + query : location.pathname);
      markCards();
      load();
    }

    function onSummary(summary, previous) {
      for (const [status, count] of Object.entries(summary.by_status)) {
        const cell = document.querySelector('[data-count="' + status + '"]');
        if (cell) cell.textContent = String(count);
      }
      const all = Object.values(summary.by_status).reduce((sum, count) => sum + count, 0);
      document.querySelector('[data-count="all"]').textContent = String(all);
      document.querySelector('[data-count="stuck"]').textContent = String(summary.stuck);
      for (const [reason, count] of Object.entries(summary.by_reason)) {
        const cell = document.querySelector('[data-reason="' + reason + '"]');
        if (cell) cell.textContent = String(count);
      }
      byId("oldest").textContent = summary.oldest_open_s === null ? "No saga in flight."
        : "Oldest saga in flight: " + age(summary.oldest_open_s) + ".";
      // The list follows the counts while the operator looks at the newest orders.
      if (previous && cursors.length === 0 && JSON.stringify(previous) !== JSON.stringify(summary)) {
        clearTimeout(reloadTimer);
        reloadTimer = setTimeout(load, 200);
      }
    }

    const main = byId("main");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      apply();
    });
    form.addEventListener("change", apply);
    form.addEventListener("reset", () => setTimeout(apply, 0));
    for (const card of document.querySelectorAll("[data-filter-status]")) {
      card.addEventListener("click", () => {
        form.elements.status.value = card.dataset.filterStatus;
        form.elements.stuck.checked = false;
        apply();
      });
    }
    document.querySelector("[data-filter-stuck]").addEventListener("click", () => {
      form.elements.stuck.checked = true;
      form.elements.status.value = "";
      apply();
    });
    byId("older").addEventListener("click", () => {
      if (!nextCursor) return;
      cursors.push(nextCursor);
      load();
    });
    byId("newest").addEventListener("click", () => {
      cursors = [];
      load();
    });
    summaryListeners.push(onSummary);
    fromUrl();
    markCards();
    load();
  }

  // ---- Dead letters ---------------------------------------------------------------------
  function deadLettersPage() {
    const form = byId("dlq-filters");
    const letters = document.querySelector("#letters tbody");
    const callbacks = document.querySelector("#callbacks tbody");
    const main = byId("main");
    let shown = [];

    function selected() {
      return [...letters.querySelectorAll("input[data-select]:checked")].map((box) => box.value);
    }

    function refreshButtons() {
      const topic = form.elements.topic.value;
      byId("replay-selected").disabled = selected().length === 0;
      const replayTopic = byId("replay-topic");
      replayTopic.disabled = !topic || !shown.some((letter) => letter.dlq_topic === topic && !letter.replayed);
      replayTopic.textContent = topic ? "Replay all of " + topic : "Replay all of a topic (choose one)";
    }

    function letterRow(letter) {
      const tr = element("tr");
      tr.dataset.letterId = letter.id;
      if (letter.order_id) tr.dataset.orderId = letter.order_id;
      if (letter.replayed) tr.dataset.replayed = "true";
      const select = element("td");
      const box = element("input");
      box.type = "checkbox";
      box.value = letter.id;
      box.dataset.select = "";
      box.disabled = letter.replayed;
      box.setAttribute("aria-label", "Select " + letter.id);
      box.addEventListener("change", refreshButtons);
      select.append(box);
      const order = element("td");
      if (letter.order_id) order.append(link("/console/orders/" + encodeURIComponent(letter.order_id), letter.order_id.slice(0, 8) + "…", "mono"));
      else order.textContent = "–";
      const details = element("details");
      details.append(element("summary", null, "payload"), element("pre", null, letter.payload));
      if (letter.headers.length) details.append(element("pre", null, letter.headers.map(([k, v]) => k + ": " + v).join("\n")));
      const payload = element("td");
      payload.append(details);
      const id = element("td", "mono", letter.id);
      if (letter.replayed) id.append(element("span", "reason", "replayed"));
      tr.append(
        select,
        id,
        element("td", "mono", letter.event_type || (letter.delivery_id ? "callback" : "–")),
        order,
        element("td", null, letter.service || "–"),
        element("td", null, letter.error_class || "–"),
        element("td", null, letter.error_message || "–"),
        element("td", "num", letter.attempts ?? "–"),
        element("td", "hide-narrow", when(letter.first_failure)),
        element("td", null, when(letter.last_failure)),
        payload,
      );
      return tr;
    }

    function callbackRow(delivery) {
      const tr = element("tr");
      tr.dataset.deliveryId = delivery.id;
      const order = element("td");
      order.append(link("/console/orders/" + encodeURIComponent(delivery.order_id), delivery.order_id.slice(0, 8) + "…", "mono"));
      const action = element("td");
      const resend = element("button", null, "Re-send");
      resend.type = "button";
      resend.addEventListener("click", async () => {
        if (!await confirmAction("Send the callback " + delivery.id + " to " + delivery.url + " again?", "Re-send")) return;
        try {
          await postJson("/console/api/callbacks/" + encodeURIComponent(delivery.id) + "/resend");
          load();
        } catch (failure) {
          showError("Could not re-send (" + failure.message + ").");
        }
      });
      action.append(resend);
      const error = delivery.last_error ? delivery.last_error + (delivery.last_status_code ? " (" + delivery.last_status_code + ")" : "") : "–";
      tr.append(
        element("td", "mono", delivery.id),
        order,
        element("td", null, delivery.principal),
        element("td", "mono", delivery.url),
        element("td", "mono", delivery.event_type),
        element("td", "num", delivery.attempts),
        element("td", null, error),
        element("td", null, when(delivery.finished_at)),
        action,
      );
      return tr;
    }

    function empty(columns, text) {
      const tr = element("tr");
      const cell = element("td", "muted", text);
      cell.colSpan = columns;
      tr.append(cell);
      return tr;
    }

    async function load() {
      const params = new URLSearchParams();
      for (const [name, value] of new FormData(form)) if (value) params.set(name, value);
      main.dataset.state = "loading";
      try {
        const answer = await getJson("/console/api/dead-letters?" + params);
        shown = answer.letters;
        const counts = answer.counts;
        byId("dlq-status").textContent = !counts.available
          ? "This order-api does not read the dead-letter topics."
          : (counts.loading ? "Reading the dead-letter topics… " : "")
            + counts.to_handle + " to handle, " + counts.replayed + " replayed; "
            + counts.failed_callbacks + " failed callback(s).";
        letters.replaceChildren(...(shown.length ? shown.map(letterRow) : [empty(11, "No dead letter to handle.")]));
        callbacks.replaceChildren(...(answer.failed_callbacks.length
          ? answer.failed_callbacks.map(callbackRow) : [empty(9, "No failed callback.")]));
        byId("select-all").checked = false;
        refreshButtons();
        showError(null);
        main.dataset.state = "ready";
      } catch (failure) {
        showError("Could not load the dead letters (" + failure.message + ").");
        main.dataset.state = "error";
      }
    }

    async function replay(request, text) {
      if (!await confirmAction(text, "Replay")) return;
      try {
        const answer = await postJson("/console/api/dead-letters/replay", request);
        const refused = answer.refused.map((r) => r.id + ": " + r.reason).join("; ");
        showError(refused ? "Not replayed: " + refused : null);
        byId("dlq-status").textContent = answer.replayed.length + " replayed.";
      } catch (failure) {
        showError("Could not replay (" + failure.message + ").");
      }
      load();
    }

    byId("replay-selected").addEventListener("click", () => {
      const ids = selected();
      replay({ ids }, "Replay " + ids.length + " dead letter(s)? Each goes back to its saga topic.");
    });
    byId("replay-topic").addEventListener("click", () => {
      const topic = form.elements.topic.value;
      const count = shown.filter((letter) => letter.dlq_topic === topic && !letter.replayed).length;
      replay({ all_of_topic: topic }, "Replay every letter of " + topic + " still to handle (" + count + ")?");
    });
    byId("select-all").addEventListener("change", (event) => {
      for (const box of letters.querySelectorAll("input[data-select]:not(:disabled)")) box.checked = event.target.checked;
      refreshButtons();
    });
    form.addEventListener("change", load);
    summaryListeners.push((summary, previous) => {
      if (previous && JSON.stringify(previous.dead_letters) !== JSON.stringify(summary.dead_letters)) load();
    });
    load();
  }

  if (page === "sagas") sagasPage();
  if (page === "dead-letters") deadLettersPage();
  follow();
})();
