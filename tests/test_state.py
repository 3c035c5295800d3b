"""State stores: the same contract for MemoryStore and RedisStore (against a private redis-server)."""

from __future__ import annotations

import threading

import pytest

from translator.store.state import MemoryStore, RedisStore, safe_url


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return MemoryStore()
    return RedisStore(request.getfixturevalue("redis_url"), prefix=f"{request.node.nodeid}:", ttl=60)


def _workflow(wf_id="w1"):
    return {"workflowId": wf_id, "workflowName": "n", "status": "RUNNING", "input": {"a": 1}, "output": {}}


def _task(task_id, seq, status="SCHEDULED", ref="r"):
    return {"taskId": task_id, "seq": seq, "status": status, "referenceTaskName": ref}


def test_create_snapshot_and_views(store):
    store.create_workflow(_workflow(), '{"plan": 1}', _task("t1", 1))
    snap = store.snapshot("w1")
    assert snap.workflow["input"] == {"a": 1}
    assert [t["taskId"] for t in snap.tasks] == ["t1"]
    assert snap.seq == 2  # the first task took seq 1
    assert store.plan(snap.workflow["_plan"]) == {"plan": 1}
    view = store.workflow("w1")
    assert "_plan" not in view
    assert view["tasks"] == [_task("t1", 1)]
    assert store.status("w1").value == "RUNNING"


def test_unknown_workflow(store):
    assert store.snapshot("nope").workflow is None
    assert store.workflow("nope") is None
    assert store.status("nope") is None


def test_save_tasks_does_not_overwrite_an_existing_scheduled_record(store):
    store.create_workflow(_workflow(), "{}", _task("t1", 1))
    store.save_task("w1", _task("t2", 2, "IN_PROGRESS"))
    store.save_tasks("w1", _task("t1", 1, "COMPLETED"), _task("t2", 2, "SCHEDULED"))
    statuses = {t["taskId"]: t["status"] for t in store.tasks("w1")}
    assert statuses == {"t1": "COMPLETED", "t2": "IN_PROGRESS"}


def test_finish_happens_once(store):
    store.create_workflow(_workflow(), "{}")
    assert store.finish_workflow("w1", {"status": "FAILED", "reasonForIncompletion": "x"})
    assert not store.finish_workflow("w1", {"status": "COMPLETED"})
    record = store.workflow("w1", include_tasks=False)
    assert record["status"] == "FAILED" and record["reasonForIncompletion"] == "x"


def test_concurrent_writers_lose_nothing(store):
    store.create_workflow(_workflow(), "{}")

    def writer(n):
        for i in range(50):
            store.save_task("w1", _task(f"{n}-{i}", store.next_seq("w1"), "COMPLETED", ref=f"r{n}"))
            store.update_workflow("w1", {f"field{n}": i})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tasks = store.tasks("w1")
    assert len(tasks) == 400
    assert sorted(t["seq"] for t in tasks) == list(range(1, 401))
    fields = store.workflow("w1", include_tasks=False)
    assert all(fields[f"field{n}"] == 49 for n in range(8))


def test_safe_url_hides_passwords():
    assert safe_url("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert safe_url("redis://user:secret@host/0") == "redis://user:***@host/0"
    assert safe_url("redis://host:6379/0") == "redis://host:6379/0"


def test_create_refuses_an_existing_id(store):
    assert store.create_workflow(_workflow(), '{"plan": 1}', _task("t1", 1)) is True
    assert store.create_workflow({**_workflow(), "input": {"b": 2}}, '{"plan": 1}') is False
    assert store.workflow_fields("w1")["input"] == {"a": 1}


def test_deadlines_are_claimed_once_leased_and_dropped_when_done(store):
    from translator.store.state import Deadline

    soon, later = Deadline("poll", "w1", "r", 0, 5), Deadline("response", "w1", "r", 0, 7)
    store.add_deadlines([(soon, 1000), (later, 5000)])
    assert store.claim_due(999) == []
    assert store.claim_due(1000, lease_ms=100) == [soon]
    assert store.claim_due(1050) == []  # leased to the first claimant
    assert store.claim_due(1100) == [soon]  # not marked done: it comes back after the lease
    store.done([soon])
    assert store.claim_due(4999) == []
    assert store.pending_deadlines() == 1
    assert store.claim_due(10_000) == [later]


def test_writes_register_and_drop_deadlines_atomically(store):
    from translator.store.state import Deadline

    store.create_workflow(_workflow(), '{"plan": 1}', _task("t1", 1), [(Deadline("workflow", "w1"), 50)])
    poll, response = Deadline("poll", "w1", "r", 0, 1), Deadline("response", "w1", "r", 0, 2)
    store.add_deadlines([(poll, 10)])
    assert store.claim_task("w1", _task("t1", 1, "IN_PROGRESS"), False, [(response, 20)], [poll]) is None
    assert store.claim_due(30, lease_ms=1000) == [response]
    saved = store.save_tasks("w1", _task("t1", 1, "COMPLETED"), clear=[response, Deadline("workflow", "w1")])
    assert saved.applied
    assert store.pending_deadlines() == 0
