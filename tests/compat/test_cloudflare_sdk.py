"""leaseq driven only through Cloudflare's official Python SDK (`pip install cloudflare`)."""

import json
import time
import uuid

import cloudflare
import pytest

from conftest import ACCOUNT


def new_queue(client, prefix="compat"):
    queue = client.queues.create(account_id=ACCOUNT, queue_name=f"{prefix}-{uuid.uuid4().hex[:12]}")
    assert queue is not None and len(queue.queue_id) == 32
    return queue


def test_queue_lifecycle(client):
    queue = new_queue(client)
    assert queue.settings.delivery_delay == 0
    assert queue.settings.message_retention_period == 345600
    assert queue.consumers == []

    fetched = client.queues.get(queue.queue_id, account_id=ACCOUNT)
    assert fetched.queue_name == queue.queue_name

    listed = [q.queue_id for q in client.queues.list(account_id=ACCOUNT)]
    assert queue.queue_id in listed

    edited = client.queues.edit(queue.queue_id, account_id=ACCOUNT, settings={"delivery_delay": 3})
    assert edited.settings.delivery_delay == 3
    updated = client.queues.update(
        queue.queue_id, account_id=ACCOUNT, queue_name=queue.queue_name, settings={"message_retention_period": 600}
    )
    assert updated.settings.delivery_delay == 0
    assert updated.settings.message_retention_period == 600

    deleted = client.queues.delete(queue.queue_id, account_id=ACCOUNT)
    assert deleted.success is True
    with pytest.raises(cloudflare.NotFoundError):
        client.queues.get(queue.queue_id, account_id=ACCOUNT)


def test_a_taken_name_is_a_conflict(client):
    queue = new_queue(client)
    with pytest.raises(cloudflare.ConflictError):
        client.queues.create(account_id=ACCOUNT, queue_name=queue.queue_name)


def test_consumers(client):
    queue = new_queue(client)
    consumer = client.queues.consumers.create(
        queue.queue_id,
        account_id=ACCOUNT,
        type="http_pull",
        settings={"batch_size": 10, "max_retries": 5, "visibility_timeout_ms": 5000},
    )
    assert consumer.type == "http_pull"
    assert consumer.queue_name == queue.queue_name
    assert consumer.settings.batch_size == 10
    assert consumer.settings.retry_delay == 0
    assert consumer.dead_letter_queue == ""

    listed = list(client.queues.consumers.list(queue.queue_id, account_id=ACCOUNT))
    assert [c.consumer_id for c in listed] == [consumer.consumer_id]
    got = client.queues.consumers.get(consumer.consumer_id, account_id=ACCOUNT, queue_id=queue.queue_id)
    assert got.settings.max_retries == 5

    replaced = client.queues.consumers.update(
        consumer.consumer_id, account_id=ACCOUNT, queue_id=queue.queue_id, type="http_pull", settings={"batch_size": 3}
    )
    assert replaced.settings.batch_size == 3
    assert replaced.settings.max_retries == 3

    client.queues.consumers.delete(consumer.consumer_id, account_id=ACCOUNT, queue_id=queue.queue_id)
    assert list(client.queues.consumers.list(queue.queue_id, account_id=ACCOUNT)) == []


def test_push_pull_ack_retry_and_metrics(client):
    queue = new_queue(client)
    qid = queue.queue_id
    client.queues.consumers.create(qid, account_id=ACCOUNT, type="http_pull")

    pushed = client.queues.messages.push(qid, account_id=ACCOUNT, body="hello", content_type="text")
    assert pushed.metadata.metrics.backlog_count == 1
    client.queues.messages.push(qid, account_id=ACCOUNT, body={"order": 7, "items": ["a"]}, content_type="json")
    bulk = client.queues.messages.bulk_push(
        qid,
        account_id=ACCOUNT,
        messages=[{"body": "b1", "content_type": "text"}, {"body": {"n": 2}, "content_type": "json"}],
    )
    assert bulk.metadata.metrics.backlog_count == 4

    metrics = client.queues.get_metrics(qid, account_id=ACCOUNT)
    assert metrics.backlog_count == 4
    assert metrics.backlog_bytes == len("hello") + len("b1") + len(json.dumps({"order": 7, "items": ["a"]}, separators=(",", ":"))) + len('{"n":2}')
    assert metrics.oldest_message_timestamp_ms > 0

    peeked = client.queues.messages.peek(qid, account_id=ACCOUNT, batch_size=2)
    assert len(peeked.messages) == 2

    pulled = client.queues.messages.pull(qid, account_id=ACCOUNT, batch_size=10, visibility_timeout_ms=30000)
    assert pulled.message_backlog_count == 4
    bodies = [m.body for m in pulled.messages]
    assert bodies[0] == "hello"
    assert json.loads(bodies[1]) == {"order": 7, "items": ["a"]}
    assert bodies[2] == "b1"
    assert json.loads(bodies[3]) == {"n": 2}
    assert all(m.attempts == 1 for m in pulled.messages)
    assert [m.metadata["CF-Content-Type"] for m in pulled.messages] == ["text", "json", "text", "json"]

    first, second, *rest = pulled.messages
    acked = client.queues.messages.ack(
        qid,
        account_id=ACCOUNT,
        acks=[{"lease_id": m.lease_id} for m in rest] + [{"lease_id": "forged"}],
        retries=[{"lease_id": first.lease_id, "delay_seconds": 0}],
    )
    assert acked.ack_count == 2
    assert acked.retry_count == 1
    assert "forged" in acked.warnings

    again = client.queues.messages.pull(qid, account_id=ACCOUNT, batch_size=10)
    assert [m.id for m in again.messages] == [first.id]
    assert again.messages[0].attempts == 2
    done = client.queues.messages.ack(
        qid, account_id=ACCOUNT, acks=[{"lease_id": again.messages[0].lease_id}, {"lease_id": second.lease_id}]
    )
    assert done.ack_count == 2

    metrics = client.queues.get_metrics(qid, account_id=ACCOUNT)
    assert (metrics.backlog_count, metrics.backlog_bytes, metrics.oldest_message_timestamp_ms) == (0, 0, 0)
    client.queues.delete(qid, account_id=ACCOUNT)


def test_delayed_messages_wait(client):
    queue = new_queue(client)
    qid = queue.queue_id
    client.queues.messages.push(qid, account_id=ACCOUNT, body="later", content_type="text", delay_seconds=1)
    assert client.queues.messages.pull(qid, account_id=ACCOUNT).messages == []
    deadline = time.time() + 5
    while time.time() < deadline:
        messages = client.queues.messages.pull(qid, account_id=ACCOUNT).messages
        if messages:
            assert messages[0].body == "later"
            return
        time.sleep(0.05)
    pytest.fail("the delayed message never arrived")


def test_errors_raise_the_sdk_exceptions(client):
    queue = new_queue(client)
    with pytest.raises(cloudflare.BadRequestError):
        client.queues.messages.pull(queue.queue_id, account_id=ACCOUNT, batch_size=1000)
    with pytest.raises(cloudflare.NotFoundError):
        client.queues.messages.push("0" * 32, account_id=ACCOUNT, body="x", content_type="text")


def test_pause_and_purge(client):
    queue = new_queue(client)
    qid = queue.queue_id
    client.queues.edit(qid, account_id=ACCOUNT, settings={"delivery_paused": True})
    client.queues.messages.push(qid, account_id=ACCOUNT, body="held", content_type="text")
    with pytest.raises(cloudflare.ConflictError):
        client.queues.messages.pull(qid, account_id=ACCOUNT)
    client.queues.edit(qid, account_id=ACCOUNT, settings={"delivery_paused": False})

    purged = client.queues.purge.start(qid, account_id=ACCOUNT, delete_messages_permanently=True)
    assert purged.queue_id == qid
    status = client.queues.purge.status(qid, account_id=ACCOUNT)
    assert status.completed == "true"
    assert status.started_at
    assert client.queues.get_metrics(qid, account_id=ACCOUNT).backlog_count == 0


def test_dead_letter_queue(client):
    queue = new_queue(client)
    qid = queue.queue_id
    dlq_name = f"{queue.queue_name}-dlq"
    client.queues.consumers.create(
        qid, account_id=ACCOUNT, type="http_pull", dead_letter_queue=dlq_name, settings={"max_retries": 0}
    )
    client.queues.messages.push(qid, account_id=ACCOUNT, body="doomed", content_type="text")
    pulled = client.queues.messages.pull(qid, account_id=ACCOUNT)
    client.queues.messages.ack(qid, account_id=ACCOUNT, retries=[{"lease_id": pulled.messages[0].lease_id}])
    dlq = next(q for q in client.queues.list(account_id=ACCOUNT) if q.queue_name == dlq_name)
    dead = client.queues.messages.pull(dlq.queue_id, account_id=ACCOUNT)
    assert [m.id for m in dead.messages] == [pulled.messages[0].id]
    assert dead.messages[0].body == "doomed"
