"""Starting workflows and waiting for them: what ``translator run`` and ``status`` do.

Mode selection: with ``CELERY_BROKER_URL`` set, workflows are sent to the worker pool and kept in
Redis (``TRANSLATOR_STATE_URL``, else the result backend, else the broker); an unreachable broker is
an error within seconds, never a silent fallback. With nothing configured, the workflow runs on an
embedded Celery worker in this process (see :mod:`translator.runtime.embedded`).
"""

from __future__ import annotations

import contextlib
import difflib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from celery.app.utils import find_app
from kombu.exceptions import OperationalError
from kombu.utils.imports import symbol_by_name

from translator.definitions.tasktypes import WORKER_SYSTEM_TYPES
from translator.definitions.validate import load_valid_workflow
from translator.engine.plan import Plan, SubWorkflow, build_plan
from translator.errors import BrokerUnavailable, TranslatorError, UsageError, WorkflowNotFound
from translator.runtime.celery_app import get_limiter, get_store, install, set_store, sweep_interval
from translator.runtime.dispatch import launch
from translator.runtime.embedded import EmbeddedWorker, configure_embedded
from translator.runtime.sweeper import Sweeper
from translator.runtime.workers import get_worker, registered_task_names
from translator.settings import Settings, celery_app_name
from translator.status import WorkflowStatus
from translator.store.records import new_workflow_id, terminate
from translator.store.state import RedisStore, StateStore, StoreUnavailable, safe_url
from translator.text import shorten

CONNECT_TIMEOUT = 4.0
STORE_OUTAGE_TOLERANCE = 120.0  # seconds translator run keeps waiting while the state store is down
ProgressCallback = Callable[[dict[str, Any]], None]


def prepare(
    definition: Path | str, taskdefs: list[Path] | None = None, definitions: list[Path] | None = None
) -> Plan:
    """Load, validate and plan a workflow file (raises DefinitionError with every issue)."""
    return build_plan(load_valid_workflow(definition, taskdefs or [], definitions or []))


def celery_app(name: str | None = None) -> Celery:
    """The Celery app translator runs on, with translator's tasks installed: ``name``, else
    ``TRANSLATOR_CELERY_APP`` (default ``tasks``, the demo app), found as ``celery -A`` finds it
    (``pkg.module`` with an ``app`` or ``celery`` attribute, or ``pkg.module:attr``)."""
    name = name or celery_app_name()
    try:
        # module:attr names the attribute (find_app would retry a missing one as a module)
        app = symbol_by_name(name) if ":" in name else find_app(name)
    except TranslatorError:
        raise
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raised
        raise UsageError(
            f"cannot load the Celery app {name!r} (TRANSLATOR_CELERY_APP, as celery -A takes it: "
            f"pkg.module or pkg.module:attr): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(app, Celery):
        raise UsageError(f"TRANSLATOR_CELERY_APP {name!r} is a {type(app).__name__}, not a Celery app")
    install(app)
    return app


@dataclass
class Session:
    app: Celery
    store: StateStore
    embedded: bool
    abandoned: int = 0  # embedded: steps still running when the worker stopped (threads left behind)


@contextlib.contextmanager
def open_session(settings: Settings | None = None, *, concurrency: int = 4) -> Iterator[Session]:
    """Connect to the worker pool, or start the embedded worker when no broker is configured.

    Leaving an embedded session stops its worker within seconds, whatever its steps are doing."""
    settings = settings or Settings.from_env()
    app = celery_app(settings.celery_app)
    if settings.broker_url is None:
        store = configure_embedded(app)
        app.loader.import_default_modules()
        session = Session(app, store, embedded=True)
        worker = EmbeddedWorker(app, concurrency=concurrency)
        try:
            with contextlib.ExitStack() as services:
                for path in app.conf.get("translator_embedded_services") or []:
                    services.enter_context(symbol_by_name(path)())
                with worker, Sweeper(app, store, sweep_interval(app), get_limiter(app)):
                    yield session
        finally:
            session.abandoned = worker.abandoned
            set_store(None)
        return
    yield _pool(app)


def _pool(app: Celery) -> Session:
    """The worker pool's session: its broker reachable, its state store answering."""
    check_broker(app)
    store = get_store(app)
    if isinstance(store, RedisStore):
        try:
            store.ping()
        except StoreUnavailable as exc:
            raise BrokerUnavailable(str(exc)) from None
    return Session(app, store, embedded=False)


def pool_session(settings: Settings | None = None) -> Session:
    """The worker pool's app and state store, for operating on workflows it runs (there is no
    embedded mode here: an embedded run's workflows live and end in its own process)."""
    settings = settings or Settings.from_env()
    if settings.broker_url is None:
        raise UsageError(
            "no worker pool configured: set CELERY_BROKER_URL to the pool's broker (an embedded "
            "run's workflows live only in the process that runs them)"
        )
    return _pool(celery_app(settings.celery_app))


def complete_task(
    workflow_id: str,
    task_ref: str,
    status: str = "COMPLETED",
    output: dict[str, Any] | None = None,
    reason: str | None = None,
    *,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """End the pending task ``task_ref`` of a workflow the pool runs (a HUMAN task, a WAIT without a
    time, an ``asyncComplete`` task) with ``status`` (COMPLETED, FAILED, FAILED_WITH_TERMINAL_ERROR)
    and ``output``, as Conductor's ``POST /tasks/{workflowId}/{taskRefName}/{status}``; the
    workflow goes on. Returns the task as recorded."""
    from translator.runtime.complete import complete_task as complete
    from translator.status import TaskStatus

    try:
        task_status = TaskStatus(status)
    except ValueError:
        raise UsageError(f"unknown task status {status!r}") from None
    session = pool_session(settings)
    return complete(session.app, session.store, workflow_id, task_ref, task_status, output, reason)


def check_broker(app: Celery) -> None:
    """Fail within seconds when the broker cannot be reached."""
    url = app.conf.broker_url
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=CONNECT_TIMEOUT
            )
    except (OperationalError, OSError, TimeoutError) as exc:
        raise BrokerUnavailable(
            f"cannot reach the Celery broker at {safe_url(str(url))}: {exc}. Start it, fix "
            "CELERY_BROKER_URL, or unset CELERY_BROKER_URL to run embedded"
        ) from None


def missing_workers(plan: Plan) -> list[str]:
    """Task names of the plan with no worker function registered in this process."""
    names: set[str] = set()
    seen: set[int] = set()
    todo = [plan]
    while todo:  # the plan, its sub-workflows and its failure workflow (not those named at run time:
        current = todo.pop()  # a missing worker fails their task with its reason when they run)
        if id(current) in seen:
            continue
        seen.add(id(current))
        names |= {s.name for s in current.steps() if s.type not in WORKER_SYSTEM_TYPES}
        todo += [n.plan for n in current.nodes.values() if isinstance(n, SubWorkflow) and n.plan is not None]
        if current.failure is not None:
            todo.append(current.failure)
    return sorted(name for name in names if get_worker(name) is None)


def missing_workers_message(missing: list[str]) -> str:
    """Which task names have no worker, with the closest registered names."""
    known = registered_task_names()
    described = []
    for name in missing:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        described.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return (
        f"no worker function for task(s) {', '.join(described)}: rename the task in the workflow to "
        "one that has a worker, or define it with @translator.worker_task(...) in a module listed in "
        f"TRANSLATOR_WORKER_MODULES. Workers here: {', '.join(known) or 'none'}"
    )


def submit(
    session: Session,
    plan: Plan,
    workflow_input: dict[str, Any],
    *,
    correlation_id: str | None = None,
    priority: int = 0,
) -> str:
    """Create the execution and send its canvas; returns the workflow id. ``priority`` (0-99,
    Conductor's workflow priority) is recorded; ``correlation_id`` is searchable."""
    if not 0 <= priority <= 99:
        raise UsageError(f"priority {priority} is outside 0-99")
    if session.embedded:
        missing = missing_workers(plan)
        if missing:
            raise UsageError(missing_workers_message(missing))
    wf_id = new_workflow_id()
    try:
        launch(
            session.app,
            session.store,
            plan,
            workflow_input,
            workflow_id=wf_id,
            correlation_id=correlation_id,
            priority=priority,
        )
    except (OperationalError, OSError) as exc:
        terminate(session.store, wf_id, f"could not be sent to the broker: {exc}")
        raise BrokerUnavailable(f"could not send workflow {wf_id} to the broker: {exc}") from None
    return wf_id


def wait(
    store: StateStore,
    wf_id: str,
    *,
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    interval: float = 0.05,
) -> dict[str, Any]:
    """Poll until the workflow is terminal; returns the execution (with tasks)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last_seen: Any = None
    outage_since: float | None = None
    while True:
        try:
            result = _poll(store, wf_id, progress, last_seen)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # The store restarts (Redis with AOF comes back with everything): keep waiting a while.
            outage_since = outage_since or time.monotonic()
            if time.monotonic() - outage_since > STORE_OUTAGE_TOLERANCE:
                raise BrokerUnavailable(f"the state store is unreachable: {exc}") from None
            time.sleep(0.5)
            continue
        outage_since = None
        status, execution, last_seen = result
        if status.terminal and execution is not None:
            return execution
        if deadline is not None and time.monotonic() > deadline:
            raise TranslatorError(f"workflow {wf_id} still {status.value} after {timeout:g} s")
        time.sleep(interval)


def _poll(
    store: StateStore, wf_id: str, progress: ProgressCallback | None, last_seen: Any
) -> tuple[WorkflowStatus, dict[str, Any] | None, Any]:
    """One look at the workflow: (status, the execution when terminal or watched, progress snapshot)."""
    if progress is None:  # cheap poll: the status field only
        status = store.status(wf_id)
        if status is None:
            raise WorkflowNotFound(f"no workflow {wf_id} in the state store")
        return status, (store.workflow(wf_id) if status.terminal else None), last_seen
    execution = store.workflow(wf_id)
    if execution is None:
        raise WorkflowNotFound(f"no workflow {wf_id} in the state store")
    snapshot = (execution["status"], [(t["taskId"], t["status"]) for t in execution["tasks"]])
    if snapshot != last_seen:
        progress(execution)
    return WorkflowStatus(execution["status"]), execution, snapshot


def read_workflow(workflow_id: str, include_tasks: bool = True) -> dict[str, Any]:
    """The execution ``workflow_id`` from the pool's state store (``status_store``); raises
    BrokerUnavailable when the store cannot be read, WorkflowNotFound when it has no such workflow
    (both messages name the store)."""
    settings = Settings.from_env()
    store = status_store(settings)
    where = f"{safe_url(store.url)} (key prefix {store.prefix!r}, {settings.state_store_origin()})"
    try:
        execution = store.workflow(workflow_id, include_tasks=include_tasks)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"cannot read the state store {where}: {exc}") from None
    if execution is None:
        raise WorkflowNotFound(f"no workflow {shorten(workflow_id, quote=False)} in the state store {where}")
    return execution


def registered_plan(name: str, settings: Settings | None = None) -> Plan:
    """The plan of the workflow registered (through the REST API) as ``name`` or ``name:version``,
    validated with every registered definition it may use. Raises DefinitionNotFound,
    DefinitionError, UsageError."""
    from translator.store.metadata import MetadataStore

    settings = settings or Settings.from_env()
    if settings.broker_url is None:
        raise UsageError(
            "--registered needs the worker pool: set CELERY_BROKER_URL (definitions live in its Redis)"
        )
    base, _, version_text = name.partition(":")
    try:
        version = int(version_text) if version_text else None
    except ValueError:
        raise UsageError(f"invalid version {version_text!r} in {name!r} (NAME or NAME:VERSION)") from None
    store = status_store(settings)
    metadata = MetadataStore(store.client, store.prefix)
    return metadata.plan(base, version)


def status_store(settings: Settings | None = None) -> RedisStore:
    """The Redis store ``translator status`` reads: the pool's (``Settings.status_store_url``)."""
    settings = settings or Settings.from_env()
    url = settings.status_store_url()
    try:
        store = RedisStore(url, prefix=settings.state_prefix, ttl=settings.state_ttl)
    except ValueError as exc:  # redis-py's URL parser
        raise UsageError(
            f"invalid state store URL {safe_url(url)} ({settings.state_store_origin()}): {exc}"
        ) from None
    try:
        store.ping()
    except StoreUnavailable as exc:
        raise BrokerUnavailable(f"{exc} ({settings.state_store_origin()})") from None
    return store
