"""Flower shows each workflow's steps under their Conductor names, searchable by ``wf=<id>``, in the
state the store recorded: SUCCESS, FAILURE for a failed step, RETRY for a retried attempt.

Real Flower (``celery -A tasks flower``) with basic auth from the environment, a private
redis-server and a real worker; checked through Flower's HTTP API."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from celery import Celery

from tests.services import ROOT, celery_worker, flower, redis_server, redis_server_binary, wait_until
from translator.runner import Session, prepare, submit, wait
from translator.runtime.celery_app import install
from translator.store.state import RedisStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

USER, PASSWORD = "ops", "flower-test-secret"


def _get(url: str, auth: bool = True):
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_flower_lists_conductor_task_names_by_workflow(tmp_path):
    with (
        redis_server(tmp_path / "redis") as url,
        flower(url, tmp_path / "flower.log", user=USER, password=PASSWORD) as base,
        celery_worker(url, tmp_path / "worker.log") as _worker,
    ):
        client = Celery("flower-test", broker=url)
        client.conf.update(task_serializer="json", accept_content=["json"])
        install(client)
        store = RedisStore(url)
        session = Session(client, store, embedded=False)
        wf_id = submit(session, prepare(ROOT / "tests" / "fixtures" / "runtime" / "pair.json"), {"i": 1})
        assert wait(store, wf_id, timeout=60)["status"] == "COMPLETED"

        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"{base}/api/tasks", auth=False)
        assert refused.value.code == 401

        query = urllib.parse.urlencode({"search": f"wf={wf_id}"})
        deadline = time.monotonic() + 30
        while True:
            found = _get(f"{base}/api/tasks?{query}")
            rows = sorted(found.values(), key=lambda row: row.get("received") or 0)
            if len(rows) == 2 and all(row.get("state") == "SUCCESS" for row in rows):
                break
            assert time.monotonic() < deadline, f"Flower shows {found}"
            time.sleep(0.5)
        assert [row["name"] for row in rows] == ["add", "echo"]
        assert [row["kwargs"] for row in rows] == [f"wf={wf_id} ref=s", f"wf={wf_id} ref=e"]
        assert {row["uuid"] for row in rows} == set(found)
        by_field = _get(f"{base}/api/tasks?" + urllib.parse.urlencode({"search": f"kwargs:{wf_id}"}))
        assert set(by_field) == set(found)
        types = _get(f"{base}/api/task/types")["task-types"]
        assert {"add", "echo"} <= set(types)


def _rows(base: str, wf_id: str, count: int, final: set[str]) -> list[dict]:
    """Flower's rows for ``wf=<wf_id>``, in the order received, once there are ``count`` of them and
    none is in a state outside ``final``."""

    def settled() -> list[dict] | None:
        found = _get(f"{base}/api/tasks?" + urllib.parse.urlencode({"search": f"wf={wf_id}"}))
        rows = sorted(found.values(), key=lambda row: row.get("received") or 0)
        return rows if len(rows) == count and all(row.get("state") in final for row in rows) else None

    return wait_until(settled, timeout=30, what=f"Flower rows of {wf_id}", interval=0.2)


def test_flower_shows_failures_and_retries_as_recorded(tmp_path):
    fixtures = ROOT / "tests" / "fixtures" / "runtime"
    with (
        redis_server(tmp_path / "redis") as url,
        flower(url, tmp_path / "flower.log", user=USER, password=PASSWORD) as base,
        celery_worker(url, tmp_path / "worker.log") as worker,
    ):
        client = Celery("flower-test", broker=url)
        client.conf.update(task_serializer="json", accept_content=["json"])
        install(client)
        store = RedisStore(url)
        session = Session(client, store, embedded=False)
        retried = submit(session, prepare(fixtures / "retry_fixed.json"), {"failures": 2})
        failed = submit(session, prepare(fixtures / "terminal.json"), {})
        retried_run = wait(store, retried, timeout=60)
        assert retried_run["status"] == "COMPLETED"
        assert wait(store, failed, timeout=60)["status"] == "FAILED"

        # Every attempt is a row of its own (its uuid is the attempt's taskId): two RETRY, one SUCCESS.
        rows = _rows(base, retried, 3, {"RETRY", "SUCCESS"})
        assert [row["state"] for row in rows] == ["RETRY", "RETRY", "SUCCESS"]
        assert [row["uuid"] for row in rows] == [t["taskId"] for t in retried_run["tasks"]]
        assert {row["name"] for row in rows} == {"flaky"}
        assert [row["kwargs"] for row in rows] == [f"wf={retried} ref=f"] * 3  # kept on retries
        assert "planned failure 1 of 2" in rows[0]["exception"]

        (row,) = _rows(base, failed, 1, {"FAILURE"})
        assert row["name"] == "terminal_fail" and row["kwargs"] == f"wf={failed} ref=t"
        assert "StepFailed" in row["exception"]
        assert "FAILED_WITH_TERMINAL_ERROR: input can never work" in row["exception"]
        log = worker.text()  # an expected exception: one line, no traceback
        assert "raised expected: StepFailed('FAILED_WITH_TERMINAL_ERROR" in log
        assert "raised unexpected" not in log
