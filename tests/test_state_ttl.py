"""Lifetimes in the Redis state store (a private redis-server, tiny TTLs): a running workflow's keys and
its plan never expire, the TTL starts when the workflow ends, a plan outlives every record naming it,
and writes after the end never leave a key behind. Then ``translator status`` naming the store."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from celery import Celery

from tests.services import ROOT, celery_worker, free_port, redis_server_binary, translator_cli
from translator.runner import Session, prepare, submit
from translator.runtime.celery_app import install
from translator.settings import DEFAULT_BROKER_URL, Settings
from translator.store.state import FAILURE_WORKFLOW_KEEP, FAILURE_WORKFLOW_KEY, RedisStore, plan_digest

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed")

PLAN = '{"plan": "shared"}'
DEFS = ROOT / "tests" / "fixtures" / "runtime"


def _workflow(wf_id: str) -> dict:
    return {"workflowId": wf_id, "workflowName": "n", "status": "RUNNING", "input": {}, "output": {}}


def _task(task_id: str, seq: int, status: str = "SCHEDULED") -> dict:
    return {"taskId": task_id, "seq": seq, "status": status, "referenceTaskName": task_id, "startTime": 0}


def _store(redis_url: str, request: pytest.FixtureRequest, ttl: int, prefix: str | None = None) -> RedisStore:
    return RedisStore(redis_url, prefix=prefix or f"{request.node.name}:", ttl=ttl)


def _ttls(store: RedisStore, wf_id: str, plan: str = PLAN) -> dict[str, int]:
    """Every key of the execution and of its plan that exists -> TTL in seconds (-1: none). (The set of
    open task ids is gone once no task is open.)"""
    found = {key: store.client.ttl(key) for key in store.workflow_keys(wf_id, plan_digest(plan))}
    return {key: ttl for key, ttl in found.items() if ttl != -2}


def _eventually(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _gone(store: RedisStore, wf_id: str) -> bool:
    return not any(store.client.exists(key) for key in store.workflow_keys(wf_id, plan_digest(PLAN)))


def _end(store: RedisStore, wf_id: str, how: str, output: dict | None = None) -> None:
    fields = {"status": "COMPLETED", "output": output or {}}
    if how == "save_tasks":
        assert store.save_tasks(wf_id, _task("t1", 1, "COMPLETED"), finish=fields).ended
    else:
        assert store.finish_workflow(wf_id, fields)


def test_a_running_workflow_and_its_plan_have_no_ttl(redis_url, request):
    store = _store(redis_url, request, ttl=1)
    store.create_workflow(_workflow("w1"), PLAN, _task("t1", 1))
    # every write a running workflow gets
    snap = store.snapshot("w1")
    assert store.claim_task("w1", _task("t1", 1, "IN_PROGRESS"), takeover=False) is None
    store.save_tasks("w1", _task("t1", 1, "COMPLETED"), _task("t2", snap.seq))
    store.save_task("w1", _task("t2", snap.seq, "IN_PROGRESS"))
    store.next_seq("w1")
    store.update_workflow("w1", {"variables": {"v": 1}})
    assert set(_ttls(store, "w1").values()) == {-1}


@pytest.mark.parametrize("how", ["save_tasks", "finish_workflow"])
def test_the_ttl_starts_when_the_workflow_ends(redis_url, request, how):
    store = _store(redis_url, request, ttl=2)
    store.create_workflow(_workflow("w1"), PLAN, _task("t1", 1))
    assert set(_ttls(store, "w1").values()) == {-1}
    _end(store, "w1", how)
    assert all(0 < ttl <= 2 for ttl in _ttls(store, "w1").values()), _ttls(store, "w1")
    _eventually(lambda: _gone(store, "w1"))


def test_a_plan_is_kept_while_any_workflow_naming_it_runs(redis_url, request):
    store = _store(redis_url, request, ttl=2)
    plan_key = store.workflow_keys("a", plan_digest(PLAN))[3]
    store.create_workflow(_workflow("a"), PLAN, _task("t1", 1))
    store.create_workflow(_workflow("b"), PLAN, _task("t1", 1))
    _end(store, "a", "save_tasks")
    assert store.client.ttl(plan_key) == -1  # b still runs
    _eventually(lambda: not store.client.exists(store.workflow_keys("a")[0]))
    assert store.plan(plan_digest(PLAN)) == {"plan": "shared"}
    _end(store, "b", "finish_workflow")
    assert 0 < store.client.ttl(plan_key) <= 2
    store.create_workflow(_workflow("c"), PLAN, _task("t1", 1))  # a new run takes an ending plan back
    assert store.client.ttl(plan_key) == -1
    _end(store, "c", "save_tasks")
    _eventually(lambda: _gone(store, "c"))


def test_a_plan_outlives_every_record_that_names_it(redis_url, request):
    prefix = f"{request.node.name}:"
    long_lived, short_lived = _store(redis_url, request, 60, prefix), _store(redis_url, request, 2, prefix)
    plan_key = long_lived.workflow_keys("a", plan_digest(PLAN))[3]
    long_lived.create_workflow(_workflow("a"), PLAN, _task("t1", 1))
    short_lived.create_workflow(_workflow("b"), PLAN, _task("t1", 1))
    _end(long_lived, "a", "save_tasks")
    _end(short_lived, "b", "save_tasks")  # the last one to end has the shorter TTL
    record_left = long_lived.client.pttl(long_lived.workflow_keys("a")[0])
    assert record_left <= long_lived.client.pttl(plan_key)
    assert long_lived.client.ttl(plan_key) <= 60


def test_writes_after_the_end_never_outlive_the_record(redis_url, request):
    store = _store(redis_url, request, ttl=2)
    store.create_workflow(_workflow("w1"), PLAN, _task("t1", 1))
    _end(store, "w1", "finish_workflow")
    late = store.save_tasks("w1", _task("t1", 1, "COMPLETED"), _task("t2", 2))
    assert not late.applied  # a late result is refused
    store.snapshot("w1")
    store.claim_task("w1", _task("t3", 3, "IN_PROGRESS"), takeover=False)
    store.save_task("w1", _task("t4", 4, "CANCELED"))
    store.next_seq("w1")
    store.update_workflow("w1", {"variables": {"late": True}})
    assert all(0 < ttl <= 2 for ttl in _ttls(store, "w1").values()), _ttls(store, "w1")
    _eventually(lambda: _gone(store, "w1"))
    # writes for a workflow that is gone leave nothing that never expires
    assert store.snapshot("w1").workflow is None
    store.claim_task("w1", _task("t5", 5, "IN_PROGRESS"), takeover=False)
    store.save_task("w1", _task("t6", 6, "CANCELED"))
    store.next_seq("w1")
    store.update_workflow("w1", {"variables": {}})
    assert all(ttl in (-2, 1, 2) for ttl in _ttls(store, "w1").values()), _ttls(store, "w1")
    _eventually(lambda: _gone(store, "w1"))


def test_a_ttl_of_zero_keeps_ended_workflows(redis_url, request):
    store = _store(redis_url, request, ttl=0)
    store.create_workflow(_workflow("w1"), PLAN, _task("t1", 1))
    _end(store, "w1", "save_tasks")
    assert set(_ttls(store, "w1").values()) == {-1}


def test_a_failure_workflow_still_to_start_keeps_the_record_for_the_sweeper(redis_url, request):
    store = _store(redis_url, request, ttl=2)
    store.create_workflow(_workflow("w1"), PLAN, _task("t1", 1))
    _end(store, "w1", "save_tasks", output={FAILURE_WORKFLOW_KEY: "f1"})
    assert all(2 < ttl <= FAILURE_WORKFLOW_KEEP for ttl in _ttls(store, "w1").values())


@pytest.mark.integration
def test_a_parked_workflow_outlives_the_ttl_on_a_worker_pool(redis_url, tmp_path):
    """startDelay 3 s and a retry delay of 3 s, both parked in the store (park after 1 s), TTL 2 s."""
    env = {"TRANSLATOR_STATE_TTL": "2", "TRANSLATOR_PARK_AFTER": "1", "TRANSLATOR_SWEEP_INTERVAL": "0.2"}
    with celery_worker(redis_url, tmp_path / "worker.log", concurrency=1, name="ttl", extra_env=env):
        app = Celery("ttl-client", broker=redis_url)
        app.conf.update(task_serializer="json", accept_content=["json"], translator_park_after=1)
        install(app)
        store = RedisStore(redis_url, ttl=2)
        plan = prepare(DEFS / "parked.json")
        began = time.monotonic()
        wf_id = submit(Session(app, store, embedded=False), plan, {})
        keys = store.workflow_keys(wf_id, plan_digest(plan.json_text))
        claims = keys[-1]
        running_after_ttl = 0
        deadline = time.monotonic() + 60
        while True:  # one atomic look at the status and every TTL per round
            with store.client.pipeline(transaction=True) as pipe:
                pipe.hget(keys[0], "status")
                for key in keys:
                    pipe.ttl(key)
                raw_status, *ttls = pipe.execute()
            assert raw_status is not None, f"the record of a running workflow is gone: {ttls}"
            status = json.loads(raw_status)
            if status != "RUNNING":
                break
            # every key has no TTL; the claim entries' hash exists only while a started step runs
            found = dict(zip(keys, ttls, strict=True))
            assert found.pop(claims) in (-1, -2) and set(found.values()) == {-1}, found
            if time.monotonic() - began > 3:
                running_after_ttl += 1
            assert time.monotonic() < deadline, "the workflow did not end"
            time.sleep(0.1)
        assert status == "COMPLETED"
        assert running_after_ttl > 0  # looked at while running, well past the TTL
        assert all(ttl == -2 or 0 < ttl <= 2 for ttl in ttls), dict(zip(keys, ttls, strict=True))
        _eventually(lambda: not any(store.client.exists(key) for key in keys))


# ---------------------------------------------------------------------------------------------
# translator status: which store it reads


def _env(**values: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "TRANSLATOR_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(values)
    return env


def test_the_status_store_follows_the_pools_order(monkeypatch):
    for name in (
        "TRANSLATOR_STATE_URL",
        "CELERY_RESULT_BACKEND",
        "CELERY_BROKER_URL",
        "TRANSLATOR_STATE_TTL",
    ):
        monkeypatch.delenv(name, raising=False)
    assert Settings.from_env().status_store_url() == DEFAULT_BROKER_URL
    assert "the default" in Settings.from_env().state_store_origin()
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/3")
    assert (Settings.from_env().status_store_url(), Settings.from_env().state_source) == (
        "redis://127.0.0.1:1/3",
        "CELERY_BROKER_URL",
    )
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "rpc://")  # not Redis: the broker still
    assert Settings.from_env().state_source == "CELERY_BROKER_URL"
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1:1/4")
    assert Settings.from_env().state_source == "CELERY_RESULT_BACKEND"
    monkeypatch.setenv("TRANSLATOR_STATE_URL", "redis://127.0.0.1:1/5")
    settings = Settings.from_env()
    assert (settings.status_store_url(), settings.state_store_origin()) == (
        "redis://127.0.0.1:1/5",
        "from TRANSLATOR_STATE_URL",
    )
    monkeypatch.setenv("TRANSLATOR_STATE_TTL", "-1")
    with pytest.raises(Exception, match="TRANSLATOR_STATE_TTL"):
        Settings.from_env()


@pytest.mark.parametrize("variable", ["TRANSLATOR_STATE_URL", "CELERY_RESULT_BACKEND", "CELERY_BROKER_URL"])
def test_status_names_the_store_it_read(redis_url, variable):
    result = translator_cli(
        "status", "no-such-id", env=_env(**{variable: redis_url, "TRANSLATOR_STATE_PREFIX": "p:"})
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        f"error: no workflow no-such-id in the state store {redis_url} (key prefix 'p:', from {variable})"
    )


def test_status_with_nothing_configured_says_it_read_the_default():
    result = translator_cli("status", "no-such-id", env=_env())
    assert result.returncode == 1, result.stderr
    assert "redis://127.0.0.1:6379/0" in result.stderr and "the default" in result.stderr
    assert "embedded runs" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_status_of_an_unreachable_store_is_a_clear_error():
    port = free_port()  # nothing listens there
    url = f"redis://:secret@127.0.0.1:{port}/0"
    result = translator_cli("status", "some-id", env=_env(TRANSLATOR_STATE_URL=url))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: cannot reach the state store at redis://:***@127.0.0.1:{port}/0: "
    )
    assert "(from TRANSLATOR_STATE_URL)" in result.stderr and "secret" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"CELERY_BROKER_URL": "amqp://guest@127.0.0.1:1//"}, "no Redis state store configured"),
        ({"TRANSLATOR_STATE_URL": "http://127.0.0.1:1/"}, "TRANSLATOR_STATE_URL must be a redis://"),
    ],
)
def test_status_without_a_redis_store_says_so(variables, message):
    result = translator_cli("status", "some-id", env=_env(**variables))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
