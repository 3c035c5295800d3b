"""Real services for integration tests: a private redis-server and Celery worker subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import redis

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def wait_until(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy (returned), for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def wait_started(store: Any, wf_id: str, *, appear: float = 60, timeout: float = 60) -> dict[str, Any]:
    """The terminal execution of a workflow that may not exist yet (a failure workflow is created
    right after the failed one ends, or by a sweeper later): wait for it to appear, then to end."""
    from translator.runner import wait

    wait_until(lambda: store.status(wf_id) is not None, timeout=appear, what=f"workflow {wf_id} created")
    return wait(store, wf_id, timeout=timeout)


def wait_all_ended(store: Any, ids: list[str], *, stall: float, cap: float = 900) -> list[dict[str, Any]]:
    """The executions of ``ids`` once all are terminal. Fails when none ended for ``stall`` seconds
    (the pool is stuck, not slow) or after ``cap`` seconds in all."""
    began = last_progress = time.monotonic()
    ended: dict[str, dict[str, Any]] = {}
    while len(ended) < len(ids):
        for wf_id in ids:
            if wf_id not in ended:
                status = store.status(wf_id)
                if status is not None and status.terminal:
                    ended[wf_id] = store.workflow(wf_id)
                    last_progress = time.monotonic()
        now = time.monotonic()
        pending = [wf_id for wf_id in ids if wf_id not in ended]
        if pending and (now - last_progress > stall or now - began > cap):
            raise AssertionError(
                f"{len(pending)} of {len(ids)} workflows not ended after {now - began:.0f} s "
                f"(none ended in the last {now - last_progress:.0f} s), e.g. {pending[0]}: "
                f"{store.workflow(pending[0])}"
            )
        if pending:
            time.sleep(0.2)
    return [ended[wf_id] for wf_id in ids]


@contextmanager
def redis_server(directory: Path, *, appendonly: bool = False) -> Iterator[str]:
    """A private redis-server on a free loopback port; yields its URL."""
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed (scripts/bootstrap installs it)")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--daemonize",
        "no",
        "--logfile",
        str(directory / "redis.log"),
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: see {directory / 'redis.log'}") from None
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        stop_process(process)


def stop_process(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM ``process``, and SIGKILL it if it has not exited within ``grace`` seconds."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def service_env(broker_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("CELERY_", "TRANSLATOR_")):
            del env[name]
    env.update(
        CELERY_BROKER_URL=broker_url,
        TRANSLATOR_STATE_URL=broker_url,
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def embedded_env(worker_modules: str | None = "tests.runtime_workers", **extra: str) -> dict[str, str]:
    """This environment without broker, translator or AWS settings (``translator run`` runs embedded),
    with ``worker_modules`` imported by the run, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "TRANSLATOR_", "AWS_"))}
    env["PYTHONPATH"] = str(ROOT)
    if worker_modules:
        env["TRANSLATOR_WORKER_MODULES"] = worker_modules
    env.update(extra)
    return env


def translator_cli(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path = ROOT,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the ``translator`` command line (``python -m translator ARGS``) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "translator", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


class Worker:
    """A ``celery -A tasks worker`` subprocess."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, grace: float = 20) -> None:
        """Warm shutdown: tasks running finish first, for at most ``grace`` seconds; then killed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextmanager
def celery_worker(
    broker_url: str,
    log: Path,
    *,
    modules: str | None = "tests.runtime_workers",
    concurrency: int = 4,
    pool: str = "prefork",
    name: str = "test",
    extra_env: dict[str, str] | None = None,
    queues: str | None = None,
    stop_grace: float = 20,
) -> Iterator[Worker]:
    """Start a real worker pool process and wait until it is ready; stopped on exit (``stop_grace``:
    how long tasks still running may take to finish)."""
    args = [
        str(VENV_BIN / "celery"),
        "-A",
        "tasks",
        "worker",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-l",
        "INFO",
        "-n",
        f"{name}-{os.getpid()}@%h",
        "--without-mingle",
        "--without-gossip",
        *(["-I", modules] if modules else []),
        *(["-Q", queues] if queues else []),
    ]
    handle = log.open("wb")
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env=service_env(broker_url, **(extra_env or {})),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    worker = Worker(process, log)
    try:
        deadline = time.monotonic() + 60
        while " ready." not in worker.text():
            if process.poll() is not None:
                raise RuntimeError(f"celery worker exited ({process.returncode}):\n{worker.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery worker not ready after 60 s:\n{worker.text()[-3000:]}")
            time.sleep(0.1)
        yield worker
    finally:
        worker.stop(stop_grace)
        handle.close()


def s3_client_for(env: dict[str, str]):
    """A boto3 S3 client for the environment ``s3_server`` yields."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


@contextmanager
def s3_server(bucket: str = "translator-images") -> Iterator[dict[str, str]]:
    """moto's S3 server on loopback (real HTTP); yields the environment that points boto3 at it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TRANSLATOR_S3_BUCKET": bucket,
    }
    s3_client_for(env).create_bucket(Bucket=bucket)
    try:
        yield env
    finally:
        server.stop()


@contextmanager
def http_server(directory: Path) -> Iterator[str]:
    """A static HTTP server for ``directory`` on loopback; yields its base URL."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def flower(broker_url: str, log: Path, *, user: str, password: str) -> Iterator[str]:
    """``celery -A tasks flower`` with basic auth from the environment; yields its base URL."""
    import urllib.request

    port = free_port()
    env = service_env(broker_url, FLOWER_BASIC_AUTH=f"{user}:{password}")
    args = [str(VENV_BIN / "celery"), "-A", "tasks", "flower", f"--port={port}", "--address=127.0.0.1"]
    handle = log.open("wb")
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthcheck", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"flower did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        stop_process(process)
        handle.close()
