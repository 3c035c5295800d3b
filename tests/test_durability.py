"""Durability: worker processes SIGKILLed mid-run and a Redis restart (AOF) lose no workflow, and
no attempt's side effect is recorded twice."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import redis
from celery import Celery

from tests.services import ROOT, celery_worker, free_port, redis_server_binary
from translator.celery_app import install
from translator.runner import Session, prepare, submit, wait
from translator.state import RedisStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

DEFS = ROOT / "tests" / "fixtures" / "runtime"
# Messages of a dead worker come back after 10 s; workers look for them every second.
FAST_RESTORE = {"TRANSLATOR_VISIBILITY_TIMEOUT": "10", "TRANSLATOR_RESTORE_INTERVAL": "1"}


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
    client.conf.update(task_serializer="json", accept_content=["json"])
    install(client)
    store = RedisStore(url)
    return Session(client, store, embedded=False), store


def _check(store: RedisStore, ids: list[str], url: str) -> None:
    executions = [wait(store, wf_id, timeout=180) for wf_id in ids]
    assert [e["status"] for e in executions] == ["COMPLETED"] * len(ids)
    completed = {t["taskId"] for e in executions for t in e["tasks"] if t["status"] == "COMPLETED"}
    assert len(completed) == 2 * len(ids)
    client = redis.Redis.from_url(url, decode_responses=True)
    assert client.smembers("test:effects") >= completed  # every completed attempt did its work
    doubled = [t for t in completed if int(client.get(f"test:runs:{t}") or 0) != 1]
    # An attempt is run again only when its worker died during it (then it never completed there).
    assert len(doubled) <= 4, doubled


def test_workers_killed_twice_lose_no_workflow(redis_aof, tmp_path):
    session, store = _client(redis_aof.url)
    plan = prepare(DEFS / "durable.json")
    ids = [submit(session, plan, {}) for _ in range(100)]
    for round_ in range(2):
        with celery_worker(
            redis_aof.url,
            tmp_path / f"w{round_}.log",
            concurrency=2,
            name=f"victim{round_}",
            extra_env=FAST_RESTORE,
        ) as victim:
            time.sleep(3)
            victim.process.send_signal(signal.SIGKILL)  # the whole worker, mid-run
            victim.process.wait(10)
    with celery_worker(
        redis_aof.url, tmp_path / "survivor.log", concurrency=2, name="survivor", extra_env=FAST_RESTORE
    ):
        _check(store, ids, redis_aof.url)


def test_redis_restart_with_aof_loses_no_workflow(redis_aof, tmp_path):
    session, store = _client(redis_aof.url)
    plan = prepare(DEFS / "durable.json")
    with celery_worker(redis_aof.url, tmp_path / "w.log", concurrency=2, extra_env=FAST_RESTORE):
        ids = [submit(session, plan, {}) for _ in range(40)]
        time.sleep(2)
        redis_aof.kill()  # a crash: only what the AOF holds survives
        time.sleep(1)
        redis_aof.start()
        _check(store, ids, redis_aof.url)
