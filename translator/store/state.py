"""Execution state in Conductor's Workflow/Task JSON shape (reference §7.3).

Two stores with one interface:

* ``RedisStore`` (distributed mode): one hash of JSON-encoded fields per workflow, one hash of task
  records per workflow (field = taskId), a sequence counter, indexes (:mod:`translator.store.scripts`).
  Every write touches its own field, so concurrent writers never overwrite each other's data; each
  write is one Lua script, the terminal transition a compare-and-set, so a workflow ends exactly once.
* ``MemoryStore`` (embedded mode and tests): the same in a dict behind a lock.

Lifetimes (``TRANSLATOR_STATE_TTL``, docs/architecture.md): a running workflow's keys never expire;
they expire ``ttl`` seconds after the workflow ends. A plan is kept while any running workflow names
it, and then as long as the longest-lived ended record that names it. ``MemoryStore`` expires nothing:
it lives as long as its process (an embedded run).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from translator.errors import TranslatorError
from translator.status import TaskStatus, WorkflowStatus
from translator.store import scripts

TERMINAL_WORKFLOW_STATUSES = [s.value for s in WorkflowStatus if s.terminal]
DEFAULT_TTL = 7 * 24 * 3600
FAILURE_WORKFLOW_KEY = "conductor.failure_workflow"  # where Conductor records the failure workflow's id
# An ended workflow whose failureWorkflow is still to be started keeps its keys at least this long:
# the sweeper starts it from the record if its ender could not (30 s later, a 60 s lease per try).
FAILURE_WORKFLOW_KEEP = 300


def plan_digest(plan: str) -> str:
    return hashlib.sha256(plan.encode()).hexdigest()[:32]


def now_ms() -> int:
    return int(time.time() * 1000)


class StoreUnavailable(TranslatorError):
    """The state store cannot be reached."""


@dataclass(frozen=True)
class Deadline:
    """Something to do at a given time, kept in the store until it is done (see ``claim_due``).

    Kinds: ``response`` (an IN_PROGRESS attempt's responseTimeoutSeconds), ``poll`` (a SCHEDULED
    attempt's pollTimeoutSeconds), ``total`` (a task's totalTimeoutSeconds), ``workflow`` (the
    workflow's timeoutSeconds), ``wake`` (send a parked attempt whose delay is over), ``failure``
    (start the failureWorkflow of an ended workflow, if its ender could not), ``child`` (start the
    workflow a SUB_WORKFLOW / START_WORKFLOW task names, if its decider could not), ``parent``
    (report an ended sub-workflow to its parent's task, if its ender could not), ``wait`` (a WAIT's
    time has passed), ``wait_timeout`` / ``wait_response`` (a WAIT / HUMAN attempt's TaskDef
    timeoutSeconds / a HUMAN's responseTimeoutSeconds), ``timeout`` (an attempt's timeoutSeconds where
    time limits cannot stop it: embedded runs).
    """

    kind: str
    wf: str
    ref: str = ""
    attempt: int = 0
    token: int = 0  # startTime / scheduledTime / createTime it was set for: a changed record makes it stale

    def member(self) -> str:
        return json.dumps(
            {"kind": self.kind, "wf": self.wf, "ref": self.ref, "attempt": self.attempt, "token": self.token},
            sort_keys=True,
        )

    @classmethod
    def from_member(cls, member: str | bytes) -> Deadline:
        return cls(**json.loads(member))

    def around_token(self) -> tuple[str, str]:
        """``member()`` split where the token goes: ``before + str(token) + after`` is the member of
        this deadline with that token (for a script that reads the token from a record)."""
        head, _, tail = replace(self, token=0).member().partition('"token": 0')
        return head + '"token": ', tail


Due = tuple[Deadline, int]  # a deadline and when it is due (epoch ms)
DEADLINE_LEASE_MS = 60_000  # a claimed deadline comes back after this unless marked done


def _adds(deadlines: Sequence[Due]) -> str:
    return json.dumps([[d.member(), due] for d, due in deadlines])


def _removes(deadlines: Sequence[Deadline]) -> str:
    return json.dumps([d.member() for d in deadlines])


@dataclass(frozen=True)
class Criteria:
    """What ``StateStore.find`` looks for: the executions in every given set (None: any) whose
    ``startTime`` is within ``start_min``..``start_max`` (inclusive), newest first unless
    ``ascending`` (ties: by workflowId), ``limit`` of them (None: all) after the first ``offset``."""

    names: frozenset[str] | None = None
    statuses: frozenset[str] | None = None
    correlation_ids: frozenset[str] | None = None
    ids: frozenset[str] | None = None
    versions: frozenset[int] | None = None
    start_min: int | None = None
    start_max: int | None = None
    offset: int = 0
    limit: int | None = 100
    ascending: bool = False

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether the workflow fields ``record`` are of an execution it looks for."""
        start = record.get("startTime") or 0
        corr = record.get("correlationId")
        return (
            (self.names is None or record.get("workflowName") in self.names)
            and (self.statuses is None or record.get("status") in self.statuses)
            and (self.correlation_ids is None or (isinstance(corr, str) and corr in self.correlation_ids))
            and (self.ids is None or record.get("workflowId") in self.ids)
            and (self.versions is None or record.get("workflowVersion") in self.versions)
            and (self.start_min is None or start >= self.start_min)
            and (self.start_max is None or start <= self.start_max)
        )


Found = tuple[int, list[dict[str, Any]]]  # how many executions match, and the fields of one page


@dataclass(frozen=True)
class Saved:
    applied: bool  # False: the record was not as expected (someone else decided), nothing written
    ended: bool  # the workflow was ended by this write
    conflict: bool = False  # not applied only because another decision was stored since the read


@dataclass
class Change:
    """One atomic write of an execution (``StateStore.apply``): task records to write (new or
    changed, by taskId), task records to remove, deadlines to add and drop, workflow fields to set
    (``update``, e.g. ``variables``), and the fields that end the workflow (``finish``, set after
    ``update``)."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)  # of ``records``: written only if absent
    remove: list[str] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)  # references whose newest record is removed
    add: list[Due] = field(default_factory=list)
    drop: list[Deadline] = field(default_factory=list)
    update: dict[str, Any] = field(default_factory=dict)
    finish: dict[str, Any] | None = None
    # Lifecycle operations (``runtime/lifecycle.py``): ``reopen`` applies only to an ended workflow and
    # makes it run again (its keys lose their TTL, its plan counts it as running); ``clear`` removes
    # every task record first and restarts the ``seq`` counter at the highest seq of ``records``.
    reopen: bool = False
    clear: bool = False

    def latest(self) -> dict[str, str]:
        """Reference -> taskId of the newest record this change writes for it (a DO_WHILE body task's
        record also under its reference without ``__<iteration>``, as ``${...}`` reads it)."""
        found: dict[str, tuple[tuple[int, int], str]] = {}
        for task_id, record in self.records.items():
            order = (int(record.get("seq") or 0), int(record.get("retryCount") or 0))
            ref = record["referenceTaskName"]
            names = [ref, ITERATION.sub("", ref)] if record.get("iteration") else [ref]
            for name in names:
                if name not in found or found[name][0] <= order:
                    found[name] = (order, task_id)
        return {name: task_id for name, (_, task_id) in found.items()}

    def write(self, record: dict[str, Any]) -> None:
        self.records[record["taskId"]] = record

    def create(self, record: dict[str, Any]) -> None:
        """A new task instance: never overwrites a stored record with its id."""
        self.records[record["taskId"]] = record
        self.created.add(record["taskId"])


Expect = tuple[str, str, int]  # (taskId, status, startTime) a record must still have
TERMINAL_TASK_STATUSES = frozenset(s.value for s in TaskStatus if s.terminal)
ITERATION = re.compile(r"__\d+$")
READ_ALL_UP_TO = 16  # a snapshot of an execution with at most this many records reads them all


def is_open(record: dict[str, Any]) -> bool:
    """A task record that is not terminal (SCHEDULED, IN_PROGRESS)."""
    return record["status"] not in TERMINAL_TASK_STATUSES


@dataclass
class Snapshot:
    """One consistent read of an execution: its fields (with its revision ``_rev``), its open task
    records (not terminal) and the records asked for by id; every record when there are at most
    ``READ_ALL_UP_TO`` (``complete``). Other records are read on demand (``latest_records``,
    ``tasks``): a step's cost does not grow with the workflow."""

    workflow: dict[str, Any] | None
    tasks: list[dict[str, Any]]  # the open records and those asked for (or all), in ``seq`` order
    seq: int = 0  # a sequence number reserved for the record this step will schedule
    open_ids: frozenset[str] = frozenset()  # the ids of the open records
    complete: bool = False  # ``tasks`` is every record of the execution
    started: bool = False  # the read's ``Start`` was written (``tasks`` shows the record before it)


@dataclass(frozen=True)
class Start:
    """The start of an attempt (IN_PROGRESS), decided before its record is read and written in the
    same atomic step as the read (``StateStore.snapshot``), as ``claim_task`` would write it.

    Written only if the workflow is not over and runs the plan ``digest`` (the plan the deadlines
    below were computed from), and the record ``task_id`` exists, is not planned at run time (no
    ``workflowTask``), and is SCHEDULED and due by ``startTime + tolerance_ms`` (scheduledTime plus
    callbackAfterSeconds), or IN_PROGRESS and ``takeover``. The record gets ``fields`` and its
    ``pollCount`` one higher; its wake deadline (and its poll deadline, with ``poll``) is dropped and,
    with ``response_seconds``, its response deadline registered (startTime + responseTimeoutSeconds +
    callbackAfterSeconds). A store may also decline when it cannot decide alone (a Redis store: the
    record was started this way and not written since): the caller then claims with ``claim_task``.
    """

    task_id: str
    ref: str
    attempt: int
    digest: str
    fields: dict[str, Any]  # status IN_PROGRESS, startTime, updateTime, workerId, celeryTaskId
    takeover: bool = False
    response_seconds: int = 0
    poll: bool = False
    tolerance_ms: int = 0

    @property
    def start_ms(self) -> int:
        return int(self.fields["startTime"])

    def applies_to(self, workflow: dict[str, Any], record: dict[str, Any] | None) -> bool:
        """Whether it is written on a read that finds ``workflow`` and ``record`` (see above)."""
        status = workflow.get("status")
        if workflow.get("_plan") != self.digest or status is None or status in TERMINAL_WORKFLOW_STATUSES:
            return False
        if record is None or record.get("workflowTask") is not None:
            return False
        scheduled, callback = record.get("scheduledTime"), record.get("callbackAfterSeconds") or 0
        if not (_is_number(scheduled) and _is_number(callback)):
            return False
        if record["status"] == TaskStatus.SCHEDULED.value:
            return int(scheduled) + int(callback) * 1000 - self.start_ms <= self.tolerance_ms
        return record["status"] == TaskStatus.IN_PROGRESS.value and self.takeover

    def record(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` as this start leaves it."""
        return {**record, **self.fields, "pollCount": record.get("pollCount", 0) + 1}

    def deadlines(self, wf_id: str, record: dict[str, Any]) -> tuple[list[Due], list[Deadline]]:
        """The deadlines this start registers and those it drops, for the stored ``record``."""
        token = int(record["scheduledTime"])
        drop = [Deadline("wake", wf_id, self.ref, self.attempt, token)]
        if self.poll:
            drop.append(Deadline("poll", wf_id, self.ref, self.attempt, token))
        if self.response_seconds <= 0:
            return [], drop
        grace = self.response_seconds + int(record.get("callbackAfterSeconds") or 0)
        response = Deadline("response", wf_id, self.ref, self.attempt, self.start_ms)
        return [(response, self.start_ms + grace * 1000)], drop


def _is_number(value: Any) -> bool:
    """A JSON number (not a boolean)."""
    return type(value) in (int, float)


class StateStore(ABC):
    """Where executions live. Records are plain JSON-compatible dicts."""

    ttl: int  # seconds an execution is kept after it ends (<= 0: forever)

    @abstractmethod
    def create_workflow(
        self,
        workflow: dict[str, Any],
        plan: str,
        first_task: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        deadlines: Sequence[Due] = (),
    ) -> bool:
        """Store a new execution, its first task records and its deadlines at once.

        ``plan`` is the plan's JSON text; it is stored once per distinct content (under its digest,
        which the record keeps in its ``_plan`` field), so workers parse each plan once. False (and
        nothing written) when an execution with this id exists.
        """

    @abstractmethod
    def snapshot(self, wf_id: str, task_ids: Sequence[str] = (), start: Start | None = None) -> Snapshot:
        """Workflow fields, open task records and the records ``task_ids`` in one round trip,
        reserving one ``seq`` number; with ``start``, the attempt's start in the same atomic step when
        it applies (``Snapshot.started``)."""

    @abstractmethod
    def latest_records(self, wf_id: str, refs: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The newest record of each reference found (a DO_WHILE body task also under its reference
        without ``__<iteration>``)."""

    @abstractmethod
    def apply(
        self, wf_id: str, change: Change, *, expect: Expect | None = None, rev: int | None = None
    ) -> Saved:
        """Write ``change`` at once, while the workflow runs, only if the record ``expect`` names still
        has that (status, startTime), and, with ``rev``, only if no other change was applied since the
        read that returned that revision (``_rev``; else ``conflict``: read again and decide again).
        Every applied change increments the revision."""

    def save_tasks(
        self,
        wf_id: str,
        task: dict[str, Any],
        scheduled: dict[str, Any] | None = None,
        finish: dict[str, Any] | None = None,
        expect: tuple[str, int] | None = None,
        deadlines: Sequence[Due] = (),
        clear: Sequence[Deadline] = (),
    ) -> Saved:
        """``apply`` of one record (and one new SCHEDULED one), without a revision check."""
        change = Change(add=list(deadlines), drop=list(clear), finish=finish)
        change.write(task)
        if scheduled is not None:
            change.create(scheduled)
        full = (task["taskId"], expect[0], expect[1]) if expect is not None else None
        return self.apply(wf_id, change, expect=full)

    @abstractmethod
    def add_deadlines(self, deadlines: Sequence[Due]) -> None: ...

    @abstractmethod
    def claim_due(self, now_ms: int, limit: int = 100, lease_ms: int = DEADLINE_LEASE_MS) -> list[Deadline]:
        """Take the deadlines due by ``now_ms``: each is handed to one caller, and comes back
        ``lease_ms`` later unless the caller marks it ``done`` (a sweeper that dies loses nothing)."""

    @abstractmethod
    def done(self, deadlines: Sequence[Deadline]) -> None:
        """Forget handled deadlines."""

    @abstractmethod
    def pending_deadlines(self) -> int:
        """How many deadlines are registered (for tests and monitoring)."""

    @abstractmethod
    def claim_task(
        self,
        wf_id: str,
        task: dict[str, Any],
        takeover: bool,
        deadlines: Sequence[Due] = (),
        clear: Sequence[Deadline] = (),
    ) -> str | None:
        """Write ``task`` (IN_PROGRESS) only if the stored record is SCHEDULED, or IN_PROGRESS and
        ``takeover`` (a redelivered message whose worker died), registering ``deadlines`` and dropping
        ``clear``. None when written, else the status the record has (another delivery runs it, or it
        already ended)."""

    @abstractmethod
    def workflow_fields(self, wf_id: str) -> dict[str, Any] | None:
        """The workflow record without its tasks, or None when unknown."""

    @abstractmethod
    def plan(self, digest: str) -> dict[str, Any] | None:
        """A stored plan by digest (see ``create_workflow``)."""

    @abstractmethod
    def update_workflow(self, wf_id: str, fields: dict[str, Any]) -> None: ...

    @abstractmethod
    def finish_workflow(self, wf_id: str, fields: dict[str, Any]) -> bool:
        """Apply ``fields`` (with a terminal ``status``) unless the workflow already ended."""

    @abstractmethod
    def save_task(self, wf_id: str, task: dict[str, Any]) -> None: ...

    @abstractmethod
    def tasks(self, wf_id: str) -> list[dict[str, Any]]:
        """Every task record, in ``seq`` order."""

    @abstractmethod
    def next_seq(self, wf_id: str) -> int: ...

    def status(self, wf_id: str) -> WorkflowStatus | None:
        fields = self.workflow_fields(wf_id)
        return WorkflowStatus(fields["status"]) if fields else None

    @abstractmethod
    def save_plan(self, plan: str) -> str:
        """Keep a plan's text (a restart with the latest definitions); returns its digest."""

    @abstractmethod
    def delete_workflow(self, wf_id: str) -> bool:
        """Remove an execution and its records (Conductor's ``DELETE /workflow/{id}/remove``); False
        when there is none."""

    @abstractmethod
    def find(self, criteria: Criteria, fields: Sequence[str]) -> Found:
        """The executions ``criteria`` selects: how many there are, and the ``fields`` (those
        present) of the page it asks for, in its order (``translator.store.search``)."""

    def workflow(self, wf_id: str, *, include_tasks: bool = True) -> dict[str, Any] | None:
        """The execution as Conductor's ``GET /workflow/{id}`` shows it."""
        fields = self.workflow_fields(wf_id)
        if fields is None:
            return None
        return _execution(fields, self.tasks(wf_id) if include_tasks else None)


def _execution(fields: dict[str, Any], tasks: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The execution as ``GET /workflow/{id}`` shows it: its fields without the private ones (and
    without nulls), with ``tasks`` when given."""
    record = {k: v for k, v in fields.items() if v is not None and not k.startswith("_")}
    if tasks is not None:
        record["tasks"] = tasks
    return record


class MemoryStore(StateStore):
    """In-process store (embedded mode, tests). Nothing expires: the store lives as long as its
    process, and ``ttl`` is kept only for the interface."""

    def __init__(self, ttl: int = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._workflows: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, str] = {}
        self._tasks: dict[str, dict[str, str]] = {}
        self._seq: dict[str, int] = {}
        self._deadlines: dict[str, int] = {}
        self._latest: dict[str, dict[str, str]] = {}  # workflow -> reference -> taskId
        self._open: dict[str, set[str]] = {}  # workflow -> ids of its open records

    def _index(self, wf_id: str, change: Change) -> None:
        """Keep the references' newest records and the open ids up to date with ``change``."""
        latest = self._latest.setdefault(wf_id, {})
        latest.update(change.latest())
        open_ids = self._open.setdefault(wf_id, set())
        for task_id, record in change.records.items():
            if is_open(record):
                open_ids.add(task_id)
            else:
                open_ids.discard(task_id)
        for task_id in change.remove:
            open_ids.discard(task_id)
        for name in change.forget:
            latest.pop(name, None)

    def create_workflow(
        self,
        workflow: dict[str, Any],
        plan: str,
        first_task: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        deadlines: Sequence[Due] = (),
    ) -> bool:
        wf_id = workflow["workflowId"]
        digest = plan_digest(plan)
        first = _records(first_task)
        with self._lock:
            if wf_id in self._workflows:
                return False
            for deadline, due in deadlines:
                self._deadlines[deadline.member()] = due
            self._workflows[wf_id] = {**json.loads(json.dumps(workflow)), "_plan": digest}
            self._plans[digest] = plan
            self._tasks[wf_id] = {}
            self._seq[wf_id] = 0
            for task in first:
                self._tasks[wf_id][task["taskId"]] = json.dumps(task)
            self._seq[wf_id] = max((int(t.get("seq") or 0) for t in first), default=0)
            change = Change()
            for task in first:
                change.write(task)
            self._index(wf_id, change)
            return True

    def snapshot(self, wf_id: str, task_ids: Sequence[str] = (), start: Start | None = None) -> Snapshot:
        with self._lock:
            workflow = self._workflows.get(wf_id)
            if workflow is None:
                return Snapshot(None, [])
            records = self._tasks.get(wf_id, {})
            open_ids = frozenset(self._open.get(wf_id, set()))
            complete = len(records) <= READ_ALL_UP_TO
            wanted = list(records) if complete else [*sorted(open_ids), *task_ids]
            tasks = [json.loads(records[i]) for i in dict.fromkeys(wanted) if i in records]
            self._seq[wf_id] = seq = self._seq.get(wf_id, 0) + 1
            started = start is not None and self._start(wf_id, workflow, start)
            return Snapshot(
                json.loads(json.dumps(workflow)),
                sorted(tasks, key=lambda t: t.get("seq", 0)),
                seq,
                open_ids,
                complete,
                started,
            )

    def _start(self, wf_id: str, workflow: dict[str, Any], start: Start) -> bool:
        """Write ``start`` if it applies (see ``Start``); the caller holds the lock."""
        records = self._tasks.setdefault(wf_id, {})
        raw = records.get(start.task_id)
        record = json.loads(raw) if raw is not None else None
        if record is None or not start.applies_to(workflow, record):
            return False
        started = start.record(record)
        records[start.task_id] = json.dumps(started)
        change = Change()
        change.write(started)
        self._index(wf_id, change)
        self._register(*start.deadlines(wf_id, record))
        return True

    def latest_records(self, wf_id: str, refs: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self._lock:
            latest, records = self._latest.get(wf_id, {}), self._tasks.get(wf_id, {})
            found = {ref: records.get(latest.get(ref, "")) for ref in refs}
            return {ref: json.loads(raw) for ref, raw in found.items() if raw is not None}

    def apply(
        self, wf_id: str, change: Change, *, expect: Expect | None = None, rev: int | None = None
    ) -> Saved:
        with self._lock:
            workflow = self._workflows.get(wf_id)
            if workflow is None or (workflow["status"] in TERMINAL_WORKFLOW_STATUSES) != change.reopen:
                return Saved(False, False)
            if rev is not None and int(workflow.get("_rev") or 0) != rev:
                return Saved(False, False, conflict=True)
            if change.clear:
                self._tasks[wf_id], self._latest[wf_id], self._open[wf_id] = {}, {}, set()
                self._seq[wf_id] = 0
            records = self._tasks.setdefault(wf_id, {})
            if expect is not None:
                current = records.get(expect[0])
                found = json.loads(current) if current else None
                if found is None or (found["status"], int(found.get("startTime") or 0)) != expect[1:]:
                    return Saved(False, False)
            for task_id, record in change.records.items():
                if task_id not in change.created or task_id not in records:
                    records[task_id] = json.dumps(record)
            for task_id in change.remove:
                records.pop(task_id, None)
            self._index(wf_id, change)
            top = max((int(r.get("seq") or 0) for r in change.records.values()), default=0)
            self._seq[wf_id] = max(self._seq.get(wf_id, 0), top)
            self._register(change.add, change.drop)
            workflow["_rev"] = int(workflow.get("_rev") or 0) + 1
            workflow.update(json.loads(json.dumps(change.update)))
            if change.finish is not None:
                workflow.update(json.loads(json.dumps(change.finish)))
                return Saved(True, True)
            return Saved(True, False)

    def _register(self, deadlines: Sequence[Due], clear: Sequence[Deadline]) -> None:
        for deadline in clear:
            self._deadlines.pop(deadline.member(), None)
        for deadline, due in deadlines:
            self._deadlines[deadline.member()] = due

    def add_deadlines(self, deadlines: Sequence[Due]) -> None:
        with self._lock:
            self._register(deadlines, ())

    def claim_due(self, now_ms: int, limit: int = 100, lease_ms: int = DEADLINE_LEASE_MS) -> list[Deadline]:
        with self._lock:
            due = sorted((at, member) for member, at in self._deadlines.items() if at <= now_ms)[:limit]
            for _, member in due:
                self._deadlines[member] = now_ms + lease_ms
        return [Deadline.from_member(member) for _, member in due]

    def done(self, deadlines: Sequence[Deadline]) -> None:
        with self._lock:
            self._register((), deadlines)

    def pending_deadlines(self) -> int:
        with self._lock:
            return len(self._deadlines)

    def claim_task(
        self,
        wf_id: str,
        task: dict[str, Any],
        takeover: bool,
        deadlines: Sequence[Due] = (),
        clear: Sequence[Deadline] = (),
    ) -> str | None:
        with self._lock:
            records = self._tasks.setdefault(wf_id, {})
            current = records.get(task["taskId"])
            status = json.loads(current)["status"] if current else "SCHEDULED"
            if status == "SCHEDULED" or (status == "IN_PROGRESS" and takeover):
                records[task["taskId"]] = json.dumps(task)
                change = Change()
                change.write(task)
                self._index(wf_id, change)
                self._register(deadlines, clear)
                return None
            return status

    def workflow_fields(self, wf_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._workflows.get(wf_id)
            return json.loads(json.dumps(found)) if found is not None else None

    def plan(self, digest: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._plans.get(digest)
        return json.loads(found) if found else None

    def update_workflow(self, wf_id: str, fields: dict[str, Any]) -> None:
        with self._lock:
            if wf_id in self._workflows:
                self._workflows[wf_id].update(json.loads(json.dumps(fields)))

    def finish_workflow(self, wf_id: str, fields: dict[str, Any]) -> bool:
        with self._lock:
            record = self._workflows.get(wf_id)
            if record is None or record["status"] in TERMINAL_WORKFLOW_STATUSES:
                return False
            record.update(json.loads(json.dumps(fields)))
            return True

    def save_task(self, wf_id: str, task: dict[str, Any]) -> None:
        with self._lock:
            self._tasks.setdefault(wf_id, {})[task["taskId"]] = json.dumps(task)
            change = Change()
            change.write(task)
            self._index(wf_id, change)

    def tasks(self, wf_id: str) -> list[dict[str, Any]]:
        with self._lock:
            records = [json.loads(t) for t in self._tasks.get(wf_id, {}).values()]
        return sorted(records, key=lambda t: t.get("seq", 0))

    def next_seq(self, wf_id: str) -> int:
        with self._lock:
            self._seq[wf_id] = self._seq.get(wf_id, 0) + 1
            return self._seq[wf_id]

    def find(self, criteria: Criteria, fields: Sequence[str]) -> Found:
        with self._lock:
            found = [w for w in self._workflows.values() if criteria.matches(w)]
            found.sort(
                key=lambda w: (w.get("startTime") or 0, w["workflowId"]), reverse=not criteria.ascending
            )
            end = None if criteria.limit is None else criteria.offset + criteria.limit
            page = [{f: w[f] for f in fields if f in w} for w in found[criteria.offset : end]]
            return len(found), json.loads(json.dumps(page))

    def save_plan(self, plan: str) -> str:
        digest = plan_digest(plan)
        with self._lock:
            self._plans[digest] = plan
        return digest

    def delete_workflow(self, wf_id: str) -> bool:
        with self._lock:
            found = self._workflows.pop(wf_id, None) is not None
            for table in (self._tasks, self._seq, self._latest, self._open):
                table.pop(wf_id, None)
            return found


def _records(tasks: dict[str, Any] | Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if tasks is None:
        return []
    return [tasks] if isinstance(tasks, dict) else list(tasks)


def _names(record: dict[str, Any]) -> list[str]:
    """The names a record is found by as the newest of: its reference (and, in a DO_WHILE body, the
    reference without ``__<iteration>``)."""
    ref = record["referenceTaskName"]
    base = ITERATION.sub("", ref) if record.get("iteration") else ref
    return [ref] if base == ref else [ref, base]


def _loop_name(ref: str) -> str | None:
    """The other name a DO_WHILE body task's record of ``ref`` is found by, if ``ref`` has one."""
    base = ITERATION.sub("", ref)
    return base if base != ref else None


def _pairs(fields: dict[str, Any]) -> list[str]:
    """Field/value arguments of a script, values JSON-encoded."""
    return [item for name, value in fields.items() for item in (name, json.dumps(value))]


def _flat(pairs: dict[str, str]) -> list[str]:
    """Key, value, key, value... (the arguments of a Redis HSET)."""
    return [item for pair in pairs.items() for item in pair]


def _scored(deadlines: Sequence[Due]) -> list[Any]:
    """Due, member, due, member... (the arguments of a Redis ZADD)."""
    return [item for deadline, due in deadlines for item in (due, deadline.member())]


class RedisStore(StateStore):
    """Redis-backed store (distributed mode), safe under concurrent writers. Its keys and scripts:
    :mod:`translator.store.scripts`."""

    def __init__(self, url: str, *, prefix: str = "translator:", ttl: int = DEFAULT_TTL) -> None:
        self.url = url
        self.prefix = prefix
        self.ttl = ttl
        self.client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=30,
            health_check_interval=25,
            retry_on_timeout=True,
        )
        self._create = self.client.register_script(scripts.CREATE)
        self._finish = self.client.register_script(scripts.FINISH)
        self._claim = self.client.register_script(scripts.CLAIM)
        self._apply = self.client.register_script(scripts.APPLY)
        self._read = self.client.register_script(scripts.READ)
        self._hset = self.client.register_script(scripts.HSET)
        self._incr = self.client.register_script(scripts.INCR)
        self._update = self.client.register_script(scripts.UPDATE)
        self._claim_due = self.client.register_script(scripts.CLAIM_DUE)
        self._latest = self.client.register_script(scripts.LATEST)
        self._view_script = self.client.register_script(scripts.VIEW)
        self._search = self.client.register_script(scripts.SEARCH)
        self._unindex = self.client.register_script(scripts.UNINDEX)
        self.deadlines_key = f"{prefix}deadlines"

    def _keys(self, wf_id: str) -> tuple[str, str, str]:
        base = f"{self.prefix}wf:{wf_id}"
        return base, base + ":tasks", base + ":seq"

    def _index_keys(self, wf_id: str) -> tuple[str, str, str]:
        """The references' newest records (hash name -> taskId), the open records' ids (set) and the
        claim entries of started records (hash taskId -> fields, see ``scripts``)."""
        base = f"{self.prefix}wf:{wf_id}"
        return base + ":latest", base + ":open", base + ":claims"

    def _plan_key(self, digest: str) -> str:
        return f"{self.prefix}plan:{digest}"

    def workflow_keys(self, wf_id: str, digest: str | None = None) -> list[str]:
        """Every key of an execution: its record, tasks and counter, with ``digest`` its plan and the
        plan's references, then its indexes."""
        keys = list(self._keys(wf_id))
        if digest:
            keys += [self._plan_key(digest), self._plan_key(digest) + ":refs"]
        return keys + list(self._index_keys(wf_id))

    def ping(self) -> None:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"cannot reach the state store at {safe_url(self.url)}: {exc}") from None

    def _end_ttl(self, fields: dict[str, Any]) -> int:
        """How long the keys of a workflow ended with ``fields`` are kept."""
        output = fields.get("output")
        if self.ttl > 0 and isinstance(output, dict) and FAILURE_WORKFLOW_KEY in output:
            return max(self.ttl, FAILURE_WORKFLOW_KEEP)
        return self.ttl

    def create_workflow(
        self,
        workflow: dict[str, Any],
        plan: str,
        first_task: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        deadlines: Sequence[Due] = (),
    ) -> bool:
        wf_id = workflow["workflowId"]
        main, tasks, seq = self._keys(wf_id)
        latest, open_key, _ = self._index_keys(wf_id)
        first = _records(first_task)
        plan_key = self._plan_key(plan_digest(plan))
        change = Change()
        for task in first:
            change.write(task)
        fields = {**workflow, "_plan": plan_digest(plan)}
        what = {
            "id": wf_id,
            "fields": _pairs(fields),
            "records": [item for t in first for item in (t["taskId"], json.dumps(t))],
            "latest": _flat(change.latest()),
            "open": [t["taskId"] for t in first if is_open(t)],
            "deadlines": _scored(deadlines),
            "seq": max((int(t.get("seq") or 0) for t in first), default=0),
            "prefix": self.prefix,
        }
        keys = [main, tasks, seq, latest, open_key, plan_key, plan_key + ":refs", self.deadlines_key]
        return bool(self._create(keys=keys, args=[plan, json.dumps(what)]))  # 0: the id is taken

    def _read_keys(self, wf_id: str) -> list[str]:
        main, tasks, seq = self._keys(wf_id)
        latest, open_key, claims = self._index_keys(wf_id)
        return [main, tasks, seq, open_key, claims, latest, self.deadlines_key]

    def snapshot(self, wf_id: str, task_ids: Sequence[str] = (), start: Start | None = None) -> Snapshot:
        args: list[Any] = [self.ttl, READ_ALL_UP_TO, len(task_ids), *task_ids]
        if start is not None:
            args += self._start_args(wf_id, start)
        found = self._read(keys=self._read_keys(wf_id), args=args)
        raw_workflow, open_ids, raw_tasks, raw_claims, reserved, started, complete = found
        if not raw_workflow:
            return Snapshot(None, [])
        lines = raw_workflow.split("\n")  # field names and values, one per line (see ``scripts.READ``)
        claims = dict(zip(raw_claims[::2], raw_claims[1::2], strict=True))
        return Snapshot(
            dict(zip(lines[::2], _json_values(lines[1::2]), strict=True)),
            _with_claims(raw_tasks.split("\n") if raw_tasks else [], claims),
            int(reserved),
            frozenset(open_ids),
            bool(complete),
            bool(started),
        )

    def _start_args(self, wf_id: str, start: Start) -> list[Any]:
        """The argument of ``scripts.READ`` that describes ``start``."""
        wake, tail = Deadline("wake", wf_id, start.ref, start.attempt).around_token()
        what: dict[str, Any] = {
            "id": start.task_id,
            "plan": json.dumps(start.digest),
            "takeover": start.takeover,
            "start": start.start_ms,
            "tolerance": start.tolerance_ms,
            "entry": json.dumps(start.fields),
            "terminal": ",".join(TERMINAL_WORKFLOW_STATUSES),
            "wake": wake,
            "tail": tail,
            "ref": start.ref,
        }
        if start.poll:
            what["poll"] = Deadline("poll", wf_id, start.ref, start.attempt).around_token()[0]
        if start.response_seconds > 0:
            response = Deadline("response", wf_id, start.ref, start.attempt, start.start_ms)
            what["response"] = [response.member(), start.response_seconds]
        base = _loop_name(start.ref)
        if base is not None:
            what["base"] = base  # written if the record is of an iteration (as ``_names`` says)
        return [json.dumps(what)]

    def latest_records(self, wf_id: str, refs: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not refs:
            return {}
        latest, _, claims = self._index_keys(wf_id)
        found = self._latest(keys=[latest, self._keys(wf_id)[1], claims], args=list(refs))
        return {ref: _merged(raw, claim) for ref, raw, claim in found}

    def apply(
        self, wf_id: str, change: Change, *, expect: Expect | None = None, rev: int | None = None
    ) -> Saved:
        main, tasks, seq = self._keys(wf_id)
        written = _flat({i: json.dumps(r) for i, r in change.records.items() if i not in change.created})
        created = _flat({i: json.dumps(r) for i, r in change.records.items() if i in change.created})
        what: dict[str, Any] = {
            "ttl": self._end_ttl(change.finish or {}),
            "records": len(written),
            "created": len(created),
            "opened": [i for i, r in change.records.items() if is_open(r)],
            "closed": [i for i, r in change.records.items() if not is_open(r)],
            "latest": _flat(change.latest()),
            "forget": change.forget,
            "remove": change.remove,
            "add": _scored(change.add),
            "drop": [deadline.member() for deadline in change.drop],
            "seq": max((int(r.get("seq") or 0) for r in change.records.values()), default=0),
            "update": _pairs(change.update),
        }
        if expect is not None:
            what["expect"] = [expect[0], expect[1], str(int(expect[2]))]
        if rev is not None:
            what["rev"] = rev
        if change.finish is not None:
            what["finish"] = _pairs(change.finish)
        if change.reopen:
            what["reopen"] = True
        if change.clear:
            what["clear"] = True
        args = [
            ",".join(TERMINAL_WORKFLOW_STATUSES),
            self.prefix,
            wf_id,
            json.dumps(what),
            *written,
            *created,
        ]
        keys = [tasks, main, seq, self.deadlines_key, *self._index_keys(wf_id)]
        applied, ended, conflict = self._apply(keys=keys, args=args)
        return Saved(bool(applied), bool(ended), bool(conflict))

    def add_deadlines(self, deadlines: Sequence[Due]) -> None:
        if deadlines:
            self.client.zadd(self.deadlines_key, {d.member(): due for d, due in deadlines})

    def claim_due(self, now_ms: int, limit: int = 100, lease_ms: int = DEADLINE_LEASE_MS) -> list[Deadline]:
        members = self._claim_due(keys=[self.deadlines_key], args=[now_ms, limit, now_ms + lease_ms])
        return [Deadline.from_member(member) for member in members]

    def done(self, deadlines: Sequence[Deadline]) -> None:
        if deadlines:
            self.client.zrem(self.deadlines_key, *(d.member() for d in deadlines))

    def pending_deadlines(self) -> int:
        return int(self.client.zcard(self.deadlines_key))

    def claim_task(
        self,
        wf_id: str,
        task: dict[str, Any],
        takeover: bool,
        deadlines: Sequence[Due] = (),
        clear: Sequence[Deadline] = (),
    ) -> str | None:
        main, tasks, _ = self._keys(wf_id)
        args = [
            task["taskId"],
            json.dumps(task),
            "1" if takeover else "0",
            _adds(deadlines),
            _removes(clear),
            self.ttl,
            *_names(task),
        ]
        keys = [tasks, self.deadlines_key, main, *self._index_keys(wf_id)]
        status = self._claim(keys=keys, args=args)
        return status or None

    def workflow_fields(self, wf_id: str) -> dict[str, Any] | None:
        raw = self.client.hgetall(self._keys(wf_id)[0])
        if not raw:
            return None
        return {k: json.loads(v) for k, v in raw.items()}

    def _view(self, wf_id: str, with_fields: bool) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The workflow's fields (with ``with_fields``; None when unknown) and every record, at once."""
        main, tasks, _ = self._keys(wf_id)
        keys = [main, tasks, self._index_keys(wf_id)[2]]
        raw_fields, raw_tasks, raw_claims = self._view_script(keys=keys, args=["1" if with_fields else "0"])
        claims = dict(zip(raw_claims[::2], raw_claims[1::2], strict=True))
        records = _with_claims(raw_tasks.split("\n") if raw_tasks else [], claims)
        if not raw_fields:
            return None, records
        lines = raw_fields.split("\n")  # names and values, one per line (see ``scripts.READ``)
        return dict(zip(lines[::2], _json_values(lines[1::2]), strict=True)), records

    def workflow(self, wf_id: str, *, include_tasks: bool = True) -> dict[str, Any] | None:
        if not include_tasks:
            return super().workflow(wf_id, include_tasks=False)
        fields, records = self._view(wf_id, with_fields=True)
        return _execution(fields, records) if fields is not None else None

    def status(self, wf_id: str) -> WorkflowStatus | None:
        raw = self.client.hget(self._keys(wf_id)[0], "status")
        return WorkflowStatus(json.loads(raw)) if raw else None

    def plan(self, digest: str) -> dict[str, Any] | None:
        raw = self.client.get(self._plan_key(digest))
        return json.loads(raw) if raw else None

    def update_workflow(self, wf_id: str, fields: dict[str, Any]) -> None:
        if fields:
            self._update(keys=[self._keys(wf_id)[0]], args=[self.prefix, wf_id, *_pairs(fields)])

    def finish_workflow(self, wf_id: str, fields: dict[str, Any]) -> bool:
        args = [
            ",".join(TERMINAL_WORKFLOW_STATUSES),
            self._end_ttl(fields),
            self.prefix,
            wf_id,
            *_pairs(fields),
        ]
        return bool(self._finish(keys=[*self._keys(wf_id), *self._index_keys(wf_id)], args=args))

    def save_task(self, wf_id: str, task: dict[str, Any]) -> None:
        """Write one record as is (no decision: tests and repairs)."""
        main, tasks, _ = self._keys(wf_id)
        latest, open_key, claims = self._index_keys(wf_id)
        self._hset(keys=[main, tasks], args=[self.ttl, task["taskId"], json.dumps(task)])
        self.client.hdel(claims, task["taskId"])
        self._hset(
            keys=[main, latest],
            args=[self.ttl, *(x for name in _names(task) for x in (name, task["taskId"]))],
        )
        if is_open(task):
            self.client.sadd(open_key, task["taskId"])
        else:
            self.client.srem(open_key, task["taskId"])

    def tasks(self, wf_id: str) -> list[dict[str, Any]]:
        return self._view(wf_id, with_fields=False)[1]

    def next_seq(self, wf_id: str) -> int:
        main, _, seq = self._keys(wf_id)
        return int(self._incr(keys=[main, seq], args=[self.ttl]))

    def find(self, criteria: Criteria, fields: Sequence[str]) -> Found:
        query: dict[str, Any] = {
            "min": "-inf" if criteria.start_min is None else str(criteria.start_min),
            "max": "+inf" if criteria.start_max is None else str(criteria.start_max),
            "desc": not criteria.ascending,
            "offset": criteria.offset,
            "count": -1 if criteria.limit is None else criteria.limit,
            "fields": list(fields),
            "trim": SEARCH_TRIM,
        }
        query.update(_search_plan(criteria))
        total, *rows = self._search(keys=[], args=[self.prefix, json.dumps(query)])
        page = []
        for wf_id, values in rows:
            pairs = zip(fields, values, strict=True)
            found = {name: json.loads(raw) for name, raw in pairs if raw is not None}
            page.append({**found, "workflowId": wf_id} if "workflowId" in fields else found)
        return int(total), page

    def save_plan(self, plan: str) -> str:
        digest = plan_digest(plan)
        self.client.set(self._plan_key(digest), plan)  # no TTL: the reopening write counts a workflow
        return digest

    def delete_workflow(self, wf_id: str) -> bool:
        main = self._keys(wf_id)[0]
        digest = self.client.hget(main, "_plan")
        pipe = self.client.pipeline(transaction=True)
        self._unindex(keys=[main], args=[self.prefix, wf_id], client=pipe)
        pipe.delete(*self.workflow_keys(wf_id))
        if digest:
            pipe.hdel(self._plan_key(json.loads(digest)) + ":refs", wf_id)
        return bool(pipe.execute()[1])


SEARCH_TRIM = 1000  # expired index entries a search forgets first (each end also forgets a few)


def _search_plan(criteria: Criteria) -> dict[str, Any]:
    """Which index keys a search reads (``scripts.SEARCH``), and what it checks on each record: the
    narrowest keys the criteria name (each execution is in at most one of them)."""
    filters: dict[str, Any] = {}
    if criteria.versions is not None:
        filters["version"] = {json.dumps(v): True for v in criteria.versions}
    names, statuses = sorted(criteria.names or ()), sorted(criteria.statuses or ())
    if criteria.ids is not None or criteria.correlation_ids is not None:
        for key, values in (("name", criteria.names), ("status", criteria.statuses)):
            if values is not None:
                filters[key] = dict.fromkeys(values, True)
        if criteria.ids is not None:
            if criteria.correlation_ids is not None:
                filters["corr"] = dict.fromkeys(criteria.correlation_ids, True)
            plan: dict[str, Any] = {"ids": sorted(criteria.ids)}
        else:
            plan = {"keys": [f"corr:{c}" for c in sorted(criteria.correlation_ids or ())]}
    elif criteria.names is not None and criteria.statuses is not None:
        plan = {"keys": [f"status:{s}:name:{n}" for s in statuses for n in names]}
    elif criteria.statuses is not None:
        plan = {"keys": [f"status:{s}" for s in statuses]}
    elif criteria.names is not None:
        plan = {"keys": [f"name:{n}" for n in names]}
    else:
        plan = {"keys": ["all"]}
    if filters:
        plan["filter"] = filters
    return plan


def _claimed(record: dict[str, Any], claim: str | None) -> dict[str, Any]:
    """A stored record with its claim entry, if it has one (see ``scripts``)."""
    if claim is None:
        return record
    return {**record, **json.loads(claim), "pollCount": record.get("pollCount", 0) + 1}


def _merged(raw: str, claim: str | None) -> dict[str, Any]:
    return _claimed(json.loads(raw), claim)


def _json_values(texts: list[str]) -> list[Any]:
    """JSON texts decoded (in one call: a step reads a few dozen)."""
    return json.loads(f"[{','.join(texts)}]") if texts else []


def _with_claims(raw_tasks: list[str], claims: dict[str, str]) -> list[dict[str, Any]]:
    """Stored records (each once) with their claim entries, in ``seq`` order."""
    records = {record["taskId"]: record for record in _json_values(raw_tasks)}
    merged = [_claimed(record, claims.get(task_id)) for task_id, record in records.items()]
    return sorted(merged, key=lambda t: t.get("seq", 0))


def safe_url(url: str) -> str:
    """A URL with any password removed, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    netloc = f"{parts.username}:***@{netloc}" if parts.username else f":***@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
