"""The embedded default: a real Celery worker inside the ``translator run`` process.

With no broker configured, ``translator run`` switches the app to kombu's in-memory transport
(polling every 10 ms instead of kombu's default 1 s), keeps executions in a MemoryStore, and starts a
Celery WorkController with the ``threads`` pool in a background thread. Steps, retries, countdowns
and chains go through Celery exactly as on a worker pool.

Difference from a worker pool: the threads pool cannot enforce hard time limits (only the prefork
pool can kill a stuck task), and nothing outside the process (Flower, ``translator status``) can see
the execution.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from celery import Celery
from celery.worker import WorkController

from translator.celery_app import set_store
from translator.errors import TranslatorError
from translator.state import MemoryStore

EMBEDDED_BROKER_URL = "memory://"
POLLING_INTERVAL = 0.01


class _ReadyWorkController(WorkController):
    """A WorkController that signals when its consumer is ready."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


def configure_embedded(app: Celery) -> MemoryStore:
    """Point ``app`` at the in-memory transport and this process's store."""
    app.conf.update(
        broker_url=EMBEDDED_BROKER_URL,
        broker_transport_options={"polling_interval": POLLING_INTERVAL},
        result_backend=None,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
    )
    # Worker threads of the threads pool resolve ``current_app`` to the default app: make it this one.
    app.set_default()
    store = MemoryStore()
    set_store(store)
    return store


class EmbeddedWorker:
    """Context manager running a threads-pool Celery worker in this process."""

    def __init__(self, app: Celery, concurrency: int = 4, loglevel: str = "WARNING") -> None:
        self.app = app
        self.concurrency = concurrency
        self.loglevel = loglevel
        self._worker: _ReadyWorkController | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> EmbeddedWorker:
        worker = _ReadyWorkController(
            app=self.app,
            hostname=f"embedded@{socket.gethostname()}",
            pool="threads",
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
        if self._worker is not None:
            self._worker.stop(in_sighandler=False, exitcode=0)
        if self._thread is not None:
            self._thread.join(10)
