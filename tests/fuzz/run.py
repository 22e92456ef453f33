#!/usr/bin/env python3
"""HTTP fuzzing of a real broker process: zero 5xx, zero hangs, bounded memory.

1. Starts the release broker on a free port against the configured Redis, under a fresh
   key prefix, with a queue, its consumer and some messages to work on.
2. Runs schemathesis against the broker's own /openapi.json twice: once with the path
   ids pinned to that real queue (so generated bodies reach push, pull, ack ... for
   real), once with generated ids everywhere.
3. Sends hand-written hostile requests over raw sockets: 10 MB bodies (declared and
   chunked), slowloris heads and bodies, invalid UTF-8, NaN, huge numbers, deep
   nesting, path segments such as {}, *, .., %00.
4. Samples the broker's resident memory all along, and reads the request and 5xx
   counts from its own /metrics (leaseq_http_requests_total), so the figures are the
   server's, not the fuzzer's.

Exits non-zero on any 5xx, any request that hung, a schemathesis server-error finding,
or memory past its bound. Writes the figures as JSON to --report.
"""

import argparse
import concurrent.futures
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ACCOUNT = "fuzz"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Generous: the broker idles at a few MB; 10 MB bodies are refused before they are read.
PEAK_RSS_BOUND_MB = 256
GROWTH_BOUND_MB = 64
CLIENT_TIMEOUT_SECS = 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary, workdir):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        prefix = f"lqfuzz:{secrets.token_hex(8)}"
        self.env = dict(
            os.environ,
            LEASEQ__SERVER__BIND=f"127.0.0.1:{self.port}",
            LEASEQ__SERVER__WORKERS="2",
            LEASEQ__SERVER__CLIENT_TIMEOUT_SECS=str(CLIENT_TIMEOUT_SECS),
            LEASEQ__REDIS__KEY_PREFIX=prefix,
            LEASEQ__AUTH__JWT_SECRET=secrets.token_hex(32),
            LEASEQ__AUTH__LEASE_SECRET=secrets.token_hex(32),
            LEASEQ__LOG__LEVEL="warn",
        )
        self.log = open(os.path.join(workdir, "broker.log"), "ab")
        self.proc = subprocess.Popen(
            [binary, "serve"], env=self.env, stdout=self.log, stderr=self.log
        )
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                sys.exit(f"broker did not start; see {self.log.name}")
            time.sleep(0.05)
        mint = lambda account: subprocess.run(
            [binary, "token", "--account", account, "--ttl", "6h"],
            env=self.env, check=True, capture_output=True, text=True,
        ).stdout.strip()
        self.token = mint(ACCOUNT)
        # For generated account ids: past auth, so requests reach routing and validation.
        self.any_account_token = mint("*")

    def rss_mb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def api(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base}/client/v4/accounts/{ACCOUNT}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())["result"]

    def requests_by_status(self):
        """leaseq_http_requests_total summed by status, from the broker's /metrics."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as r:
            text = r.read().decode()
        totals = {}
        for m in re.finditer(r'^leaseq_http_requests_total\{(.*)\} (\S+)$', text, re.M):
            status = re.search(r'status="(\d+)"', m.group(1)).group(1)
            totals[status] = totals.get(status, 0) + int(float(m.group(2)))
        return totals

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RssSampler(threading.Thread):
    def __init__(self, broker):
        super().__init__(daemon=True)
        self.broker, self.peak, self.running = broker, 0.0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, self.broker.rss_mb())
            time.sleep(0.1)


def seed_data(broker):
    """A queue with a consumer, a dead-letter queue and messages, some of them leased."""
    queue = broker.api("POST", "/queues", {"queue_name": "fuzz-target"})
    qid = queue["queue_id"]
    consumer = broker.api("POST", f"/queues/{qid}/consumers",
                          {"type": "http_pull", "dead_letter_queue": "fuzz-dlq",
                           "settings": {"max_retries": 1, "visibility_timeout_ms": 1000}})
    broker.api("POST", f"/queues/{qid}/messages/batch",
               {"messages": [{"body": {"i": i}, "content_type": "json"} for i in range(100)]})
    pulled = broker.api("POST", f"/queues/{qid}/messages/pull", {"batch_size": 10})
    message_id = pulled["messages"][0]["id"]
    return qid, consumer["consumer_id"], message_id


# Network-level outcomes that mean the broker failed to answer.
NETWORK_ERRORS = ("Timeout", "ConnectionError", "RemoteDisconnected", "ProtocolError")


def schemathesis_findings(report_dir):
    """Check failures and errors from a run's ndjson report. Errors inside schemathesis
    itself (it has crashed in its coverage phase on some schemas) are kept apart from
    network errors, which are the broker's."""
    findings = {"scenarios": 0, "check_failures": [], "network_errors": [], "internal_errors": []}
    for name in os.listdir(report_dir):
        with open(os.path.join(report_dir, name)) as f:
            for line in f:
                event = json.loads(line)
                if "ScenarioFinished" in event:
                    scenario = event["ScenarioFinished"]
                    findings["scenarios"] += 1
                    for checks in scenario["recorder"].get("checks", {}).values():
                        for check in checks:
                            if check.get("status") == "failure":
                                findings["check_failures"].append(
                                    f'{scenario["recorder"]["label"]}: {check.get("name")}')
                elif "NonFatalError" in event:
                    error = event["NonFatalError"]
                    text = f'{error.get("label")}: {error["value"]["type"]}: {error["value"]["message"][:120]}'
                    kind = "network_errors" if any(n in error["value"]["type"] for n in NETWORK_ERRORS) \
                        else "internal_errors"
                    findings[kind].append(text)
    return findings


def schemathesis(venv_bin, broker, workdir, name, examples, params, exclude, token):
    config = os.path.join(workdir, f"{name}.toml")
    with open(config, "w") as f:
        f.write("[parameters]\n")
        for key, value in params.items():
            f.write(f'"path.{key}" = "{value}"\n')
        for path, method in exclude:
            f.write(f'\n[[operations]]\ninclude-path = "{path}"\ninclude-method = "{method}"\nenabled = false\n')
    cmd = [
        os.path.join(venv_bin, "schemathesis"), "--config-file", config, "run",
        f"{broker.base}/openapi.json",
        "--url", broker.base,
        "-H", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                    "response_schema_conformance,ignored_auth",
        "--max-examples", str(examples),
        # A pull may long-poll for up to 20 s (wait_time_ms); anything slower is a hang.
        "--request-timeout", "30",
        "--max-response-time", "25",
        "--workers", "2",
        "--seed", "7",
        "--continue-on-failure",
        "--generation-database", "none",
        "--no-color",
        "--report", "ndjson", "--report-dir", os.path.join(workdir, name),
    ]
    print(f"\n== schemathesis ({name}) ==", flush=True)
    started = time.time()
    proc = subprocess.run(cmd, cwd=workdir)
    findings = schemathesis_findings(os.path.join(workdir, name))
    return {"exit_code": proc.returncode, "seconds": round(time.time() - started, 1), **findings}


# --- hand-written hostile requests over raw sockets -------------------------------

def raw(broker, head, body=b"", timeout=15, slow_body_delay=None):
    """Sends one request as raw bytes; returns (status or None, seconds, response bytes)."""
    started = time.time()
    with socket.create_connection(("127.0.0.1", broker.port), timeout=timeout) as s:
        try:
            s.sendall(head)
            if slow_body_delay is None:
                s.sendall(body)
            else:
                for byte in body:
                    s.sendall(bytes([byte]))
                    time.sleep(slow_body_delay)
        except OSError:
            pass  # the server may refuse a body it will not read; its answer still counts
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data and response_complete(data):
                    break
        except OSError:
            pass
    m = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return (int(m.group(1)) if m else None), time.time() - started, data


def response_complete(data):
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"content-length: *(\d+)", head, re.I)
    return m is not None and len(body) >= int(m.group(1))


def request_head(broker, method, path, length=None, extra=b""):
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {broker.token}\r\n"
    head = head.encode() + b"Content-Type: application/json\r\n" + extra
    if length is not None:
        head += f"Content-Length: {length}\r\n".encode()
    return head + b"Connection: close\r\n\r\n"


def hostile(broker, qid):
    """Each case: (name, status, seconds). A case fails on no answer, a 5xx or a 2xx
    where a refusal is due."""
    base = f"/client/v4/accounts/{ACCOUNT}/queues/{qid}"
    results = []

    def case(name, method, path, body=b"", expect=range(400, 500), chunked=False, **kw):
        if chunked:
            chunks = b"".join(
                f"{len(body[i:i + 65536]):x}\r\n".encode() + body[i:i + 65536] + b"\r\n"
                for i in range(0, len(body), 65536)) + b"0\r\n\r\n"
            head = request_head(broker, method, path, extra=b"Transfer-Encoding: chunked\r\n")
            status, secs, _ = raw(broker, head, chunks, **kw)
        else:
            status, secs, _ = raw(broker, request_head(broker, method, path, len(body)), body, **kw)
        ok = status is not None and status in expect
        results.append({"case": name, "status": status, "seconds": round(secs, 3), "ok": ok})

    ten_mb = b'{"body":"' + b"x" * (10 * 1024 * 1024) + b'"}'
    numbers = ["1e308", "1e400", "-1", "18446744073709551616", "-9223372036854775809",
               "1.5", "NaN", "Infinity", "-Infinity", '"5"', "[]", "{}"]
    fields = [("batch_size", "/messages/pull"), ("visibility_timeout_ms", "/messages/pull"),
              ("delay_seconds", "/messages"), ("batch_size", "/messages/peek")]
    for field, route in fields:
        for n in numbers:
            body = f'{{"{field}": {n}, "body": "x"}}'.encode()
            case(f"{field}={n} on {route}", "POST", base + route, body)
        # null is "not given": the default applies.
        case(f"{field}=null on {route}", "POST", base + route,
             f'{{"{field}": null, "body": "x"}}'.encode(), expect=[200])
    case("retry delay_seconds=-5", "POST", base + "/messages/ack",
         b'{"retries":[{"lease_id":"' + b"0" * 80 + b'","delay_seconds":-5}]}')
    case("deep nesting, whole body", "POST", base + "/messages/pull", b"[" * 1_000_000)
    case("deep nesting in a message body", "POST", base + "/messages",
         b'{"body":' + b"[" * 100_000 + b"]" * 100_000 + b',"content_type":"json"}')
    case("invalid UTF-8 in a string", "POST", base + "/messages", b'{"body":"\xff\xfe\xfd"}')
    case("invalid UTF-8 bare", "POST", base + "/messages/batch", b"\xc3\x28\xa0\xa1")
    case("lone surrogate", "POST", base + "/messages", b'{"body":"\\ud800","content_type":"text"}',
         expect=range(200, 500))
    case("NUL bytes", "POST", base + "/messages/pull", b"\x00" * 64)
    case("lease id of invalid UTF-8", "POST", base + "/messages/ack",
         b'{"acks":[{"lease_id":"\xff\xff"}]}')
    case("10 MB body, declared", "POST", base + "/messages", ten_mb, expect=[413])
    case("10 MB body, chunked", "POST", base + "/messages/batch", ten_mb, expect=[413], chunked=True)
    for seg in ["{}", "*", "..", "%00", "%2F", "%7B%7D", "%2e%2e", "a" * 10_000, "%C3%A9", "%FF"]:
        case(f"account segment {seg[:20]}", "GET", f"/client/v4/accounts/{seg}/queues")
        case(f"queue segment {seg[:20]}", "POST", f"/client/v4/accounts/{ACCOUNT}/queues/{seg}/messages/pull")
        case(f"message segment {seg[:20]}", "GET", f"{base}/messages/{seg}")
    return results


def concurrent_big_bodies(broker, qid, count=32, parallel=8):
    """Many 10 MB bodies at once: refused without being buffered."""
    path = f"/client/v4/accounts/{ACCOUNT}/queues/{qid}/messages"
    body = b'{"body":"' + b"y" * (10 * 1024 * 1024) + b'"}'
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        statuses = list(pool.map(
            lambda _: raw(broker, request_head(broker, "POST", path, len(body)), body)[0],
            range(count)))
    return {"sent": count, "413": statuses.count(413),
            "other": [s for s in statuses if s != 413]}


def slowloris(broker, qid, connections=200):
    """Connections that dribble their head or body: closed (or 408) by the server within
    its client timeout, while a normal request is still served quickly."""
    path = f"/client/v4/accounts/{ACCOUNT}/queues/{qid}/messages/pull"
    socks = []
    for i in range(connections):
        s = socket.create_connection(("127.0.0.1", broker.port), timeout=30)
        if i % 2:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode())  # the head never ends
        else:
            s.sendall(request_head(broker, "POST", path, 1000) + b"{")  # the body never ends
        socks.append(s)
    started = time.time()
    status, served_in, _ = raw(broker, request_head(broker, "GET", "/healthz"), timeout=5)
    closed, deadline = 0, started + CLIENT_TIMEOUT_SECS * 3 + 5
    for s in socks:
        s.settimeout(max(0.1, deadline - time.time()))
        try:
            while s.recv(4096):
                pass
            closed += 1
        except OSError:
            pass
        s.close()
    return {"connections": connections, "closed_by_server": closed,
            "seconds_to_close_all": round(time.time() - started, 2),
            "healthz_meanwhile": status, "healthz_seconds": round(served_in, 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/leaseq"))
    ap.add_argument("--examples", type=int, default=300, help="schemathesis examples per operation")
    ap.add_argument("--report", default=os.path.join(ROOT, "target/fuzz-report.json"))
    args = ap.parse_args()
    venv_bin = os.path.dirname(sys.executable)

    workdir = tempfile.mkdtemp(prefix="leaseq-fuzz-")
    broker = Broker(args.binary, workdir)
    sampler = RssSampler(broker)
    rss_start = broker.rss_mb()
    sampler.start()
    try:
        qid, cid, mid = seed_data(broker)
        pinned = {"account_id": ACCOUNT, "queue_id": qid, "consumer_id": cid, "message_id": mid}
        runs = {
            # Deleting the pinned queue would turn the rest of the pass into 404s.
            "pinned-ids": schemathesis(venv_bin, broker, workdir, "pinned-ids", args.examples, pinned,
                                       [("/accounts/{account_id}/queues/{queue_id}", "DELETE")],
                                       broker.token),
            "generated-ids": schemathesis(venv_bin, broker, workdir, "generated-ids", args.examples, {}, [],
                                          broker.any_account_token),
        }
        after_schemathesis = broker.requests_by_status()
        print("\n== hand-written hostile requests ==", flush=True)
        cases = hostile(broker, qid)
        big = concurrent_big_bodies(broker, qid)
        slow = slowloris(broker, qid)
        time.sleep(1)
        rss_end = broker.rss_mb()
        totals = broker.requests_by_status()
    finally:
        sampler.running = False
        broker.stop()

    server_errors = {s: n for s, n in totals.items() if s.startswith("5")}
    failed_cases = [c for c in cases if not c["ok"]]
    report = {
        "requests_total": sum(totals.values()),
        "requests_by_schemathesis": sum(after_schemathesis.values()),
        "requests_by_status": dict(sorted(totals.items())),
        "server_errors": server_errors,
        "schemathesis": runs,
        "hostile_cases": len(cases),
        "hostile_failures": failed_cases,
        "hostile_slowest_seconds": max(c["seconds"] for c in cases),
        "concurrent_10mb_bodies": big,
        "slowloris": slow,
        "rss_mb": {"start": round(rss_start, 1), "peak": round(sampler.peak, 1), "end": round(rss_end, 1)},
        "broker_log": broker.log.name,
    }
    os.makedirs(os.path.dirname(args.report), exist_ok=True)
    with open(args.report, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))

    problems = []
    if server_errors:
        problems.append(f"5xx answers: {server_errors}")
    if failed_cases:
        problems.append(f"{len(failed_cases)} hostile cases failed")
    if big["other"]:
        problems.append(f"10 MB bodies not refused with 413: {big['other']}")
    if slow["closed_by_server"] != slow["connections"] or slow["healthz_meanwhile"] != 200:
        problems.append("slow clients were not cut off, or starved others")
    if sampler.peak > PEAK_RSS_BOUND_MB or rss_end - rss_start > GROWTH_BOUND_MB:
        problems.append(f"memory not bounded: {report['rss_mb']}")
    for name, run in runs.items():
        if run["check_failures"] or run["network_errors"]:
            problems.append(f"schemathesis {name}: {run['check_failures'] + run['network_errors']}")
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print(f"\nOK: {report['requests_total']} requests, no 5xx, no hang, "
          f"peak RSS {report['rss_mb']['peak']} MB")


if __name__ == "__main__":
    main()
