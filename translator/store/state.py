"""Execution state in Conductor's Workflow/Task JSON shape (reference §7.3).

Two stores with one interface:

* ``RedisStore`` (distributed mode): one hash of JSON-encoded fields per workflow, one hash of task
  records per workflow (field = taskId), a sequence counter. Every write touches its own field, so
  concurrent writers never overwrite each other's data; the terminal transition is a compare-and-set
  in Lua, so a workflow ends exactly once.
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
from dataclasses import dataclass, field
from typing import Any

import redis

from translator.errors import TranslatorError
from translator.status import TaskStatus, WorkflowStatus

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
    (report an ended sub-workflow to its parent's task, if its ender could not).
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


Due = tuple[Deadline, int]  # a deadline and when it is due (epoch ms)
DEADLINE_LEASE_MS = 60_000  # a claimed deadline comes back after this unless marked done


def _adds(deadlines: Sequence[Due]) -> str:
    return json.dumps([[d.member(), due] for d, due in deadlines])


def _removes(deadlines: Sequence[Deadline]) -> str:
    return json.dumps([d.member() for d in deadlines])


@dataclass(frozen=True)
class Saved:
    applied: bool  # False: the record was not as expected (someone else decided), nothing written
    ended: bool  # the workflow was ended by this write
    conflict: bool = False  # not applied only because another decision was stored since the read


@dataclass
class Change:
    """One atomic write of an execution (``StateStore.apply``): task records to write (new or
    changed, by taskId), task records to remove, deadlines to add and drop, and the fields that end
    the workflow."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)  # of ``records``: written only if absent
    remove: list[str] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)  # references whose newest record is removed
    add: list[Due] = field(default_factory=list)
    drop: list[Deadline] = field(default_factory=list)
    finish: dict[str, Any] | None = None

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


def is_open(record: dict[str, Any]) -> bool:
    """A task record that is not terminal (SCHEDULED, IN_PROGRESS)."""
    return record["status"] not in TERMINAL_TASK_STATUSES


@dataclass
class Snapshot:
    """One consistent read of an execution: its fields (with its revision ``_rev``), its open task
    records (not terminal) and the records asked for by id. Other records are read on demand
    (``latest_records``, ``tasks``): a step's cost does not grow with the workflow."""

    workflow: dict[str, Any] | None
    tasks: list[dict[str, Any]]  # the open records and those asked for, in ``seq`` order
    seq: int = 0  # a sequence number reserved for the record this step will schedule
    open_ids: frozenset[str] = frozenset()  # the ids of the open records


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
    def snapshot(self, wf_id: str, task_ids: Sequence[str] = ()) -> Snapshot:
        """Workflow fields, open task records and the records ``task_ids`` in one round trip,
        reserving one ``seq`` number."""

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

    def workflow(self, wf_id: str, *, include_tasks: bool = True) -> dict[str, Any] | None:
        """The execution as Conductor's ``GET /workflow/{id}`` shows it."""
        fields = self.workflow_fields(wf_id)
        if fields is None:
            return None
        record = {k: v for k, v in fields.items() if v is not None and not k.startswith("_")}
        if include_tasks:
            record["tasks"] = self.tasks(wf_id)
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

    def snapshot(self, wf_id: str, task_ids: Sequence[str] = ()) -> Snapshot:
        with self._lock:
            workflow = self._workflows.get(wf_id)
            records = self._tasks.get(wf_id, {})
            open_ids = frozenset(self._open.get(wf_id, set()))
            wanted = [i for i in dict.fromkeys([*sorted(open_ids), *task_ids]) if i in records]
            tasks = [json.loads(records[i]) for i in wanted]
            seq = 0
            if workflow is not None:
                self._seq[wf_id] = seq = self._seq.get(wf_id, 0) + 1
            return Snapshot(
                json.loads(json.dumps(workflow)) if workflow is not None else None,
                sorted(tasks, key=lambda t: t.get("seq", 0)),
                seq,
                open_ids,
            )

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
            if workflow is None or workflow["status"] in TERMINAL_WORKFLOW_STATUSES:
                return Saved(False, False)
            if rev is not None and int(workflow.get("_rev") or 0) != rev:
                return Saved(False, False, conflict=True)
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


# Lifetimes. A running workflow's keys have no TTL. ``ended`` runs in the script that ends a workflow:
# its keys expire in ``ttl`` seconds (never when ttl <= 0), and its plan stops counting it as running.
# ``<plan>:refs`` is a hash: running workflow id -> 1, and '~until' = when the longest-lived ended
# record naming the plan expires (epoch ms, -1: never). The plan (and refs) expire at '~until' once
# no running workflow names it; ``create_workflow`` clears that expiry again. (The plan key is derived
# from the record's ``_plan`` inside the script: the store is one Redis, not a cluster.)
# ``follow`` runs after writes that may come after the end (a late claim, a canceled task, a counter):
# the key takes the remaining time of the workflow's record, or ``ttl`` when the record is gone.
_LIFETIME_LUA = """
local function ended(keys, ttl, prefix, wf)
  if ttl > 0 then
    for _, key in ipairs(keys) do redis.call('EXPIRE', key, ttl) end
  end
  local digest = redis.call('HGET', keys[1], '_plan')
  if not digest then return end
  local plan = prefix .. 'plan:' .. cjson.decode(digest)
  local refs = plan .. ':refs'
  redis.call('HDEL', refs, wf)
  local keep = tonumber(redis.call('HGET', refs, '~until') or '0')
  if keep ~= -1 then
    if ttl > 0 then
      local now = redis.call('TIME')
      -- rounded up to the next ms: never before the keys just given ttl
      local expires = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + 1 + ttl * 1000
      keep = math.max(keep, expires)
    else
      keep = -1
    end
    redis.call('HSET', refs, '~until', string.format('%.0f', keep))
  end
  if keep ~= -1 and redis.call('HLEN', refs) == 1 then
    redis.call('PEXPIREAT', plan, string.format('%.0f', keep))
    redis.call('PEXPIREAT', refs, string.format('%.0f', keep))
  end
end

local function follow(main, key, ttl)
  local left = redis.call('PTTL', main)
  if left > 0 then
    redis.call('PEXPIRE', key, left)
  elseif left == -2 and ttl > 0 then
    redis.call('EXPIRE', key, ttl)
  end
end
"""

# KEYS: workflow, tasks, seq. ARGV: terminal statuses, ttl, prefix, workflow id, then field/value pairs.
_FINISH_SCRIPT = (
    _LIFETIME_LUA
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
local decoded = cjson.decode(status)
for s in string.gmatch(ARGV[1], '[^,]+') do
  if decoded == s then return 0 end
end
for i = 5, #ARGV - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
ended(KEYS, tonumber(ARGV[2]), ARGV[3], ARGV[4])
return 1
"""
)


# Deadlines to add (JSON [[member, due], ...]) and to drop (JSON [member, ...]).
_DEADLINES_LUA = """
local function deadlines(key, adds, removes)
  for _, member in ipairs(cjson.decode(removes)) do redis.call('ZREM', key, member) end
  for _, pair in ipairs(cjson.decode(adds)) do redis.call('ZADD', key, pair[2], pair[1]) end
end
"""

# KEYS: tasks, deadlines, workflow, latest, open. ARGV: taskId, task JSON, takeover, deadlines to add
# and to drop, ttl, then the names the record is the newest of.
_CLAIM_SCRIPT = (
    _DEADLINES_LUA
    + _LIFETIME_LUA
    + """
local current = redis.call('HGET', KEYS[1], ARGV[1])
local status = 'SCHEDULED'
if current then status = cjson.decode(current)['status'] end
if status == 'SCHEDULED' or (status == 'IN_PROGRESS' and ARGV[3] == '1') then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('SADD', KEYS[5], ARGV[1])
  for i = 7, #ARGV do redis.call('HSET', KEYS[4], ARGV[i], ARGV[1]) end
  deadlines(KEYS[2], ARGV[4], ARGV[5])
  for i = 1, 5 do
    if i ~= 2 and i ~= 3 then follow(KEYS[3], KEYS[i], tonumber(ARGV[6])) end
  end
  return false
end
return status
"""
)

# KEYS: tasks, workflow, seq, deadlines. ARGV: expected taskId ('' = none), its status and startTime,
# revision ('' = any), ttl once ended, deadlines to add, deadlines to drop, terminal statuses, prefix,
# workflow id, the number of records, then taskId/JSON/create-only ('1': HSETNX)/open ('1') quads, the
# number of newest-record pairs (name, taskId), the pairs, the number of names to forget, the names, the
# number of ids to remove, the ids, the highest seq written (the counter is raised to it), then the
# field/value pairs that end the workflow.
# KEYS[5], KEYS[6]: the references' newest records (hash) and the open records' ids (set).
# Returns {applied, ended, conflict}.
_APPLY_SCRIPT = (
    _DEADLINES_LUA
    + _LIFETIME_LUA
    + """
local wstatus = redis.call('HGET', KEYS[2], 'status')
if not wstatus then return {0, 0, 0} end
wstatus = cjson.decode(wstatus)
for s in string.gmatch(ARGV[8], '[^,]+') do
  if wstatus == s then return {0, 0, 0} end
end
local rev = tonumber(redis.call('HGET', KEYS[2], '_rev') or '0')
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= rev then return {0, 0, 1} end
if ARGV[1] ~= '' then
  local current = redis.call('HGET', KEYS[1], ARGV[1])
  if not current then return {0, 0, 0} end
  local record = cjson.decode(current)
  if record['status'] ~= ARGV[2] or string.format('%d', record['startTime'] or 0) ~= ARGV[3] then
    return {0, 0, 0}
  end
end
local i = 11
local n = tonumber(ARGV[i])
for j = 1, n do
  local at = i + 4 * j - 3
  if ARGV[at + 2] == '1' then
    redis.call('HSETNX', KEYS[1], ARGV[at], ARGV[at + 1])
  else
    redis.call('HSET', KEYS[1], ARGV[at], ARGV[at + 1])
  end
  if ARGV[at + 3] == '1' then
    redis.call('SADD', KEYS[6], ARGV[at])
  else
    redis.call('SREM', KEYS[6], ARGV[at])
  end
end
i = i + 4 * n + 1
n = tonumber(ARGV[i])
for j = 1, n do redis.call('HSET', KEYS[5], ARGV[i + 2 * j - 1], ARGV[i + 2 * j]) end
i = i + 2 * n + 1
n = tonumber(ARGV[i])
for j = 1, n do redis.call('HDEL', KEYS[5], ARGV[i + j]) end
i = i + n + 1
n = tonumber(ARGV[i])
for j = 1, n do
  redis.call('HDEL', KEYS[1], ARGV[i + j])
  redis.call('SREM', KEYS[6], ARGV[i + j])
end
i = i + n + 1
deadlines(KEYS[4], ARGV[6], ARGV[7])
redis.call('HSET', KEYS[2], '_rev', rev + 1)
local top = tonumber(ARGV[i])
if top > tonumber(redis.call('GET', KEYS[3]) or '0') then redis.call('SET', KEYS[3], top) end
i = i + 1
if #ARGV >= i then
  for k = i, #ARGV - 1, 2 do redis.call('HSET', KEYS[2], ARGV[k], ARGV[k + 1]) end
  ended({KEYS[2], KEYS[1], KEYS[3], KEYS[5], KEYS[6]}, tonumber(ARGV[5]), ARGV[9], ARGV[10])
  return {1, 1, 0}
end
return {1, 0, 0}
"""
)

# KEYS: workflow, tasks, seq, open. ARGV: ttl, then task ids. The fields (flat), the open ids, the
# records of the open ids and of the ids asked for (false where missing), a reserved seq.
_SNAPSHOT_SCRIPT = (
    _LIFETIME_LUA
    + """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {{}, {}, {}, 0} end
local seq = redis.call('INCR', KEYS[3])
follow(KEYS[1], KEYS[3], tonumber(ARGV[1]))
local open = redis.call('SMEMBERS', KEYS[4])
local ids = {}
for _, id in ipairs(open) do table.insert(ids, id) end
for i = 2, #ARGV do table.insert(ids, ARGV[i]) end
local records = {}
if #ids > 0 then records = redis.call('HMGET', KEYS[2], unpack(ids)) end
return {fields, open, records, seq}
"""
)

# KEYS: latest, tasks. ARGV: references. Their newest records, as [reference, JSON] pairs.
_LATEST_SCRIPT = """
local found = {}
if #ARGV == 0 then return found end
local ids = redis.call('HMGET', KEYS[1], unpack(ARGV))
for i, id in ipairs(ids) do
  if id then
    local record = redis.call('HGET', KEYS[2], id)
    if record then table.insert(found, {ARGV[i], record}) end
  end
end
return found
"""

# KEYS: workflow, key (a hash). ARGV: ttl, then field/value pairs.
_HSET_SCRIPT = (
    _LIFETIME_LUA
    + """
for i = 2, #ARGV - 1, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
follow(KEYS[1], KEYS[2], tonumber(ARGV[1]))
return 1
"""
)

# KEYS: workflow, seq. ARGV: ttl.
_INCR_SCRIPT = (
    _LIFETIME_LUA
    + """
local seq = redis.call('INCR', KEYS[2])
follow(KEYS[1], KEYS[2], tonumber(ARGV[1]))
return seq
"""
)

# KEYS: workflow. ARGV: field/value pairs, written only if the record exists (it keeps its TTL).
_UPDATE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

_CLAIM_DUE_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], member) end
return due
"""


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


def _pairs(fields: dict[str, Any]) -> list[str]:
    """Field/value arguments of a script, values JSON-encoded."""
    return [item for name, value in fields.items() for item in (name, json.dumps(value))]


class RedisStore(StateStore):
    """Redis-backed store (distributed mode), safe under concurrent writers."""

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
        self._finish = self.client.register_script(_FINISH_SCRIPT)
        self._claim = self.client.register_script(_CLAIM_SCRIPT)
        self._apply = self.client.register_script(_APPLY_SCRIPT)
        self._snapshot = self.client.register_script(_SNAPSHOT_SCRIPT)
        self._hset = self.client.register_script(_HSET_SCRIPT)
        self._incr = self.client.register_script(_INCR_SCRIPT)
        self._update = self.client.register_script(_UPDATE_SCRIPT)
        self._claim_due = self.client.register_script(_CLAIM_DUE_SCRIPT)
        self._latest = self.client.register_script(_LATEST_SCRIPT)
        self.deadlines_key = f"{prefix}deadlines"

    def _keys(self, wf_id: str) -> tuple[str, str, str]:
        base = f"{self.prefix}wf:{wf_id}"
        return base, base + ":tasks", base + ":seq"

    def _index_keys(self, wf_id: str) -> tuple[str, str]:
        """The references' newest records (hash name -> taskId) and the open records' ids (set)."""
        base = f"{self.prefix}wf:{wf_id}"
        return base + ":latest", base + ":open"

    def _plan_key(self, digest: str) -> str:
        return f"{self.prefix}plan:{digest}"

    def workflow_keys(self, wf_id: str, digest: str | None = None) -> list[str]:
        """Every key of an execution: its record, tasks and counter, and with ``digest`` its plan and
        the plan's references."""
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
        first = _records(first_task)
        digest = plan_digest(plan)
        plan_key = self._plan_key(digest)
        if not self.client.hsetnx(main, "workflowId", json.dumps(wf_id)):
            return False  # the id is taken (a failure workflow started twice)
        with self.client.pipeline(transaction=True) as pipe:
            fields = {k: json.dumps(v) for k, v in workflow.items()}
            fields["_plan"] = json.dumps(digest)
            pipe.hset(main, mapping=fields)
            pipe.set(plan_key, plan)  # no TTL while a workflow runs it (SET clears an ended one's)
            pipe.hset(plan_key + ":refs", wf_id, 1)
            pipe.persist(plan_key + ":refs")
            if first:
                pipe.hset(tasks, mapping={t["taskId"]: json.dumps(t) for t in first})
                pipe.set(seq, max(int(t.get("seq") or 0) for t in first))
                change = Change()
                for task in first:
                    change.write(task)
                latest, open_key = self._index_keys(wf_id)
                pipe.hset(latest, mapping=change.latest())
                opened = [t["taskId"] for t in first if is_open(t)]
                if opened:
                    pipe.sadd(open_key, *opened)
            if deadlines:
                pipe.zadd(self.deadlines_key, {deadline.member(): due for deadline, due in deadlines})
            pipe.execute()
        return True

    def snapshot(self, wf_id: str, task_ids: Sequence[str] = ()) -> Snapshot:
        main, tasks, seq = self._keys(wf_id)
        keys = [main, tasks, seq, self._index_keys(wf_id)[1]]
        raw_workflow, open_ids, raw_tasks, reserved = self._snapshot(keys=keys, args=[self.ttl, *task_ids])
        if not raw_workflow:
            return Snapshot(None, [])
        pairs = zip(raw_workflow[::2], raw_workflow[1::2], strict=True)
        unique = {r["taskId"]: r for r in (json.loads(v) for v in raw_tasks if v)}
        records = sorted(unique.values(), key=lambda t: t.get("seq", 0))
        return Snapshot({k: json.loads(v) for k, v in pairs}, records, int(reserved), frozenset(open_ids))

    def latest_records(self, wf_id: str, refs: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not refs:
            return {}
        keys = [self._index_keys(wf_id)[0], self._keys(wf_id)[1]]
        return {ref: json.loads(raw) for ref, raw in self._latest(keys=keys, args=list(refs))}

    def apply(
        self, wf_id: str, change: Change, *, expect: Expect | None = None, rev: int | None = None
    ) -> Saved:
        main, tasks, seq = self._keys(wf_id)
        args: list[Any] = [
            expect[0] if expect else "",
            expect[1] if expect else "",
            str(int(expect[2])) if expect else "",
            "" if rev is None else str(rev),
            self._end_ttl(change.finish or {}),
            _adds(change.add),
            _removes(change.drop),
            ",".join(TERMINAL_WORKFLOW_STATUSES),
            self.prefix,
            wf_id,
            len(change.records),
        ]
        for task_id, record in change.records.items():
            created = "1" if task_id in change.created else "0"
            args += [task_id, json.dumps(record), created, "1" if is_open(record) else "0"]
        latest = change.latest()
        args += [len(latest), *(item for pair in latest.items() for item in pair)]
        args += [len(change.forget), *change.forget]
        args += [len(change.remove), *change.remove]
        args += [max((int(r.get("seq") or 0) for r in change.records.values()), default=0)]
        args += _pairs(change.finish or {})
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

    def status(self, wf_id: str) -> WorkflowStatus | None:
        raw = self.client.hget(self._keys(wf_id)[0], "status")
        return WorkflowStatus(json.loads(raw)) if raw else None

    def plan(self, digest: str) -> dict[str, Any] | None:
        raw = self.client.get(self._plan_key(digest))
        return json.loads(raw) if raw else None

    def update_workflow(self, wf_id: str, fields: dict[str, Any]) -> None:
        if fields:
            self._update(keys=[self._keys(wf_id)[0]], args=_pairs(fields))

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
        self._hset(keys=[main, tasks], args=[self.ttl, task["taskId"], json.dumps(task)])
        latest, open_key = self._index_keys(wf_id)
        self._hset(
            keys=[main, latest],
            args=[self.ttl, *(x for name in _names(task) for x in (name, task["taskId"]))],
        )
        if is_open(task):
            self.client.sadd(open_key, task["taskId"])
        else:
            self.client.srem(open_key, task["taskId"])

    def tasks(self, wf_id: str) -> list[dict[str, Any]]:
        records = [json.loads(v) for v in self.client.hvals(self._keys(wf_id)[1])]
        return sorted(records, key=lambda t: t.get("seq", 0))

    def next_seq(self, wf_id: str) -> int:
        main, _, seq = self._keys(wf_id)
        return int(self._incr(keys=[main, seq], args=[self.ttl]))


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
