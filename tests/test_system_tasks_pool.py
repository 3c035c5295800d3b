"""System tasks on a real worker pool: a HUMAN approval that waits with no message in flight through a
worker and a Redis restart and ends with ``translator complete-task``; WAIT, HTTP (its own queue, the
SSRF allow list), INLINE, SET_VARIABLE and EVENT (a message a plain kombu consumer reads) in one
workflow; embedded runs of the same."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kombu import Connection

from tests.services import (
    celery_worker,
    embedded_env,
    redis_server_binary,
    service_env,
    translator_cli,
    wait_until,
)
from tests.test_durability import _client, redis_aof  # noqa: F401 (a fixture)
from tests.test_run_integration import DEFS
from translator.runner import prepare, submit, wait

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]


@pytest.fixture
def api() -> Iterator[str]:
    """A JSON endpoint on loopback: GET / returns three items."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"items": [1, 2, 3]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _task(execution: dict[str, Any], ref: str) -> dict[str, Any]:
    return [t for t in execution["tasks"] if t["referenceTaskName"] == ref][-1]


def _messages_in_flight(url: str) -> int:
    """Messages waiting in the broker's queues or delivered and not acknowledged."""
    import redis

    client = redis.Redis.from_url(url)
    waiting = sum(client.llen(q) for q in ("celery", "http"))
    return waiting + int(client.hlen("unacked"))


# How long the approval test leaves the HUMAN task waiting with the worker up (the acceptance run
# uses 600: TRANSLATOR_TEST_HUMAN_WAIT=600 pytest tests/test_system_tasks_pool.py -k human).
HUMAN_WAIT = float(os.environ.get("TRANSLATOR_TEST_HUMAN_WAIT", "3"))


def _stays_parked(store: Any, wf_id: str, url: str, seconds: float) -> None:
    """For ``seconds``, the HUMAN task stays IN_PROGRESS with nothing in the broker (checked each second)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        assert _task(store.workflow(wf_id), "approve")["status"] == "IN_PROGRESS"
        assert _messages_in_flight(url) == 0
        time.sleep(1)


def test_a_human_approval_waits_with_nothing_in_flight_survives_restarts_and_completes(redis_aof, tmp_path):  # noqa: F811
    session, store = _client(redis_aof.url)
    wf_id = submit(session, prepare(DEFS / "st_human.json"), {"v": "order-7"})
    with celery_worker(redis_aof.url, tmp_path / "w1.log", concurrency=2):
        wait_until(
            lambda: any(
                t["referenceTaskName"] == "approve" for t in (store.workflow(wf_id) or {}).get("tasks", [])
            ),
            timeout=60,
            what="the HUMAN task",
        )
        human = _task(store.workflow(wf_id), "approve")
        assert human["status"] == "IN_PROGRESS" and human["inputData"] == {"asked": "order-7"}
        wait_until(lambda: _messages_in_flight(redis_aof.url) == 0, timeout=30, what="an empty broker")
        _stays_parked(store, wf_id, redis_aof.url, HUMAN_WAIT)
    redis_aof.kill()  # the worker is gone too; Redis comes back with what its AOF holds
    redis_aof.start()
    assert store.workflow(wf_id)["status"] == "RUNNING"
    env = service_env(redis_aof.url)
    missing = translator_cli("complete-task", wf_id, "nope", env=env)
    assert missing.returncode == 1 and "no pending task 'nope'" in missing.stderr
    with celery_worker(redis_aof.url, tmp_path / "w2.log", concurrency=2):
        done = translator_cli(
            "complete-task", wf_id, "approve", "--output", '{"approved": true}', env=env, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "COMPLETED"
        execution = wait(store, wf_id, timeout=60)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert execution["output"] == {"approved": True}
    assert _task(execution, "approve")["outputData"] == {"approved": True}
    again = translator_cli("complete-task", wf_id, "approve", env=env)
    assert again.returncode == 1 and "has ended (COMPLETED)" in again.stderr


def test_wait_http_inline_set_variable_and_event_run_on_the_pool(redis_url, api, tmp_path):
    session, store = _client(redis_url)
    allow = {"TRANSLATOR_FETCH_ALLOW": api}
    with celery_worker(redis_url, tmp_path / "w.log", concurrency=2, extra_env=allow) as worker:
        wf_id = submit(
            session, prepare(DEFS / "st_wait_http_event.json"), {"wait": "2s", "url": f"http://{api}/"}
        )
        execution = wait(store, wf_id, timeout=90)
        log = worker.text()
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert execution["output"] == {"count": 3, "status": 200}
    pause = _task(execution, "pause")
    assert pause["endTime"] - pause["startTime"] >= 2000
    assert _task(execution, "call")["taskType"] == "HTTP"
    assert _task(execution, "announce")["outputData"]["event_produced"] == "celery:st_events"
    assert "get_data" in log  # the HTTP step ran on the pool, under its Conductor name
    with Connection(redis_url) as connection:
        queue = connection.SimpleQueue("st_events")
        message = queue.get(timeout=10)
        assert message.payload["count"] == 3 and message.payload["workflowInstanceId"] == wf_id
        message.ack()
        queue.close()


def test_an_http_call_to_a_refused_address_fails_with_a_clear_reason_embedded(api):
    stdin = json.dumps({"wait": "0s", "url": f"http://{api}/"})
    result = translator_cli(
        "run",
        str(DEFS / "st_wait_http_event.json"),
        "--input",
        "-",
        "--full",
        env=embedded_env(),
        stdin=stdin,
    )
    assert "Traceback" not in result.stderr
    execution = json.loads(result.stdout)
    assert execution["status"] == "FAILED"
    call = _task(execution, "call")
    assert call["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert (
        "127.0.0.1" in call["reasonForIncompletion"]
        and "TRANSLATOR_FETCH_ALLOW" in call["reasonForIncompletion"]
    )
