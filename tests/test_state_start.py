"""The start of an attempt written by the read that loads it (``StateStore.snapshot`` with a ``Start``),
``Change.update``, and snapshots that read every record of a small execution: the same contract for
MemoryStore and RedisStore (a private redis-server), and the step that uses them."""

from __future__ import annotations

import json

import pytest

from translator.engine.deadlines import response_deadline, waiting_deadlines
from translator.engine.decide import attempt_id
from translator.runner import prepare
from translator.runtime import step as step_module
from translator.runtime.step import Outcome, execute_step
from translator.runtime.workers import worker_task
from translator.store.records import start_workflow
from translator.store.state import (
    READ_ALL_UP_TO,
    Change,
    Deadline,
    MemoryStore,
    RedisStore,
    Start,
    plan_digest,
)

PLAN = '{"plan": "start"}'
DIGEST = plan_digest(PLAN)
SCHEDULED_AT = 1_000_000
START_AT = 1_000_500


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return MemoryStore()
    return RedisStore(request.getfixturevalue("redis_url"), prefix=f"{request.node.nodeid}:", ttl=60)


def _workflow(wf_id: str = "w1") -> dict:
    return {"workflowId": wf_id, "workflowName": "n", "status": "RUNNING", "input": {}, "output": {}}


def _record(ref: str = "a", attempt: int = 0, wf_id: str = "w1", **fields) -> dict:
    record = {
        "taskId": attempt_id(wf_id, ref, attempt),
        "referenceTaskName": ref,
        "workflowInstanceId": wf_id,
        "retryCount": attempt,
        "status": "SCHEDULED",
        "seq": 1,
        "pollCount": 0,
        "scheduledTime": SCHEDULED_AT,
        "startTime": 0,
        "callbackAfterSeconds": 0,
        "inputData": {"x": 1},
    }
    record.update(fields)
    return record


def _start(record: dict, **options) -> Start:
    fields = {"status": "IN_PROGRESS", "startTime": START_AT, "updateTime": START_AT, "workerId": "w@h"}
    values = {"digest": DIGEST, "response_seconds": 60, "poll": True, "tolerance_ms": 1000, **options}
    return Start(record["taskId"], record["referenceTaskName"], record["retryCount"], fields=fields, **values)


def _waiting(record: dict) -> list:
    """The wake and poll deadlines of a SCHEDULED record, as its scheduling registers them."""
    token = record["scheduledTime"]
    ref, attempt = record["referenceTaskName"], record["retryCount"]
    return [
        (Deadline(kind, record["workflowInstanceId"], ref, attempt, token), token)  # due already
        for kind in ("wake", "poll")
    ]


def _due_now(store) -> set[Deadline]:
    return set(store.claim_due(10**14, lease_ms=1))


def test_a_start_applies_with_the_read_that_loads_it(store):
    record = _record()
    store.create_workflow(_workflow(), PLAN, record, _waiting(record))
    start = _start(record)
    snap = store.snapshot("w1", [record["taskId"]], start)
    assert snap.started
    assert snap.tasks == [record]  # the read shows the record as it was before the start
    stored = store.tasks("w1")[0]
    assert stored == {**record, **start.fields, "pollCount": 1}
    assert store.latest_records("w1", ["a"])["a"] == stored
    assert store.snapshot("w1", [record["taskId"]]).tasks == [stored]
    assert store.workflow("w1")["tasks"] == [stored]
    response = Deadline("response", "w1", "a", 0, START_AT)
    assert store.claim_due(START_AT + 60_000 - 1, lease_ms=1) == []  # wake and poll were dropped
    assert store.claim_due(START_AT + 60_000, lease_ms=1) == [response]


def test_a_started_record_is_expected_in_progress_and_rewritten_whole(store):
    record = _record()
    store.create_workflow(_workflow(), PLAN, record)
    start = _start(record)
    assert store.snapshot("w1", [], start).started
    ended = {**start.record(record), "status": "COMPLETED", "endTime": START_AT + 5}
    change = Change()
    change.write(ended)
    assert not store.apply("w1", change, expect=(record["taskId"], "SCHEDULED", 0)).applied
    assert store.apply("w1", change, expect=(record["taskId"], "IN_PROGRESS", START_AT)).applied
    assert store.tasks("w1") == [ended]
    if isinstance(store, RedisStore):  # the claim entry went with the write
        assert not store.client.exists(store.workflow_keys("w1")[-1])


def test_a_started_record_is_not_claimed_again(store):
    record = _record()
    store.create_workflow(_workflow(), PLAN, record)
    assert store.snapshot("w1", [], _start(record)).started
    assert not store.snapshot("w1", [], _start(record)).started
    assert store.claim_task("w1", {**record, "status": "IN_PROGRESS"}, takeover=False) == "IN_PROGRESS"
    assert store.tasks("w1")[0]["pollCount"] == 1


def test_a_taken_over_start_counts_another_poll(store):
    record = _record(status="IN_PROGRESS", startTime=900, pollCount=1)
    store.create_workflow(_workflow(), PLAN, record)
    assert not store.snapshot("w1", [], _start(record)).started  # running elsewhere: no takeover
    assert store.snapshot("w1", [], _start(record, takeover=True)).started
    assert store.tasks("w1")[0]["pollCount"] == 2
    taken = {**store.tasks("w1")[0], "startTime": START_AT + 1, "pollCount": 3}
    assert store.claim_task("w1", taken, takeover=True) is None  # written whole
    assert store.tasks("w1") == [taken]


@pytest.mark.parametrize(
    "why",
    ["other plan", "no record", "planned at run time", "not due", "ended", "completed"],
)
def test_a_start_that_does_not_apply_writes_nothing(store, why):
    record = _record(
        callbackAfterSeconds=2 if why == "not due" else 0,  # due 1.5 s after the start: over 1 s
        status="COMPLETED" if why == "completed" else "SCHEDULED",
    )
    if why == "planned at run time":
        record["workflowTask"] = {"name": "x"}
    store.create_workflow(_workflow(), PLAN, [] if why == "no record" else [record], _waiting(record))
    if why == "ended":
        assert store.finish_workflow("w1", {"status": "TERMINATED"})
    start = _start(record, digest=plan_digest("{}") if why == "other plan" else DIGEST)
    before = store.tasks("w1")
    snap = store.snapshot("w1", [record["taskId"]], start)
    assert not snap.started
    assert store.tasks("w1") == before
    assert {d.kind for d in _due_now(store)} == {"wake", "poll"}


def test_a_start_is_due_within_its_tolerance(store):
    record = _record(callbackAfterSeconds=1)  # due at SCHEDULED_AT + 1000 = START_AT + 500
    store.create_workflow(_workflow(), PLAN, record)
    assert not store.snapshot("w1", [], _start(record, tolerance_ms=499)).started
    assert store.snapshot("w1", [], _start(record, tolerance_ms=500)).started
    # its response deadline counts callbackAfterSeconds too (as ``response_deadline``)
    assert store.claim_due(START_AT + 61_000 - 1, lease_ms=1) == []
    assert [d.kind for d in store.claim_due(START_AT + 61_000, lease_ms=1)] == ["response"]


def test_a_loop_iteration_start_is_the_newest_under_both_names(store):
    record = _record(ref="body__2", iteration=2)
    store.create_workflow(_workflow(), PLAN, record)
    assert store.snapshot("w1", [], _start(record)).started
    latest = store.latest_records("w1", ["body__2", "body"])
    assert latest["body"]["status"] == latest["body__2"]["status"] == "IN_PROGRESS"


def test_start_deadlines_are_the_engines(tmp_path):
    """What a start registers and drops is what ``deadlines.py`` computes for the same attempt."""
    definition = {
        "name": "d",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": "start_noop", "taskReferenceName": "a", "type": "SIMPLE"}],
    }
    taskdefs = [{"name": "start_noop", "responseTimeoutSeconds": 45, "pollTimeoutSeconds": 30}]
    (tmp_path / "d.json").write_text(json.dumps(definition))
    (tmp_path / "defs.json").write_text(json.dumps(taskdefs))
    step = prepare(tmp_path / "d.json", [tmp_path / "defs.json"]).step("a")
    record = _record(callbackAfterSeconds=3)
    start = _start(record, response_seconds=45, poll=True)
    add, drop = start.deadlines("w1", record)
    assert drop == waiting_deadlines(record, step)
    assert add == [response_deadline(start.record(record), step)]


@pytest.mark.parametrize("ref", ["a", 'quo"te', 'token": 0', "ünï/cødé", "x__3"])
def test_a_member_splits_around_its_token(ref):
    deadline = Deadline("wake", 'w"1/ü', ref, 2, 1_795_910_731_309)
    before, after = deadline.around_token()
    assert before + str(deadline.token) + after == deadline.member()


# ---------------------------------------------------------------------------------------------
# Change.update


def test_an_update_sets_workflow_fields_in_the_same_write(store):
    record = _record()
    store.create_workflow(_workflow(), PLAN, record)
    rev = int(store.snapshot("w1").workflow.get("_rev") or 0)
    change = Change(update={"variables": {"n": 1}})
    change.write({**record, "status": "COMPLETED"})
    saved = store.apply("w1", change, rev=rev)
    assert saved.applied and not saved.ended
    fields = store.workflow_fields("w1")
    assert fields["variables"] == {"n": 1} and fields["_rev"] == rev + 1
    assert store.tasks("w1")[0]["status"] == "COMPLETED"


def test_an_update_decided_on_a_stale_revision_is_not_written(store):
    store.create_workflow(_workflow(), PLAN, _record())
    rev = int(store.snapshot("w1").workflow.get("_rev") or 0)
    assert store.apply("w1", Change(update={"variables": {"n": 1}}), rev=rev).applied
    stale = store.apply("w1", Change(update={"variables": {"n": 2}}), rev=rev)
    assert stale.conflict and not stale.applied
    assert store.workflow_fields("w1")["variables"] == {"n": 1}


def test_an_update_with_an_end_is_set_before_it(store):
    store.create_workflow(_workflow(), PLAN)
    change = Change(
        update={"variables": {"n": 1}, "output": {"early": 1}},
        finish={"status": "COMPLETED", "output": {"o": 1}},
    )
    assert store.apply("w1", change).ended
    fields = store.workflow_fields("w1")
    assert fields["variables"] == {"n": 1} and fields["output"] == {"o": 1}
    assert not store.apply("w1", Change(update={"variables": {"n": 3}})).applied  # it has ended
    assert store.workflow_fields("w1")["variables"] == {"n": 1}


# ---------------------------------------------------------------------------------------------
# Snapshots of small executions


def test_a_small_execution_is_read_whole_and_a_bigger_one_by_need(store):
    records = [_record(ref=f"r{i}", seq=i, status="COMPLETED") for i in range(READ_ALL_UP_TO)]
    store.create_workflow(_workflow(), PLAN, records)
    snap = store.snapshot("w1")
    assert snap.complete and [t["referenceTaskName"] for t in snap.tasks] == [
        f"r{i}" for i in range(READ_ALL_UP_TO)
    ]
    store.save_task("w1", _record(ref="open", seq=99))
    snap = store.snapshot("w1", [records[0]["taskId"]])
    assert not snap.complete
    assert [t["referenceTaskName"] for t in snap.tasks] == ["r0", "open"]


# ---------------------------------------------------------------------------------------------
# The step: its second attempt of a known plan is started by its read


@worker_task("start_test_noop")
def _noop() -> dict:
    return {"done": True}


class CountingStore(RedisStore):
    """A Redis store that counts the claims made after a read."""

    claims = 0

    def claim_task(self, *args, **kwargs):
        self.claims += 1
        return super().claim_task(*args, **kwargs)


def test_a_step_of_a_known_plan_starts_with_its_read(redis_url, tmp_path):
    definition = {
        "name": "start_test",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": "start_test_noop", "taskReferenceName": "only", "type": "SIMPLE"}],
    }
    (tmp_path / "start_test.json").write_text(json.dumps(definition))
    plan = prepare(tmp_path / "start_test.json")
    store = CountingStore(redis_url, prefix="step-start:", ttl=60)
    step_module._START_PLANS.clear()
    ended = []
    for _ in range(2):
        started = start_workflow(store, plan, {})
        assert started is not None
        result = execute_step(store, started[0], "only", 0, "w@h", celery_id="c1")
        assert result.outcome is Outcome.CONTINUE
        ended.append(store.workflow(started[0]))
    assert store.claims == 1  # the first step read the plan, then claimed; the second started at once
    for execution in ended:
        assert execution["status"] == "COMPLETED"
        (task,) = execution["tasks"]
        assert task["status"] == "COMPLETED" and task["pollCount"] == 1
        assert (
            task["workerId"] == "w@h"
            and task["celeryTaskId"] == "c1"
            and task["outputData"] == {"done": True}
        )
    assert store.pending_deadlines() == 0
