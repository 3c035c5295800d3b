"""Searching executions (docs/search.md): the query grammar, the indexes the store scripts keep (a
private redis-server) and MemoryStore's same answers, their lifetimes, and ``translator list``."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import ROOT
from tests.services import translator_cli, wait_until
from translator.engine.decide import decide
from translator.errors import UsageError
from translator.runner import prepare
from translator.store.records import start_workflow, terminate
from translator.store.search import parse_query, parse_time, running, search
from translator.store.state import Change, Criteria, MemoryStore, RedisStore

DEFS = ROOT / "tests" / "fixtures" / "runtime"
T0 = 1_700_000_000_000


def _redis(redis_url: str, request: pytest.FixtureRequest, ttl: int = 60) -> RedisStore:
    return RedisStore(redis_url, prefix=f"{request.node.nodeid}:", ttl=ttl)


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return MemoryStore()
    return _redis(request.getfixturevalue("redis_url"), request)


def _workflow(n: int, name: str, corr: str | None = None, version: int = 1) -> dict:
    start = T0 + n * 1000
    return {
        "workflowId": f"w{n:02d}",
        "workflowName": name,
        "workflowVersion": version,
        "status": "RUNNING",
        "input": {"n": n},
        "output": {},
        "correlationId": corr,
        "failedReferenceTaskNames": [],
        "priority": 0,
        "createTime": start,
        "startTime": start,
        "updateTime": start,
        "endTime": 0,
    }


def _end(store, n: int, status: str, **fields) -> None:
    finish = {"status": status, "endTime": T0 + n * 1000 + 500, "updateTime": T0 + n * 1000 + 500, **fields}
    assert store.apply(f"w{n:02d}", Change(finish=finish)).ended


def _ids(found: dict) -> list[str]:
    return [summary["workflowId"] for summary in found["results"]]


def _populate(store) -> None:
    """w00..w11: names a/b alternate, w00-w02 correlated 'c1'; w00, w03, w06, w09 (b, a, b, a)
    COMPLETED / FAILED / TIMED_OUT / FAILED, the rest RUNNING."""
    for n in range(12):
        store.create_workflow(_workflow(n, "b" if n % 2 == 0 else "a", "c1" if n < 3 else None), "{}")
    _end(store, 0, "COMPLETED", output={"ok": True})
    _end(store, 3, "FAILED", reasonForIncompletion="boom", failedReferenceTaskNames=["x", "y"])
    _end(store, 6, "TIMED_OUT")
    _end(store, 9, "FAILED")


# ---------------------------------------------------------------------------------------------
# The query


def test_the_query_grammar():
    criteria = parse_query(
        "workflowType = 'img' AND status IN (FAILED, TIMED_OUT) and correlationId = \"o-1\" "
        "AND startTime > 1700000000000 AND startTime <= 2023-11-15T00:00:00Z"
    )
    assert criteria.names == {"img"}
    assert criteria.statuses == {"FAILED", "TIMED_OUT"}
    assert criteria.correlation_ids == {"o-1"}
    assert (criteria.start_min, criteria.start_max) == (T0 + 1, 1_700_006_400_000)
    assert parse_query("workflowType IN (a,b) AND workflowType = b").names == {"b"}  # ANDed
    assert parse_query("startTime = 5") == Criteria(start_min=5, start_max=5)
    assert parse_query(None) == parse_query("  ") == Criteria()
    assert parse_time("2h", now=T0) == T0 - 2 * 3600 * 1000
    assert parse_time("2023-11-14T22:13:20") == T0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status = FAILED OR status = COMPLETED", "AND only"),
        ("workflowType = a AND input = 'x'", "names 'input'"),
        ("status != FAILED", "status takes = or IN"),
        ("status = BROKEN", "unknown workflow status 'BROKEN'"),
        ("workflowType > 'a'", "workflowType takes = or IN"),
        ("startTime IN (1, 2)", "startTime takes"),
        ("startTime > yesterday", "'yesterday' is not a time"),
        ("status IN ()", "IN takes a list"),
        ("workflowType = 'a' AND", "empty clause"),
        ("workflowType = 'unterminated", "cannot read"),
    ],
)
def test_queries_it_cannot_run_are_refused_naming_the_clause(query, message):
    with pytest.raises(UsageError, match=message):
        search(MemoryStore(), query=query)


def test_free_text_sort_and_paging_are_checked():
    store = MemoryStore()
    with pytest.raises(UsageError, match="full-text search is not supported"):
        search(store, query=None, free_text="some words")
    with pytest.raises(UsageError, match="only startTime"):
        search(store, query=None, sort="workflowId:ASC")
    with pytest.raises(UsageError, match="size must be"):
        search(store, query=None, size=5000)
    with pytest.raises(UsageError, match="start must be"):
        search(store, query=None, start=-1)


# ---------------------------------------------------------------------------------------------
# Both stores


def test_search_by_name_status_correlation_and_time(store):
    _populate(store)
    found = search(store, query="workflowType = 'a' AND status = FAILED")
    assert (found["totalHits"], _ids(found)) == (2, ["w09", "w03"])
    found = search(store, query="status IN (FAILED,TIMED_OUT)", sort="startTime:ASC")
    assert _ids(found) == ["w03", "w06", "w09"]
    found = search(store, query="workflowType IN (a, b) AND status IN (RUNNING, COMPLETED)", size=3)
    assert (found["totalHits"], _ids(found)) == (9, ["w11", "w10", "w08"])
    assert _ids(search(store, query="status = RUNNING", start=6, size=3)) == ["w02", "w01"]
    found = search(store, query="correlationId = 'c1' AND status = RUNNING")
    assert (found["totalHits"], _ids(found)) == (2, ["w02", "w01"])
    found = search(store, query=f"startTime >= {T0 + 4000} AND startTime < {T0 + 7000} AND workflowType = b")
    assert _ids(found) == ["w06", "w04"]
    assert search(store, query="workflowType = nobody")["totalHits"] == 0
    assert search(store, query=None, size=0) == {"totalHits": 12, "results": []}
    assert _ids(search(store, query="status = FAILED", free_text="w03")) == ["w03"]
    assert search(store, query="status = RUNNING", free_text="w03")["totalHits"] == 0


def test_results_are_conductors_workflow_summaries(store):
    _populate(store)
    [summary] = search(store, query="workflowType = a AND status = FAILED", free_text="w03")["results"]
    assert summary == {
        "workflowType": "a",
        "version": 1,
        "workflowId": "w03",
        "startTime": "2023-11-14T22:13:23.000Z",
        "updateTime": "2023-11-14T22:13:23.500Z",
        "endTime": "2023-11-14T22:13:23.500Z",
        "status": "FAILED",
        "input": '{"n":3}',
        "output": "{}",
        "reasonForIncompletion": "boom",
        "executionTime": 500,
        "failedReferenceTaskNames": "x,y",
        "failedTaskNames": [],
        "priority": 0,
        "parentWorkflowId": "",
        "taskToDomain": {},
        "inputSize": 7,
        "outputSize": 2,
    }
    assert search(store, query="status = COMPLETED")["results"][0]["correlationId"] == "c1"


def test_status_changes_move_an_execution_between_indexes(store):
    _populate(store)
    store.update_workflow("w01", {"status": "PAUSED"})
    assert _ids(search(store, query="status = PAUSED")) == ["w01"]
    assert "w01" not in _ids(search(store, query="status = RUNNING"))
    assert _ids(search(store, query="workflowType = a AND status = PAUSED")) == ["w01"]
    # Conductor's running list is its pending set: RUNNING and PAUSED, of any version unless asked
    assert running(store, "a") == ["w01", "w05", "w07", "w11"]
    store.create_workflow(_workflow(12, "a", version=2), "{}")
    assert running(store, "a", 2) == ["w12"]
    assert running(store, "nobody") == []


# ---------------------------------------------------------------------------------------------
# Redis: the indexes are written by the scripts, and never outlive the records


def _run_to_end(store, plan) -> str:
    """A workflow started and run to its end through the decider, as steps do (every open worker
    task completes with an output)."""
    wf_id, _ = start_workflow(store, plan, {"i": 1}, correlation_id="order-7")
    for _ in range(20):
        snap = store.snapshot(wf_id)
        if snap.workflow["status"] != "RUNNING":
            return wf_id
        done = [
            {**t, "status": "COMPLETED", "outputData": {"sum": 2, "v": 2}}
            for t in snap.tasks
            if t["status"] == "SCHEDULED"
        ]
        transition = decide(plan, snap.workflow, snap.tasks, done)
        assert store.apply(wf_id, transition.change, rev=int(snap.workflow.get("_rev") or 0)).applied
    raise AssertionError("the workflow did not end")


def test_a_workflow_run_to_its_end_is_found_by_its_final_status(redis_url, request):
    store = _redis(redis_url, request)
    plan = prepare(DEFS / "pair.json")
    wf_id = _run_to_end(store, plan)
    assert store.status(wf_id).value == "COMPLETED"
    assert _ids(search(store, query="workflowType = pair AND status = COMPLETED")) == [wf_id]
    assert search(store, query="status = RUNNING")["totalHits"] == 0
    assert _ids(search(store, query="correlationId = 'order-7'")) == [wf_id]
    stopped, _ = start_workflow(store, plan, {"i": 2})
    assert running(store, "pair") == [stopped]
    assert terminate(store, stopped, "enough") is not None
    assert running(store, "pair") == []
    assert _ids(search(store, query="status = TERMINATED")) == [stopped]


def _index_keys(store: RedisStore) -> list[str]:
    return sorted(store.client.keys(f"{store.prefix}idx:*"))


def test_the_indexes_forget_expired_executions(redis_url, request):
    store = _redis(redis_url, request, ttl=1)
    _populate(store)
    main = f"{store.prefix}wf:w00"
    wait_until(lambda: not store.client.exists(main), timeout=30, what="the ended record expired")
    found = search(store, query=None, size=100)
    assert found["totalHits"] == 8 and not {"w00", "w03", "w06", "w09"} & set(_ids(found))
    keys = _index_keys(store)
    assert not any(":status:COMPLETED" in k or ":status:FAILED" in k for k in keys), keys
    assert f"{store.prefix}idx:ends" not in keys
    # the rest end and expire too: nothing is left behind
    for n in (1, 2, 4, 5, 7, 8, 10, 11):
        _end(store, n, "COMPLETED")
    wait_until(lambda: not store.client.keys(f"{store.prefix}wf:*"), timeout=30, what="every record expired")
    assert search(store, query=None) == {"totalHits": 0, "results": []}
    assert _index_keys(store) == []


def test_a_record_gone_otherwise_is_dropped_when_a_search_meets_it(redis_url, request):
    store = _redis(redis_url, request, ttl=0)  # ended records kept for good
    _populate(store)
    store.client.delete(f"{store.prefix}wf:w10", f"{store.prefix}wf:w11")  # not through the store
    found = search(store, query="workflowType = b", size=2)
    assert (found["totalHits"], _ids(found)) == (5, ["w08", "w06"])
    assert search(store, query=None)["totalHits"] == 10
    assert not store.client.zscore(f"{store.prefix}idx:all", "w11")


def test_removing_and_restarting_an_execution_keep_the_indexes_right(redis_url, request):
    store = _redis(redis_url, request, ttl=60)
    _populate(store)
    assert store.delete_workflow("w03")
    assert _ids(search(store, query="status = FAILED")) == ["w09"]
    assert store.client.zcard(f"{store.prefix}idx:ends") == 3
    store.update_workflow("w06", {"status": "TERMINATED"})  # terminate over TIMED_OUT, as Conductor does
    assert search(store, query="status = TIMED_OUT")["totalHits"] == 0
    assert _ids(search(store, query="workflowType = b AND status = TERMINATED")) == ["w06"]
    ends = store.client.zrange(f"{store.prefix}idx:ends", 0, -1)
    assert len(ends) == 3 and '["w06","TERMINATED","b",""]' in ends  # registered again, new status
    reopen = Change(update={"status": "RUNNING", "endTime": 0}, reopen=True)
    assert store.apply("w09", reopen).applied
    assert search(store, query="status = FAILED")["totalHits"] == 0
    assert "w09" in running(store, "a")
    assert store.client.zcard(f"{store.prefix}idx:ends") == 2  # it no longer expires


# ---------------------------------------------------------------------------------------------
# translator list


def _env(redis_url: str, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "TRANSLATOR_"))}
    env.update(PYTHONPATH=str(ROOT), TRANSLATOR_STATE_URL=redis_url, TRANSLATOR_STATE_PREFIX=prefix)
    return env


def test_translator_list(redis_url, request):
    store = _redis(redis_url, request)
    _populate(store)
    env = _env(redis_url, store.prefix)
    result = translator_cli("list", "--name", "a", "--status", "FAILED", "--json", env=env)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert (found["totalHits"], _ids(found)) == (2, ["w09", "w03"])
    result = translator_cli(
        "list", "--correlation-id", "c1", "--since", str(T0 + 1000), "--limit", "1", env=env
    )
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:4] == ["WORKFLOW", "ID", "NAME", "VERSION"]
    assert row.split()[:4] == ["w02", "b", "1", "RUNNING"] and row.split()[-1] == "c1"
    assert "1 of 2 execution(s)" in result.stderr
    result = translator_cli("list", "--since", "last tuesday", env=env)
    assert result.returncode == 2 and "'last tuesday' is not a time" in result.stderr
