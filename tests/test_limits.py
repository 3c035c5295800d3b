"""Global rate and concurrency limits: the limiter itself (memory and Redis), then real prefork
workers in two separate processes sharing a private redis-server."""

from __future__ import annotations

import time

import pytest
import redis
from celery import Celery

from tests.services import ROOT, celery_worker, redis_server_binary
from translator.runner import Session, prepare, submit, wait
from translator.runtime.celery_app import install
from translator.runtime.limits import Limits, MemoryLimiter, RedisLimiter
from translator.store.state import RedisStore

DEFS = ROOT / "tests" / "fixtures" / "runtime"
needs_redis = pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed")


@pytest.fixture(params=["memory", "redis"])
def limiter(request):
    if request.param == "memory":
        return MemoryLimiter()
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    return RedisLimiter(client, prefix=f"l{time.monotonic_ns()}:")


def test_rate_limit_admits_per_window_then_says_how_long_to_wait(limiter):
    limits = Limits(rate_per=3, rate_seconds=1)
    assert [limiter.acquire("t", f"id{i}", limits).admitted for i in range(3)] == [True] * 3
    wait = limiter.acquire("t", "id3", limits).wait
    assert 0 < wait <= 1.0
    time.sleep(wait + 0.05)
    assert limiter.acquire("t", "id3", limits).admitted


def test_concurrency_slots_are_released_and_reentrant(limiter):
    limits = Limits(concurrency=2)
    assert limiter.acquire("c", "a", limits).admitted
    assert limiter.acquire("c", "b", limits).admitted
    assert not limiter.acquire("c", "c", limits).admitted
    assert limiter.acquire("c", "a", limits).admitted  # a redelivered step keeps its slot
    limiter.release("c", "a")
    assert limiter.acquire("c", "c", limits).admitted


def test_a_lost_slot_comes_back_when_its_lease_lapses(limiter, monkeypatch):
    import translator.runtime.limits as module

    monkeypatch.setattr(module, "LEASE_SECONDS", 0.3)
    limits = Limits(concurrency=1)
    assert limiter.acquire("k", "killed", limits).admitted  # its worker dies: no release, no renewal
    assert not limiter.acquire("k", "next", limits).admitted
    time.sleep(0.35)
    assert limiter.acquire("k", "next", limits).admitted


def test_names_are_independent(limiter):
    limits = Limits(concurrency=1)
    assert limiter.acquire("x", "1", limits).admitted
    assert limiter.acquire("y", "1", limits).admitted


@pytest.fixture(scope="module")
def two_workers(redis_url, tmp_path_factory):
    logs = tmp_path_factory.mktemp("limit-workers")
    with (
        celery_worker(redis_url, logs / "a.log", concurrency=2, name="a"),
        celery_worker(redis_url, logs / "b.log", concurrency=2, name="b"),
    ):
        yield


def _run_many(url: str, name: str, count: int) -> list[dict]:
    client = Celery("limits-client", broker=url)
    client.conf.update(task_serializer="json", accept_content=["json"])
    install(client)
    store = RedisStore(url)
    session = Session(client, store, embedded=False)
    plan = prepare(DEFS / f"{name}.json")
    ids = [submit(session, plan, {}) for _ in range(count)]
    executions = [wait(store, wf_id, timeout=120) for wf_id in ids]
    assert [e["status"] for e in executions] == ["COMPLETED"] * count
    return [t for e in executions for t in e["tasks"]]


@needs_redis
@pytest.mark.integration
def test_rate_limit_holds_across_two_worker_processes(redis_url, two_workers):
    tasks = _run_many(redis_url, "rate_limited", 40)
    assert len(tasks) == 40 and all(t["retryCount"] == 0 for t in tasks)  # deferrals are not retries
    assert len({t["workerId"] for t in tasks}) == 2  # both workers took part
    starts = sorted(t["startTime"] for t in tasks)
    for i, start in enumerate(starts):  # any 2-second window holds at most 5 starts
        assert sum(1 for s in starts[i:] if s < start + 2000) <= 5
    assert (starts[-1] - starts[0]) / 1000 >= (40 / 5 - 1) * 2 - 0.5


@needs_redis
@pytest.mark.integration
def test_concurrency_limit_holds_across_two_worker_processes(redis_url, two_workers):
    tasks = _run_many(redis_url, "concurrency_limited", 12)
    intervals = [(t["outputData"]["began"], t["outputData"]["ended"]) for t in tasks]
    peak = max(sum(1 for b, e in intervals if b <= moment < e) for moment, _ in intervals)
    assert peak == 2
    assert all(t["retryCount"] == 0 and t["status"] == "COMPLETED" for t in tasks)


@needs_redis
@pytest.mark.integration
def test_isolated_steps_run_only_on_the_pool_that_serves_their_queue(redis_url, two_workers, tmp_path):
    with celery_worker(
        redis_url, tmp_path / "gpu.log", concurrency=1, name="gpu", queues="add@ns1-gpu"
    ) as gpu:
        client = Celery("queues-client", broker=redis_url)
        client.conf.update(task_serializer="json", accept_content=["json"])
        install(client)
        store = RedisStore(redis_url)
        wf_id = submit(Session(client, store, embedded=False), prepare(DEFS / "isolated.json"), {})
        execution = wait(store, wf_id, timeout=60)
        assert execution["status"] == "COMPLETED"
        workers = {t["referenceTaskName"]: t["workerId"] for t in execution["tasks"]}
        assert workers["isolated"].startswith("gpu-")
        assert not workers["plain"].startswith("gpu-")
        assert "add@ns1-gpu" in gpu.text()
