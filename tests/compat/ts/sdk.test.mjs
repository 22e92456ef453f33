// Cloudflare's official TypeScript SDK (npm `cloudflare`, 7.x) against a real leaseq
// broker: every queue method a Cloudflare Queues user calls, unchanged but for the base
// URL. The broker is the binary `cargo build` made, on port 0, under a fresh key prefix.

import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

import Cloudflare from "cloudflare";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target");
const BINARY = process.env.LEASEQ_BIN ?? path.join(TARGET, "debug", "leaseq");
const ACCOUNT = "compat-ts";

let broker;
let client;

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
  const token = minted.stdout.trim();
  broker = spawn(BINARY, ["serve"], { env, stdio: ["ignore", "pipe", "ignore"] });
  const lines = readline.createInterface({ input: broker.stdout });
  let base;
  for await (const line of lines) {
    if (line.startsWith("leaseq listening on ")) {
      base = line.split(" ").pop();
      break;
    }
  }
  assert.ok(base, "the broker started");
  if (process.env.LEASEQ__SERVER__TLS_CERT_FILE) {
    // `make compat`'s second run: over https, Node trusting NODE_EXTRA_CA_CERTS.
    assert.match(base, /^https:\/\//);
  }
  client = new Cloudflare({ apiToken: token, baseURL: `${base}/client/v4`, maxRetries: 0 });
});

after(() => broker?.kill());

const account = { account_id: ACCOUNT };

async function newQueue(name) {
  const queue = await client.queues.create({ ...account, queue_name: `${name}-${randomUUID().slice(0, 8)}` });
  assert.match(queue.queue_id, /^[0-9a-f]{32}$/);
  return queue;
}

test("queues: create with a jurisdiction, list, get, update, edit, metrics, delete", async () => {
  const queue = await client.queues.create({
    ...account,
    queue_name: `ts-q-${randomUUID().slice(0, 8)}`,
    jurisdiction: "eu",
  });
  assert.equal(queue.jurisdiction, "eu");
  const listed = [];
  for await (const q of client.queues.list(account)) listed.push(q.queue_id);
  assert.ok(listed.includes(queue.queue_id));
  const got = await client.queues.get(queue.queue_id, account);
  assert.equal(got.queue_name, queue.queue_name);
  const updated = await client.queues.update(queue.queue_id, {
    ...account,
    queue_name: queue.queue_name,
    settings: { delivery_delay: 5 },
  });
  assert.equal(updated.settings.delivery_delay, 5);
  const edited = await client.queues.edit(queue.queue_id, {
    ...account,
    settings: { delivery_paused: true },
  });
  assert.equal(edited.settings.delivery_paused, true);
  assert.equal(edited.settings.delivery_delay, 5, "edit keeps what it does not name");
  const metrics = await client.queues.getMetrics(queue.queue_id, account);
  assert.equal(metrics.backlog_count, 0);
  await client.queues.delete(queue.queue_id, account);
  await assert.rejects(client.queues.get(queue.queue_id, account), (e) => e.status === 404);
});

test("consumers: create, list, get, update, delete", async () => {
  const queue = await newQueue("ts-c");
  const consumer = await client.queues.consumers.create(queue.queue_id, {
    ...account,
    type: "http_pull",
    settings: { batch_size: 7, max_retries: 2, visibility_timeout_ms: 5000 },
  });
  assert.equal(consumer.type, "http_pull");
  const consumers = [];
  for await (const c of client.queues.consumers.list(queue.queue_id, account)) consumers.push(c);
  assert.equal(consumers.length, 1);
  const got = await client.queues.consumers.get(consumer.consumer_id, {
    ...account,
    queue_id: queue.queue_id,
  });
  assert.equal(got.settings.batch_size, 7);
  const updated = await client.queues.consumers.update(consumer.consumer_id, {
    ...account,
    queue_id: queue.queue_id,
    type: "http_pull",
    settings: { batch_size: 9 },
  });
  assert.equal(updated.settings.batch_size, 9);
  await client.queues.consumers.delete(consumer.consumer_id, { ...account, queue_id: queue.queue_id });
  const none = [];
  for await (const c of client.queues.consumers.list(queue.queue_id, account)) none.push(c);
  assert.equal(none.length, 0);
});

test("messages: push, bulk push, pull, ack and retry", async () => {
  const queue = await newQueue("ts-m");
  await client.queues.messages.push(queue.queue_id, { ...account, body: "hello", content_type: "text" });
  await client.queues.messages.bulkPush(queue.queue_id, {
    ...account,
    messages: [
      { body: { order: 1 }, content_type: "json" },
      { body: "second", content_type: "text" },
    ],
  });
  const pulled = await client.queues.messages.pull(queue.queue_id, {
    ...account,
    batch_size: 10,
    visibility_timeout_ms: 30000,
  });
  assert.equal(pulled.messages.length, 3);
  assert.equal(pulled.message_backlog_count, 3);
  const bodies = pulled.messages.map((m) => m.body).sort();
  assert.deepEqual(bodies, ["hello", "second", '{"order":1}']);
  const [first, second, third] = pulled.messages;
  const acked = await client.queues.messages.ack(queue.queue_id, {
    ...account,
    acks: [{ lease_id: first.lease_id }, { lease_id: second.lease_id }],
    retries: [{ lease_id: third.lease_id, delay_seconds: 0 }],
  });
  assert.equal(acked.ackCount, 2);
  assert.equal(acked.retryCount, 1);
  const again = await client.queues.messages.pull(queue.queue_id, { ...account, batch_size: 10 });
  assert.equal(again.messages.length, 1);
  assert.equal(again.messages[0].id, third.id);
  assert.equal(again.messages[0].attempts, 2);
});

test("messages: peek shows refs, and purge by ref deletes exactly those", async () => {
  const queue = await newQueue("ts-p");
  await client.queues.messages.bulkPush(queue.queue_id, {
    ...account,
    messages: [{ body: "a" }, { body: "b" }, { body: "c" }],
  });
  const peeked = await client.queues.messages.peek(queue.queue_id, { ...account, batch_size: 3 });
  assert.equal(peeked.messages.length, 3);
  for (const m of peeked.messages) assert.equal(typeof m.ref, "string");
  const purged = await client.queues.messages.purge(queue.queue_id, {
    ...account,
    refs: [{ ref: peeked.messages[0].ref }],
  });
  assert.deepEqual(purged.errors, []);
  assert.deepEqual(purged.warnings, {});
  const metrics = await client.queues.getMetrics(queue.queue_id, account);
  assert.equal(metrics.backlog_count, 2);
  const stale = await client.queues.messages.purge(queue.queue_id, {
    ...account,
    refs: [{ ref: peeked.messages[0].ref }],
  });
  assert.equal(Object.keys(stale.warnings).length, 1);
});

test("purge: start and status", async () => {
  const queue = await newQueue("ts-purge");
  await client.queues.messages.push(queue.queue_id, { ...account, body: "gone soon" });
  await client.queues.purge.start(queue.queue_id, { ...account, delete_messages_permanently: true });
  const status = await client.queues.purge.status(queue.queue_id, account);
  assert.equal(status.completed, "true");
  const metrics = await client.queues.getMetrics(queue.queue_id, account);
  assert.equal(metrics.backlog_count, 0);
});

test("accounts, memberships and token verify", async () => {
  const accounts = [];
  for await (const a of client.accounts.list()) accounts.push(a.id);
  assert.deepEqual(accounts, [ACCOUNT]);
  const memberships = [];
  for await (const m of client.memberships.list()) memberships.push(m.account.id);
  assert.deepEqual(memberships, [ACCOUNT]);
  const verified = await client.user.tokens.verify();
  assert.equal(verified.status, "active");
});

test("errors are the SDK's typed errors", async () => {
  await assert.rejects(
    client.queues.create({ ...account, queue_name: "Not Valid" }),
    (e) => e instanceof Cloudflare.BadRequestError && e.errors?.[0]?.code === 10207,
  );
  await assert.rejects(
    client.queues.get("0".repeat(32), account),
    (e) => e instanceof Cloudflare.NotFoundError,
  );
});
