// The dashboard (/ui/) in a real browser (Debian's chromium, driven by playwright-core)
// against a real broker: the README's walk-through without curl, and a token for
// another account that sees none of it. With SCREENSHOTS=dir, saves the main views.

import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target");
const BINARY = process.env.LEASEQ_BIN ?? path.join(TARGET, "debug", "leaseq");
const BROWSER = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOTS = process.env.SCREENSHOTS;

const env = {
  ...process.env,
  LEASEQ__SERVER__BIND: "127.0.0.1:0",
  LEASEQ__SERVER__WORKERS: "2",
  LEASEQ__REDIS__KEY_PREFIX: `lqui:${randomUUID()}`,
  LEASEQ__AUTH__JWT_SECRET: randomUUID() + randomUUID(),
  LEASEQ__AUTH__LEASE_SECRET: randomUUID() + randomUUID(),
};
let broker;
let base;
let browser;

function mint(account) {
  const run = spawnSync(BINARY, ["token", "--account", account, "--ttl", "1h"], {
    env,
    encoding: "utf8",
  });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim();
}

before(async () => {
  broker = spawn(BINARY, ["serve"], { env, stdio: ["ignore", "pipe", "ignore"] });
  const lines = readline.createInterface({ input: broker.stdout });
  for await (const line of lines) {
    if (line.startsWith("leaseq listening on ")) {
      base = line.split(" ").pop();
      break;
    }
  }
  assert.ok(base, "the broker started");
  browser = await chromium.launch({
    executablePath: BROWSER,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
  broker?.kill();
});

async function page(width = 1280) {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const tab = await context.newPage();
  tab.setDefaultTimeout(10_000);
  // Anything the page logs as an error (a CSP violation, a script error) fails the test.
  const problems = [];
  tab.on("pageerror", (e) => problems.push(e.message));
  tab.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  return { tab, problems };
}

async function shot(tab, name) {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await tab.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/// The figure a queue page shows under `field`, once it equals `expected`.
async function figure(tab, field, expected) {
  await tab.locator(`[data-field="${field}"]`).filter({ hasText: new RegExp(`^${expected}$`) })
    .waitFor();
}

test("log in, create a queue, send, see the backlog, peek, purge", async () => {
  const { tab, problems } = await page();
  await tab.goto(`${base}/ui/`);
  await shot(tab, "ui-login");
  await tab.getByLabel("API token").fill(mint("ui-walk"));
  await tab.getByRole("button", { name: "Log in" }).click();
  await tab.getByRole("heading", { name: "Queues" }).waitFor();

  await tab.getByLabel("Queue name").fill("orders");
  await tab.getByRole("button", { name: "Create queue" }).click();
  const row = tab.locator('tr[data-queue="orders"]');
  await row.waitFor();
  assert.equal(await row.locator('[data-field="backlog"]').textContent(), "0");

  await row.getByRole("link", { name: "orders" }).click();
  await tab.getByRole("heading", { name: "orders" }).waitFor();
  await figure(tab, "backlog", "0");

  await tab.getByLabel("Body (text)").fill("hello from the dashboard");
  await tab.getByRole("button", { name: "Send message" }).click();
  await figure(tab, "backlog", "1");

  await tab.getByRole("button", { name: "Peek messages" }).click();
  const peeked = tab.getByRole("table", { name: "Peeked messages" });
  await peeked.getByText("hello from the dashboard").waitFor();
  await shot(tab, "ui-queue");

  tab.once("dialog", (dialog) => dialog.accept());
  await tab.getByRole("button", { name: "Purge queue" }).click();
  await figure(tab, "backlog", "0");

  // Back on the list, the backlog is 0 there too, and the page is keyboard reachable.
  await tab.getByRole("link", { name: "← All queues" }).click();
  await tab.locator('tr[data-queue="orders"] [data-field="backlog"]').filter({ hasText: /^0$/ })
    .waitFor();
  await shot(tab, "ui-queues");
  assert.deepEqual(problems, []);
});

test("a token for another account sees none of it", async () => {
  const owner = await page();
  await owner.tab.goto(`${base}/ui/#token=${mint("ui-owner")}`);
  await owner.tab.getByLabel("Queue name").fill("private-queue");
  await owner.tab.getByRole("button", { name: "Create queue" }).click();
  await owner.tab.locator('tr[data-queue="private-queue"]').waitFor();
  // The token left the address bar as soon as the page read it.
  assert.equal(new URL(owner.tab.url()).hash, "#/queues");

  const other = await page();
  await other.tab.goto(`${base}/ui/#token=${mint("ui-other")}`);
  await other.tab.getByRole("heading", { name: "Queues" }).waitFor();
  await other.tab.getByText("No queues yet.").waitFor();
  assert.equal(await other.tab.locator('tr[data-queue="private-queue"]').count(), 0);
  assert.deepEqual([...owner.problems, ...other.problems], []);
});

test("with the keyboard alone, a refused token goes back to the form with the reason", async () => {
  const { tab } = await page();
  await tab.goto(`${base}/ui/`);
  // The token field has the focus; Enter submits.
  await tab.keyboard.type("not-a-token");
  await tab.keyboard.press("Enter");
  await tab.getByText("The token was refused (401).").waitFor();
  assert.equal(await tab.evaluate(() => document.activeElement?.id), "token");
  // And a good one, the same way.
  await tab.keyboard.type(mint("ui-keys"));
  await tab.keyboard.press("Enter");
  await tab.getByRole("heading", { name: "Queues" }).waitFor();
  await tab.keyboard.press("Tab");
  assert.ok(
    await tab.evaluate(() => document.activeElement?.matches("a, button, input, select")),
    "Tab reaches a control",
  );
});

test("on a phone's width the queue list still shows name and backlog", async () => {
  const { tab, problems } = await page(390);
  await tab.goto(`${base}/ui/#token=${mint("ui-phone")}`);
  await tab.getByLabel("Queue name").fill("small-screen");
  await tab.getByRole("button", { name: "Create queue" }).click();
  const row = tab.locator('tr[data-queue="small-screen"]');
  await row.waitFor();
  assert.ok(await row.getByRole("link", { name: "small-screen" }).isVisible());
  assert.ok(await row.locator('[data-field="backlog"]').isVisible());
  const overflow = await tab.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px`);
  await shot(tab, "ui-phone");
  assert.deepEqual(problems, []);
});
