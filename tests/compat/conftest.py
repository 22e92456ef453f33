"""Starts a real leaseq broker (port 0, fresh key prefix) for the SDK compatibility tests."""

import os
import pathlib
import subprocess
import uuid

import pytest
from cloudflare import Cloudflare

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BINARY = pathlib.Path(os.environ.get("LEASEQ_BIN", TARGET / "debug" / "leaseq"))
ACCOUNT = "compat-account"


@pytest.fixture(scope="session")
def broker():
    env = dict(os.environ)
    env.update(
        {
            "LEASEQ__SERVER__BIND": "127.0.0.1:0",
            "LEASEQ__SERVER__WORKERS": "2",
            "LEASEQ__REDIS__KEY_PREFIX": f"lqcompat:{uuid.uuid4().hex}",
            "LEASEQ__AUTH__JWT_SECRET": uuid.uuid4().hex,
            "LEASEQ__AUTH__LEASE_SECRET": uuid.uuid4().hex,
        }
    )
    token = subprocess.run(
        [str(BINARY), "token", "--account", ACCOUNT, "--ttl", "1h"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()
    log = open(TARGET / "compat-broker.log", "w")
    process = subprocess.Popen(
        [str(BINARY), "serve"], env=env, stdout=subprocess.PIPE, stderr=log, text=True
    )
    base = None
    for line in process.stdout:
        if line.startswith("leaseq listening on "):
            base = line.split()[-1]
            break
    if base is None:
        process.kill()
        raise RuntimeError(f"broker did not start; see {TARGET / 'compat-broker.log'}")
    if os.environ.get("LEASEQ__SERVER__TLS_CERT_FILE"):
        # `make compat`'s second run: over https, the client trusting SSL_CERT_FILE.
        assert base.startswith("https://"), base
    try:
        yield base, token
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture()
def client(broker):
    base, token = broker
    return Cloudflare(api_token=token, base_url=f"{base}/client/v4", max_retries=0)
