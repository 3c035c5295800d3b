"""Durability: worker processes SIGKILLed mid-run and a Redis restart (AOF) lose no workflow, and
no attempt's side effect is recorded twice."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.services import ROOT, celery_worker, free_port, redis_server_binary, wait_all_ended, wait_until
from translator.runner import Session, prepare, submit
from translator.runtime.celery_app import install
from translator.store.state import RedisStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

DEFS = ROOT / "tests" / "fixtures" / "runtime"
# The recovery mechanism, explicit: a message a worker took and did not acknowledge is given back
# once it is VISIBILITY s old, by any live worker, which looks every RESTORE_INTERVAL s. VISIBILITY
# must exceed the longest time a live worker holds a message (a 0.15 s step here, many times that on
# a loaded machine), or live deliveries are given back too; recovery then takes about VISIBILITY s.
VISIBILITY = 20
RECOVERY = {"TRANSLATOR_VISIBILITY_TIMEOUT": str(VISIBILITY), "TRANSLATOR_RESTORE_INTERVAL": "1"}
# A recovery makes no workflow end for up to VISIBILITY s; a stalled pool makes none end at all.
STALL = VISIBILITY + 90
# kombu's keys for messages delivered and not acknowledged, and the lock of its restore pass.
UNACKED, RESTORE_MUTEX = "unacked", "unacked_mutex"


class RedisProcess:
    """A redis-server with AOF on a fixed port, which a test can kill and start again."""

    def __init__(self, directory) -> None:
        self.directory, self.port = directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.BusyLoadingError):
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def redis_aof(tmp_path):
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.process.terminate()
        server.process.wait(10)


def _client(url: str) -> tuple[Session, RedisStore]:
    client = Celery("durability-client", broker=url)
    client.conf.update(
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": VISIBILITY},  # as the pool's (RECOVERY)
    )
    install(client)
    store = RedisStore(url)
    return Session(client, store, embedded=False), store


def _check(store: RedisStore, ids: list[str], url: str, *, interrupted: int, steps: int = 2) -> None:
    """All workflows COMPLETED with ``steps`` completed worker tasks each, every attempt ran once but
    for at most ``interrupted`` (the attempts whose process died, or whose writes failed, in the
    middle)."""
    executions = wait_all_ended(store, ids, stall=STALL)
    assert [e["status"] for e in executions] == ["COMPLETED"] * len(ids)
    completed = {
        t["taskId"]
        for e in executions
        for t in e["tasks"]
        if t["status"] == "COMPLETED" and t["taskType"] == "marked"
    }
    assert len(completed) == steps * len(ids)
    client = redis.Redis.from_url(url, decode_responses=True)
    assert client.smembers("test:effects") >= completed  # every completed attempt did its work
    doubled = [t for t in completed if int(client.get(f"test:runs:{t}") or 0) != 1]
    assert len(doubled) <= interrupted, doubled


def _workflows_with_a_message(client: redis.Redis) -> set[str]:
    """Workflows with a step message in a queue (``celery`` and its priority lists) or taken by a
    worker and not acknowledged (kombu's unacked hash)."""
    payloads = [json.loads(item) for key in client.scan_iter("celery*") for item in client.lrange(key, 0, -1)]
    payloads += [json.loads(raw)[0] for raw in client.hvals(UNACKED)]
    return {json.loads(base64.b64decode(p["body"]))[1]["wf"] for p in payloads}


def _in_transit(client: redis.Redis, store: RedisStore, ids: list[str]) -> list[str]:
    """Running workflows whose next step's message is nowhere in Redis: a worker popped it (BRPOP)
    and has not recorded it as taken (unacked) yet."""
    with_message = _workflows_with_a_message(client)
    return [wf for wf in ids if wf not in with_message and not store.status(wf).terminal]


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _pause_mid_run(
    worker, client: redis.Redis, store: RedisStore, ids: list[str], *, steps: int
) -> list[int]:
    """Once the worker has finished ``steps`` more steps (its pool processes are busy with the next
    ones), stop it and its pool processes (SIGSTOP) at an instant when no message is in transit.

    kombu's Redis transport pops a message, then records it as taken: a message in between is in
    the worker's memory only, and lost if the worker or Redis dies then; its wake deadline sends it
    again a visibility timeout later (test_a_message_lost_in_transit_is_sent_again). The crashes
    these tests make happen outside that window, so that each checks the recovery it names. Returns
    the stopped pids."""
    target = client.scard("test:effects") + steps
    for _ in range(100):
        wait_until(lambda: client.scard("test:effects") >= target, timeout=120, what="the pool works")  # noqa: B023
        pid = worker.process.pid
        pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
        _signal(pids, signal.SIGSTOP)  # the main process first: it takes no message from now on
        if not _in_transit(client, store, ids):
            return pids
        _signal(pids, signal.SIGCONT)  # let it record the message, and try again a step later
        target = client.scard("test:effects") + 1
    raise AssertionError("a message was always in transit")


def _kill_mid_run(worker, client: redis.Redis, store: RedisStore, ids: list[str]) -> int:
    """SIGKILL the whole worker mid-run; returns how many messages it took and never acknowledged."""
    _pause_mid_run(worker, client, store, ids, steps=4)
    worker.process.send_signal(signal.SIGKILL)  # its pool processes die with it (PDEATHSIG)
    worker.process.wait(10)
    # It may have died inside kombu's restore pass, holding the pass's lock, which would expire
    # only after 300 s and hold up every restore until then: release it (no other worker is alive).
    client.delete(RESTORE_MUTEX)
    return client.hlen(UNACKED)


def test_workers_killed_twice_lose_no_workflow(redis_aof, tmp_path):
    session, store = _client(redis_aof.url)
    client = redis.Redis.from_url(redis_aof.url, decode_responses=True)
    plan = prepare(DEFS / "durable.json")
    ids = [submit(session, plan, {}) for _ in range(100)]
    for round_ in range(2):
        with celery_worker(
            redis_aof.url,
            tmp_path / f"w{round_}.log",
            concurrency=2,
            name=f"victim{round_}",
            extra_env=RECOVERY,
        ) as victim:
            stranded = _kill_mid_run(victim, client, store, ids)
        assert stranded >= 1  # acks_late: the dead worker's messages wait for the visibility timeout
    with celery_worker(
        redis_aof.url, tmp_path / "survivor.log", concurrency=2, name="survivor", extra_env=RECOVERY
    ):
        _check(store, ids, redis_aof.url, interrupted=4)  # 2 kills x 2 pool processes


def test_redis_restart_with_aof_loses_no_workflow(redis_aof, tmp_path):
    session, store = _client(redis_aof.url)
    client = redis.Redis.from_url(redis_aof.url, decode_responses=True)
    plan = prepare(DEFS / "durable.json")
    with celery_worker(redis_aof.url, tmp_path / "w.log", concurrency=2, extra_env=RECOVERY) as worker:
        ids = [submit(session, plan, {}) for _ in range(40)]
        paused = _pause_mid_run(worker, client, store, ids, steps=4)
        redis_aof.kill()  # a crash, mid-run: only what the AOF holds survives
        redis_aof.start()
        _signal(paused, signal.SIGCONT)  # the steps under way carry on, and find Redis restarted
        _check(store, ids, redis_aof.url, interrupted=2)  # the 2 pool processes' attempts


def test_a_message_lost_in_transit_is_sent_again(redis_aof, tmp_path):
    """kombu's Redis transport pops a message, then records it as taken: a worker or Redis that dies
    in between loses it. Every SCHEDULED attempt has a wake deadline VISIBILITY s after it is due,
    so a sweeper sends a lost step again, as kombu gives back one a dead worker had taken."""
    session, store = _client(redis_aof.url)
    client = redis.Redis.from_url(redis_aof.url, decode_responses=True)
    plan = prepare(DEFS / "durable.json")
    ids = [submit(session, plan, {}) for _ in range(3)]
    assert client.rpop("celery") is not None  # what a worker killed right after its BRPOP took along
    with celery_worker(redis_aof.url, tmp_path / "w.log", concurrency=2, extra_env=RECOVERY):
        _check(store, ids, redis_aof.url, interrupted=0)


def test_a_worker_killed_during_forks_loses_nothing_and_never_joins_twice(redis_aof, tmp_path):
    session, store = _client(redis_aof.url)
    client = redis.Redis.from_url(redis_aof.url, decode_responses=True)
    plan = prepare(DEFS / "cf_durable_fork.json")
    ids = [submit(session, plan, {}) for _ in range(30)]
    with celery_worker(
        redis_aof.url, tmp_path / "victim.log", concurrency=2, name="victim", extra_env=RECOVERY
    ) as victim:
        _kill_mid_run(victim, client, store, ids)
    with celery_worker(
        redis_aof.url, tmp_path / "survivor.log", concurrency=2, name="survivor", extra_env=RECOVERY
    ):
        _check(store, ids, redis_aof.url, interrupted=2, steps=4)
    for wf_id in ids:
        execution = store.workflow(wf_id)
        assert execution is not None
        joins = [t for t in execution["tasks"] if t["taskType"] == "JOIN"]
        after = [t for t in execution["tasks"] if t["referenceTaskName"] == "after"]
        assert [j["status"] for j in joins] == ["COMPLETED"]  # one JOIN record, completed once
        assert set(joins[0]["outputData"]) == {"a", "b", "c"}
        assert [t["retryCount"] for t in after] == [0]  # the step after the join was scheduled once
