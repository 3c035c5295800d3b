"""The embedded default: a real Celery worker inside the ``translator run`` process.

With no broker configured, ``translator run`` points the app at an in-process transport (kombu's
in-memory one, woken by each message instead of polling), keeps executions in a MemoryStore, and
starts a Celery WorkController in a background thread whose pool runs steps on daemon threads.
Steps, retries, countdowns and chains go through Celery exactly as on a worker pool.

Differences from a worker pool: a thread cannot be killed, so ``timeoutSeconds`` is enforced as
Conductor does it (a deadline times the attempt out and applies its timeoutPolicy; the late result
is refused) rather than by time limits; stopping waits at most ``STOP_GRACE`` seconds for steps
still running and then leaves their threads behind, which, being daemon threads, do not keep the
process alive; nothing outside the process (Flower, ``translator status``) sees the execution.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from celery import Celery
from celery.concurrency.base import BasePool
from celery.concurrency.thread import TaskPool
from celery.worker import WorkController
from kombu.transport import memory, virtual

from translator.engine.deadlines import TIMEOUTS_BY_DEADLINE
from translator.errors import TranslatorError
from translator.runtime.celery_app import set_store
from translator.store.state import MemoryStore

EMBEDDED_BROKER_URL = "memory://"
TRANSPORT = "translator.runtime.embedded:InProcessTransport"
STOP_GRACE = 1.0  # seconds a stopping worker waits for steps still running
IDLE_WAKE = 0.5  # the worker's loop looks at its state at least this often when idle


class _Signals:
    """What the transport's consumer waits on: a message, an ack (a free prefetch slot), a stop."""

    def __init__(self) -> None:
        self.activity = threading.Event()
        self.stopping = threading.Event()

    def touch(self) -> None:
        self.activity.set()

    def stop(self) -> None:
        self.stopping.set()
        self.activity.set()


_signals = _Signals()


class InProcessChannel(memory.Channel):
    """kombu's in-memory channel, announcing every change a waiting consumer may act on."""

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        super()._put(queue, message, **kwargs)
        _signals.touch()

    def _put_fanout(self, exchange: str, message: Any, routing_key: str | None = None, **kwargs: Any) -> None:
        super()._put_fanout(exchange, message, routing_key, **kwargs)
        _signals.touch()

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        _signals.touch()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue)
        _signals.touch()


class InProcessTransport(memory.Transport):
    """kombu's in-memory transport without polling: a consumer sleeps until something happens.

    kombu's polls every ``polling_interval``; Celery's worker loop drains with a 2 s timeout, so a
    stopping worker used to notice only up to 2 s later. Here the drain returns at once on a stop.
    """

    Channel = InProcessChannel
    global_state = virtual.BrokerState()

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            _signals.activity.clear()  # before looking: a message put after this wakes the wait
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except queue.Empty:
                pass
            if _signals.stopping.is_set():
                raise TimeoutError("the embedded worker is stopping")
            wait = IDLE_WAKE if until is None else min(IDLE_WAKE, until - time.monotonic())
            if wait <= 0 or not _signals.activity.wait(wait):
                raise TimeoutError()  # the caller's timeout, or an idle look at the worker's state


class _DaemonThreads:
    """Run submitted calls on a fixed set of daemon threads.

    concurrent.futures joins the threads of every ThreadPoolExecutor at interpreter exit, so a step
    stuck in a worker function (which no thread can interrupt) would keep the process alive forever.
    """

    def __init__(self, size: int) -> None:
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None]
        self._calls = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"translator-step-{n}", daemon=True) for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._calls.put((future, fn, args))
        return future

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn, args = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits on the future, as concurrent.futures does
                future.set_exception(exc)

    def shutdown(self, grace: float) -> int:
        """Cancel what has not started, let idle threads end; returns how many are still busy after
        waiting at most ``grace`` seconds for them (they are left running)."""
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                call[0].cancel()
        for _ in self._threads:
            self._calls.put(None)
        until = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, until - time.monotonic()))
        return sum(thread.is_alive() for thread in self._threads)

    @property
    def size(self) -> int:
        return len(self._threads)


class DaemonThreadPool(TaskPool):
    """Celery's ``threads`` pool on daemon threads, with a bounded stop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        BasePool.__init__(self, *args, **kwargs)  # not TaskPool's: it would make a ThreadPoolExecutor
        self.executor = _DaemonThreads(self.limit)
        self.busy_at_stop = 0

    def on_stop(self) -> None:
        self.busy_at_stop = self.executor.shutdown(STOP_GRACE)
        BasePool.on_stop(self)

    def _get_info(self) -> Any:
        info = BasePool._get_info(self)
        info.update({"max-concurrency": self.limit, "threads": self.executor.size})
        return info


class _ReadyWorkController(WorkController):
    """A WorkController that signals when its consumer is ready."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


def configure_embedded(app: Celery) -> MemoryStore:
    """Point ``app`` at the in-process transport and this process's store."""
    app.conf.update(
        broker_url=EMBEDDED_BROKER_URL,
        broker_transport=TRANSPORT,
        broker_transport_options={},
        result_backend=None,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        **{TIMEOUTS_BY_DEADLINE: True},  # threads cannot be stopped: time attempts out by deadline
    )
    # Worker threads of the pool resolve ``current_app`` to the default app: make it this one.
    app.set_default()
    store = MemoryStore()
    set_store(store)
    return store


class EmbeddedWorker:
    """Context manager running a Celery worker on daemon threads in this process.

    Leaving it stops the worker within about ``STOP_GRACE`` seconds whatever its steps do;
    ``abandoned`` then tells how many steps were still running (their threads are left behind).
    """

    def __init__(self, app: Celery, concurrency: int = 4, loglevel: str = "WARNING") -> None:
        self.app = app
        self.concurrency = concurrency
        self.loglevel = loglevel
        self.abandoned = 0
        self._worker: _ReadyWorkController | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> EmbeddedWorker:
        _signals.stopping.clear()
        worker = _ReadyWorkController(
            app=self.app,
            hostname=f"embedded@{socket.gethostname()}",
            pool=DaemonThreadPool,
            concurrency=self.concurrency,
            loglevel=self.loglevel,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        thread = threading.Thread(target=worker.start, name="translator-embedded-worker", daemon=True)
        thread.start()
        if not worker.ready.wait(30):
            raise TranslatorError("the embedded Celery worker did not start within 30 s")
        self._worker, self._thread = worker, thread
        return self

    def __exit__(self, *exc: object) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop(in_sighandler=False, exitcode=0)  # its pool waits STOP_GRACE at most
            pool = worker.pool
            self.abandoned = pool.busy_at_stop if isinstance(pool, DaemonThreadPool) else 0
        _signals.stop()  # the consumer's loop returns from its wait and sees the worker stopped
        if self._thread is not None:
            self._thread.join(STOP_GRACE)
            self._thread = None
