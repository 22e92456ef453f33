# leaseq chores. `make run` and `make test` are the front door (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
VENV := .venv
FUZZ_VENV := .venv-fuzz
PYTHON ?= python3

.PHONY: run test test-cluster ui-test compat wrangler deploy-check lint redis cluster cluster-stop build bench reliability fuzz cargo-fuzz

## Start a local Redis when none answers at redis.url (installing it if needed).
redis:
	@scripts/ensure-redis.sh

## A local Redis Cluster (3 masters + 3 replicas, ports 7100-7105) for development;
## prints the seed nodes. `make cluster-stop` stops exactly those processes.
cluster:
	@scripts/cluster.sh start

cluster-stop:
	@scripts/cluster.sh stop

## Run the broker in dev mode: prints a ready token and a sample curl.
run: redis
	$(CARGO) run --release --quiet -- serve --dev

## Every test: unit, integration (real Redis, app on port 0), the Cloudflare SDK compat
## suite and the dashboard in a browser.
test: redis
	@scripts/forget-test-keys.sh
	$(CARGO) test --workspace --all-targets
	$(MAKE) compat
	$(MAKE) ui-test

## The API suite and the SDK compat suites again, on the local Redis Cluster (`make
## cluster`): every broker the tests start talks to it. Skipped: the tests that need a
## single node (no replicas, a Redis they break or stop) or read its keys directly. (The
## hostile suite's before/after key snapshots see only the seed node there.)
CLUSTER_SEEDS := redis://127.0.0.1:7100,redis://127.0.0.1:7101,redis://127.0.0.1:7102
SINGLE_NODE_TESTS := storage:: \
	cluster::reads_do_not_wait_for_replicas \
	cluster::without_the_replicas_asked_for_a_write_is_a_prompt_503 \
	errors::a_broken_redis_gives_a_fast_503_envelope \
	errors::ids_that_could_break_a_redis_key_are_refused_before_reaching_redis \
	errors::per_process_rate_limits_remain_an_option \
	observability::while_redis_is_down_calls_fail_fast_with_503_and_service_resumes_after \
	lifecycle::idle_queues_are_not_due_for_a_retention_sweep \
	lifecycle::retention_deletes_ready_delayed_and_leased_messages_and_counts_them \
	listeners::deleting_the_queue_or_the_listener_leaves_no_key_behind \
	messages::the_oldest_timestamp_follows_the_oldest_unacked_message \
	queues::delete_removes_the_queue_and_all_its_messages \
	security::records_written_before_the_entry_generation_existed_still_pull_and_ack \
	security_auth::a_token_without_iat_is_401_while_lifetimes_are_capped \
	hostile::paths::hostile_path_segments_are_envelopes_in_every_id_position_and_reach_no_redis_key
test-cluster: redis cluster
	LEASEQ_TEST_CLUSTER_NODES=$(CLUSTER_SEEDS) $(CARGO) test --test api -- \
	  $(foreach t,$(SINGLE_NODE_TESTS),--skip $(t))
	LEASEQ__REDIS__CLUSTER_NODES='[$(shell sed 's/[^,]*/"&"/g' <<< '$(CLUSTER_SEEDS)')]' $(MAKE) compat

build:
	$(CARGO) build --release

$(VENV)/.installed: tests/compat/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/compat/requirements.txt
	touch $@

TS_COMPAT := tests/compat/ts

$(TS_COMPAT)/node_modules/.installed: $(TS_COMPAT)/package-lock.json
	cd $(TS_COMPAT) && npm ci --no-audit --no-fund --silent
	touch $@

## The official `cloudflare` SDKs, Python and TypeScript (npm, from the lockfile),
## against a real broker; then both again over https (server.tls_*, with a certificate
## from deploy/tls/make-local-ca.sh that the clients are told to trust).
COMPAT_TLS := $(abspath target/compat-tls)
compat: redis $(VENV)/.installed $(TS_COMPAT)/node_modules/.installed
	$(CARGO) build --quiet
	$(VENV)/bin/python -m pytest -q tests/compat --ignore=$(TS_COMPAT) --ignore=$(WRANGLER_COMPAT)
	cd $(TS_COMPAT) && node --test --test-concurrency=1 sdk.test.mjs
	deploy/tls/make-local-ca.sh $(COMPAT_TLS) >/dev/null
	export LEASEQ__SERVER__TLS_CERT_FILE=$(COMPAT_TLS)/cert.pem \
	  LEASEQ__SERVER__TLS_KEY_FILE=$(COMPAT_TLS)/key.pem \
	  SSL_CERT_FILE=$(COMPAT_TLS)/ca.pem NODE_EXTRA_CA_CERTS=$(COMPAT_TLS)/ca.pem && \
	  $(VENV)/bin/python -m pytest -q tests/compat --ignore=$(TS_COMPAT) --ignore=$(WRANGLER_COMPAT) && \
	  cd $(TS_COMPAT) && node --test --test-concurrency=1 sdk.test.mjs

## Format, clippy, and the layering: the domain crate must not depend on HTTP or OpenAPI.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@tree="$$($(CARGO) tree -p leaseq-core -e normal --prefix none)" && \
	  if grep -E '^(actix|utoipa)' <<< "$$tree"; then \
	    echo "leaseq-core depends on the crates above: the domain must not know HTTP"; exit 1; fi

## The standard benchmark set (medians of 3 runs); rewrites the generated part of docs/benchmarks.md.
bench: redis
	$(CARGO) build --release --quiet -p leaseq-bench
	./target/release/leaseq-bench --scenario standard --runs 3 --write docs/benchmarks.md

WRANGLER_COMPAT := tests/compat/wrangler

$(WRANGLER_COMPAT)/node_modules/.installed: $(WRANGLER_COMPAT)/package-lock.json
	cd $(WRANGLER_COMPAT) && npm ci --no-audit --no-fund --silent
	touch $@

## wrangler's `queues` commands against a real broker (wrangler 4 and the Node 22 it
## needs come from npm, ~400 MB, so this runs beside `make test`, in `.ci/run`).
wrangler: redis $(WRANGLER_COMPAT)/node_modules/.installed
	$(CARGO) build --quiet
	cd $(WRANGLER_COMPAT) && node --test --test-concurrency=1 smoke.test.mjs

UI_TEST := tests/ui

$(UI_TEST)/node_modules/.installed: $(UI_TEST)/package-lock.json
	cd $(UI_TEST) && npm ci --no-audit --no-fund --silent
	touch $@

## The dashboard (/ui/) in Debian's chromium driven by playwright-core, against a real
## broker; chromium is installed with apt when missing. Skipped, saying so, only when
## it cannot be. `make ui-test SCREENSHOTS=docs/screenshots` also saves the main views.
ui-test: redis $(UI_TEST)/node_modules/.installed
	@if ! scripts/ensure-chromium.sh; then \
	  echo "ui-test: SKIPPED: no chromium on this machine and none could be installed"; \
	  exit 0; fi; \
	$(CARGO) build --quiet && \
	cd $(UI_TEST) && SCREENSHOTS=$(if $(SCREENSHOTS),$(abspath $(SCREENSHOTS))) \
	  node --test --test-concurrency=1 dashboard.test.mjs

DEPLOY_CHECK := tests/deploy

$(DEPLOY_CHECK)/node_modules/.installed: $(DEPLOY_CHECK)/package-lock.json
	cd $(DEPLOY_CHECK) && npm ci --no-audit --no-fund --silent
	touch $@

## deploy/compose.yml against the Compose specification's schema, deploy/k8s against the
## Kubernetes API schemas, the references between the files, and their leaseq
## configuration files read by leaseq itself.
deploy-check: $(DEPLOY_CHECK)/node_modules/.installed
	$(CARGO) build --quiet
	cd $(DEPLOY_CHECK) && node --test validate.mjs

## The full reliability runs (docs/reliability.md): 200 000 messages through 3 brokers,
## one SIGKILLed every 2 s; then Redis SIGKILLed twice under load. `make test` runs a
## short form (20 000 messages) of the same tests.
RELIABILITY_MESSAGES ?= 200000
reliability: redis
	LEASEQ_RELIABILITY_MESSAGES=$(RELIABILITY_MESSAGES) LEASEQ_RELIABILITY_KILL_EVERY_MS=2000 \
	LEASEQ_RELIABILITY_REPORT=target/reliability.jsonl \
	  $(CARGO) test --release --test reliability -- --nocapture --test-threads 1

$(FUZZ_VENV)/.installed: tests/fuzz/requirements.txt
	$(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/fuzz/requirements.txt
	touch $@

## HTTP fuzzing of a broker process (docs/reliability.md): schemathesis against
## /openapi.json (FUZZ_EXAMPLES per operation, two passes) and hand-written hostile
## requests; fails on any 5xx, hang, or unbounded memory. Figures: target/fuzz-report.json.
## CI runs a short form on the debug build: FUZZ_EXAMPLES=20 FUZZ_PROFILE=debug.
FUZZ_EXAMPLES ?= 200
FUZZ_PROFILE ?= release
fuzz: redis $(FUZZ_VENV)/.installed
	$(CARGO) build $(if $(filter release,$(FUZZ_PROFILE)),--release) --quiet
	$(FUZZ_VENV)/bin/python tests/fuzz/run.py --binary target/$(FUZZ_PROFILE)/leaseq --examples $(FUZZ_EXAMPLES)

## cargo fuzz (nightly): the lease_id and request_body targets, FUZZ_SECONDS each.
FUZZ_SECONDS ?= 300
cargo-fuzz:
	scripts/cargo-fuzz.sh $(FUZZ_SECONDS)
