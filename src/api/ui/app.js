// The leaseq dashboard: a client of the public API, with the rights of the token it is
// given. Nothing here reaches the broker any other way, and every value from the API is
// put on the page as text (textContent), never as markup.
"use strict";

const TOKEN_KEY = "leaseq.token";
const ACCOUNT_KEY = "leaseq.account";
const HISTORY_KEY = "leaseq.history";
// The backlog chart is sampled by this page while it is open (kept in sessionStorage,
// so a reload keeps it): no history is stored in Redis for a dashboard's sake.
const SAMPLE_MS = 10_000;
const HISTORY_MS = 3_600_000;

const app = document.getElementById("app");
const statusBox = document.getElementById("status");
const accountSelect = document.getElementById("account");
const logoutButton = document.getElementById("logout");
let refreshTimer = null;
let accounts = [];

// ---------------------------------------------------------------------------- helpers

/** An element with attributes (`on*` become listeners) and children (strings as text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function say(message, kind = "info") {
  statusBox.replaceChildren(message ? h("p", { class: kind }, message) : "");
}

const token = () => sessionStorage.getItem(TOKEN_KEY);
const account = () => sessionStorage.getItem(ACCOUNT_KEY);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** One call of the public API; resolves to its `result`, rejects with its errors. */
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/client/v4${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!response.ok || !envelope || envelope.success === false) {
    const errors = (envelope?.errors ?? []).map((e) => `${e.message} (code ${e.code})`);
    throw new ApiError(response.status, errors.join("; ") || `HTTP ${response.status}`);
  }
  return envelope.result;
}

const inAccount = (path) => `/accounts/${encodeURIComponent(account())}${path}`;

function age(timestampMs) {
  if (!timestampMs) return "—";
  const seconds = Math.max(0, Math.round((Date.now() - timestampMs) / 1000));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} d`;
}

const count = (n) => (n === undefined || n === null ? "—" : Number(n).toLocaleString("en"));

/** Runs an action from a button or form, reporting its outcome; re-enables after. */
async function act(control, work, done) {
  if (control) control.disabled = true;
  try {
    const outcome = await work();
    if (done) say(done, "info");
    return outcome;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return logout("The token was refused (401).");
    say(e.message, "error");
    return undefined;
  } finally {
    if (control) control.disabled = false;
  }
}

// ---------------------------------------------------------------------------- history

function backlogHistory() {
  try {
    return JSON.parse(sessionStorage.getItem(HISTORY_KEY) ?? "{}");
  } catch {
    return {};
  }
}

function record(queueId, backlog) {
  const all = backlogHistory();
  const now = Date.now();
  const points = (all[queueId] ?? []).filter(([t]) => now - t <= HISTORY_MS);
  const last = points[points.length - 1];
  if (!last || now - last[0] >= SAMPLE_MS / 2) points.push([now, backlog]);
  all[queueId] = points;
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify(all));
  return points;
}

/** A line chart of the backlog over the last hour, with a text alternative. */
function chart(points, width, height, label) {
  const canvas = h("canvas", { class: width > 200 ? "chart" : "spark", role: "img" });
  const latest = points.length ? points[points.length - 1][1] : 0;
  const peak = Math.max(0, ...points.map(([, v]) => v));
  canvas.setAttribute(
    "aria-label",
    `${label}: ${points.length} samples in the last hour, now ${latest}, peak ${peak}`,
  );
  const scale = window.devicePixelRatio || 1;
  canvas.width = width * scale;
  canvas.height = height * scale;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  if (!ctx) return canvas;
  ctx.scale(scale, scale);
  // The baseline (backlog 0), then the samples, the newest at the right edge.
  ctx.strokeStyle = "#d8dce4";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(0, height - 1.5);
  ctx.lineTo(width, height - 1.5);
  ctx.stroke();
  const now = Date.now();
  const x = (t) => Math.min(width - 3, width - ((now - t) / HISTORY_MS) * width);
  const y = (v) => height - 3 - (peak ? (v / peak) * (height - 6) : 0);
  ctx.strokeStyle = ctx.fillStyle = "#1f5fbf";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
  ctx.stroke();
  if (points.length) {
    const [t, v] = points[points.length - 1];
    ctx.beginPath();
    ctx.arc(x(t), y(v), 2.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  return canvas;
}

// ---------------------------------------------------------------------------- views

function show(title, ...content) {
  clearInterval(refreshTimer);
  document.title = title ? `${title} · leaseq` : "leaseq";
  app.replaceChildren(...content);
}

function renderLogin(message) {
  accountSelect.hidden = true;
  logoutButton.hidden = true;
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    "aria-describedby": "token-help",
  });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        sessionStorage.removeItem(ACCOUNT_KEY);
        await start();
      },
    },
    h("h1", { text: "Log in" }),
    h("label", { for: "token", text: "API token" }),
    input,
    h("p", {
      id: "token-help",
      class: "muted",
      text: "The token stays in this tab (sessionStorage) and is sent only to this broker's API.",
    }),
    h("div", { class: "row" }, h("button", { type: "submit", text: "Log in" })),
  );
  show("Log in", form);
  say(message ?? "", message ? "error" : "info");
  input.focus();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(ACCOUNT_KEY);
  accounts = [];
  location.hash = "";
  renderLogin(message);
}

async function renderQueues() {
  const nameInput = h("input", { id: "new-queue", required: true, maxlength: 255 });
  const create = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        const button = event.submitter;
        const queue = await act(
          button,
          () => api("POST", inAccount("/queues"), { queue_name: nameInput.value.trim() }),
          `Queue ${nameInput.value.trim()} created.`,
        );
        if (queue) {
          nameInput.value = "";
          await refresh();
        }
      },
    },
    h("h2", { text: "Create a queue" }),
    h("label", { for: "new-queue", text: "Queue name" }),
    nameInput,
    h("div", { class: "row" }, h("button", { type: "submit", text: "Create queue" })),
  );
  const body = h("tbody");
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { "aria-label": "Queues" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col", text: "Queue" }),
          h("th", { scope: "col", class: "num", text: "Backlog" }),
          h("th", { scope: "col", class: "num hide-narrow", text: "In flight" }),
          h("th", { scope: "col", class: "num hide-narrow", text: "Delayed" }),
          h("th", { scope: "col", class: "num", text: "Oldest" }),
          h("th", { scope: "col", text: "Delivery" }),
          h("th", { scope: "col", class: "hide-narrow", text: "Backlog, last hour" }),
        ),
      ),
      body,
    ),
  );
  show("Queues", h("h1", { text: "Queues" }), h("section", {}, table), create);

  async function refresh() {
    const queues = await act(null, () => api("GET", inAccount("/queues")));
    if (!queues) return;
    const rows = await Promise.all(
      queues.map(async (queue) => {
        const metrics = await api("GET", inAccount(`/queues/${queue.queue_id}/metrics`)).catch(
          () => null,
        );
        const backlog = metrics?.backlog_count;
        const points = backlog === undefined ? [] : record(queue.queue_id, backlog);
        const paused = queue.settings?.delivery_paused;
        return h(
          "tr",
          { "data-queue": queue.queue_name },
          h(
            "td",
            {},
            h("a", { href: `#/queues/${queue.queue_id}`, text: queue.queue_name }),
          ),
          h("td", { class: "num", "data-field": "backlog", text: count(backlog) }),
          h("td", { class: "num hide-narrow", text: count(metrics?.inflight_count) }),
          h("td", { class: "num hide-narrow", text: count(metrics?.delayed_count) }),
          h("td", { class: "num", text: age(metrics?.oldest_message_timestamp_ms) }),
          h(
            "td",
            {},
            h("span", { class: `badge ${paused ? "paused" : "active"}`, text: paused ? "paused" : "active" }),
          ),
          h(
            "td",
            { class: "hide-narrow" },
            chart(points, 160, 32, `Backlog of ${queue.queue_name}`),
          ),
        );
      }),
    );
    body.replaceChildren(
      ...(rows.length
        ? rows
        : [h("tr", {}, h("td", { colspan: 7, class: "muted", text: "No queues yet." }))]),
    );
  }
  await refresh();
  refreshTimer = setInterval(refresh, SAMPLE_MS);
}

async function renderQueue(queueId) {
  const path = (rest = "") => inAccount(`/queues/${queueId}${rest}`);
  let queue;
  try {
    queue = await api("GET", path());
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return logout("The token was refused (401).");
    show("Queue", h("h1", { text: "Queue not found" }), h("p", { text: e.message }), backLink());
    return;
  }
  const figures = h("div", { class: "figures", "aria-live": "polite" });
  const chartBox = h("div");
  const peekBody = h("tbody");
  const consumersBox = h("div");
  const listenersBox = h("div");

  async function refreshFigures() {
    const m = await act(null, () => api("GET", path("/metrics")));
    if (!m) return;
    const points = record(queueId, m.backlog_count);
    const figure = (label, value, field) =>
      h("div", { class: "figure" }, h("div", { class: "label", text: label }),
        h("div", { class: "value", "data-field": field, text: value }));
    figures.replaceChildren(
      figure("Backlog", count(m.backlog_count), "backlog"),
      figure("In flight", count(m.inflight_count), "inflight"),
      figure("Delayed", count(m.delayed_count), "delayed"),
      figure("Bytes", count(m.backlog_bytes), "bytes"),
      figure("Oldest message", age(m.oldest_message_timestamp_ms), "oldest"),
      figure("Delivery", queue.settings.delivery_paused ? "paused" : "active", "delivery"),
    );
    chartBox.replaceChildren(chart(points, Math.min(720, app.clientWidth - 40), 120, "Backlog"));
  }

  const pauseButton = h("button", {
    type: "button",
    class: "secondary",
    text: queue.settings.delivery_paused ? "Resume delivery" : "Pause delivery",
    onclick: async (event) => {
      const paused = !queue.settings.delivery_paused;
      const updated = await act(
        event.currentTarget,
        () => api("PATCH", path(), { settings: { delivery_paused: paused } }),
        paused ? "Delivery paused." : "Delivery resumed.",
      );
      if (updated) {
        queue = updated;
        pauseButton.textContent = paused ? "Resume delivery" : "Pause delivery";
        await refreshFigures();
      }
    },
  });

  const settingField = (id, label, value) => [
    h("label", { for: id, text: label }),
    h("input", { id, type: "number", min: 0, step: 1, value }),
  ];
  const settings = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        const read = (id) => Number(document.getElementById(id).value);
        const updated = await act(
          event.submitter,
          () =>
            api("PATCH", path(), {
              settings: {
                delivery_delay: read("delivery-delay"),
                message_retention_period: read("retention"),
              },
            }),
          "Settings saved.",
        );
        if (updated) queue = updated;
      },
    },
    h("h2", { text: "Settings" }),
    settingField("delivery-delay", "Delivery delay (seconds)", queue.settings.delivery_delay),
    settingField("retention", "Message retention (seconds)", queue.settings.message_retention_period),
    h("div", { class: "row" }, h("button", { type: "submit", text: "Save settings" })),
  );

  const messageInput = h("textarea", { id: "message-body", required: true });
  const send = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        const sent = await act(
          event.submitter,
          () => api("POST", path("/messages"), { body: messageInput.value, content_type: "text" }),
          "Message sent.",
        );
        if (sent !== undefined) {
          messageInput.value = "";
          await refreshFigures();
        }
      },
    },
    h("h2", { text: "Send a test message" }),
    h("label", { for: "message-body", text: "Body (text)" }),
    messageInput,
    h("div", { class: "row" }, h("button", { type: "submit", text: "Send message" })),
  );

  const peek = h(
    "section",
    {},
    h("h2", { text: "Messages" }),
    h("p", {
      class: "muted",
      text: "A peek shows messages without leasing them: nothing changes for consumers.",
    }),
    h(
      "div",
      { class: "row" },
      h("button", {
        type: "button",
        class: "secondary",
        text: "Peek messages",
        onclick: async (event) => {
          const result = await act(event.currentTarget, () =>
            api("POST", path("/messages/peek"), { batch_size: 20 }),
          );
          if (!result) return;
          const peeked = result.messages ?? [];
          peekBody.replaceChildren(
            ...(peeked.length
              ? peeked.map((m) =>
                  h(
                    "tr",
                    {},
                    h("td", { class: "hide-narrow" }, h("code", { text: m.id })),
                    h("td", { class: "num", text: count(m.attempts) }),
                    h("td", { text: new Date(m.timestamp_ms).toLocaleString() }),
                    h("td", {}, h("pre", { text: typeof m.body === "string" ? m.body : JSON.stringify(m.body) })),
                  ),
                )
              : [h("tr", {}, h("td", { colspan: 4, class: "muted", text: "No messages to show." }))]),
          );
        },
      }),
      h("button", {
        type: "button",
        class: "danger",
        text: "Purge queue",
        onclick: async (event) => {
          if (!window.confirm(`Delete every message of ${queue.queue_name}? This cannot be undone.`)) return;
          const purged = await act(
            event.currentTarget,
            () => api("POST", path("/purge"), { delete_messages_permanently: true }),
            "Queue purged.",
          );
          if (purged !== undefined) {
            peekBody.replaceChildren();
            await refreshFigures();
          }
        },
      }),
    ),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { "aria-label": "Peeked messages" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col", class: "hide-narrow", text: "Id" }),
            h("th", { scope: "col", class: "num", text: "Attempts" }),
            h("th", { scope: "col", text: "Pushed" }),
            h("th", { scope: "col", text: "Body" }),
          ),
        ),
        peekBody,
      ),
    ),
  );

  const deadLetters = h(
    "section",
    {},
    h("h2", { text: "Dead letters" }),
    h("p", {
      class: "muted",
      text: "When this queue is a dead-letter queue, a redrive moves its messages back to the queues they came from.",
    }),
    h(
      "div",
      { class: "row" },
      h("button", {
        type: "button",
        class: "secondary",
        text: "Redrive dead letters",
        onclick: async (event) => {
          const moved = await act(event.currentTarget, () => api("POST", path("/redrive"), {}));
          if (moved !== undefined) {
            say(`Redrive: ${JSON.stringify(moved)}`, "info");
            await refreshFigures();
          }
        },
      }),
    ),
  );

  async function refreshConsumers() {
    const consumers = await act(null, () => api("GET", path("/consumers")));
    if (!consumers) return;
    consumersBox.replaceChildren(
      consumers.length
        ? h(
            "ul",
            {},
            consumers.map((c) =>
              h(
                "li",
                {},
                `${c.type}: visibility timeout ${count(c.settings?.visibility_timeout_ms)} ms, `,
                `${count(c.settings?.max_retries)} retries, dead letters to `,
                c.dead_letter_queue ? h("strong", { text: c.dead_letter_queue }) : "none",
              ),
            ),
          )
        : h("p", { class: "muted", text: "No consumer: pulls use the defaults." }),
    );
  }
  const dlqInput = h("input", { id: "dlq", maxlength: 255 });
  const consumers = h(
    "section",
    {},
    h("h2", { text: "Consumer" }),
    consumersBox,
    h(
      "form",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          const created = await act(
            event.submitter,
            () =>
              api("POST", path("/consumers"), {
                type: "http_pull",
                ...(dlqInput.value.trim() ? { dead_letter_queue: dlqInput.value.trim() } : {}),
              }),
            "Consumer saved.",
          );
          if (created) await refreshConsumers();
        },
      },
      h("label", { for: "dlq", text: "Dead-letter queue (optional)" }),
      dlqInput,
      h("div", { class: "row" }, h("button", { type: "submit", class: "secondary", text: "Add pull consumer" })),
    ),
  );

  async function refreshListeners() {
    const listeners = await act(null, () => api("GET", path("/listeners")));
    if (!listeners) return;
    if (!listeners.length) {
      listenersBox.replaceChildren(h("p", { class: "muted", text: "No listeners." }));
      return;
    }
    listenersBox.replaceChildren(
      ...listeners.map((l) => {
        const log = h("div");
        return h(
          "div",
          { class: "listener" },
          h(
            "p",
            {},
            h("strong", { text: l.name }),
            " ",
            h("span", { class: `badge ${l.status}`, text: l.status }),
            ` ${l.notify_url} · ${count(l.backlog)} waiting `,
            h("button", {
              type: "button",
              class: "secondary",
              text: "Delivery log",
              onclick: async (event) => {
                const deliveries = await act(event.currentTarget, () =>
                  api("GET", path(`/listeners/${l.listener_id}/deliveries`)),
                );
                if (!deliveries) return;
                log.replaceChildren(
                  deliveries.length
                    ? h(
                        "ul",
                        {},
                        deliveries.map((d) =>
                          h(
                            "li",
                            {},
                            `${d.attempted_at}: ${d.message_ids.length} message(s), `,
                            `status ${d.status || "none"}, ${d.duration_ms} ms`,
                            d.error ? ` (${d.error})` : "",
                          ),
                        ),
                      )
                    : h("p", { class: "muted", text: "No attempts yet." }),
                );
              },
            }),
          ),
          log,
        );
      }),
    );
  }
  const listeners = h("section", {}, h("h2", { text: "Listeners" }), listenersBox);

  show(
    queue.queue_name,
    backLink(),
    h("h1", { text: queue.queue_name }),
    h("section", {}, figures, h("div", { class: "row" }, pauseButton), chartBox),
    send,
    peek,
    settings,
    consumers,
    deadLetters,
    listeners,
  );
  await Promise.all([refreshFigures(), refreshConsumers(), refreshListeners()]);
  refreshTimer = setInterval(refreshFigures, SAMPLE_MS);
}

const backLink = () => h("p", {}, h("a", { href: "#/queues", text: "← All queues" }));

// ---------------------------------------------------------------------------- start

async function loadAccounts() {
  const found = await api("GET", "/accounts");
  accounts = found.map((a) => a.id);
  if (!accounts.length) throw new ApiError(403, "This token names no account.");
  if (!accounts.includes(account())) sessionStorage.setItem(ACCOUNT_KEY, accounts[0]);
  accountSelect.replaceChildren(
    ...accounts.map((id) => h("option", { value: id, selected: id === account(), text: id })),
  );
  accountSelect.hidden = accounts.length < 2;
  logoutButton.hidden = false;
}

async function route() {
  if (!token()) return renderLogin();
  const match = location.hash.match(/^#\/queues\/([0-9a-f]{32})$/);
  if (match) await renderQueue(match[1]);
  else await renderQueues();
  app.focus();
}

async function start() {
  // A token in the fragment (`/ui/#token=…`, as `make run` prints) is taken and removed
  // from the address bar; fragments never reach the server.
  const fragment = location.hash.match(/^#token=(.+)$/);
  if (fragment) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(fragment[1]));
    sessionStorage.removeItem(ACCOUNT_KEY);
    history.replaceState(null, "", `${location.pathname}#/queues`);
  }
  if (!token()) return renderLogin();
  try {
    await loadAccounts();
  } catch (e) {
    return logout(e instanceof ApiError && e.status === 401 ? "The token was refused (401)." : e.message);
  }
  say("");
  await route();
}

accountSelect.addEventListener("change", () => {
  sessionStorage.setItem(ACCOUNT_KEY, accountSelect.value);
  location.hash = "#/queues";
  route();
});
logoutButton.addEventListener("click", () => logout());
window.addEventListener("hashchange", () => {
  if (!location.hash.startsWith("#token=")) route();
});
start();
