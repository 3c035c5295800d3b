"""Continuations decided outside a chain survive a broker that refuses them."""

from __future__ import annotations

from celery import Celery

from tests.conftest import ROOT
from tests.services import free_port
from translator.engine.decide import decide
from translator.runner import prepare
from translator.runtime.celery_app import install
from translator.runtime.dispatch import follow_up
from translator.store.records import attempt_id, start_workflow
from translator.store.state import MemoryStore

DEFS = ROOT / "tests" / "fixtures" / "runtime"


def test_a_refused_continuation_is_parked_for_the_sweeper():
    app = Celery("dead-broker", broker=f"redis://127.0.0.1:{free_port()}/0")
    app.conf.update(broker_connection_timeout=0.5, task_publish_retry=False)
    install(app)
    store = MemoryStore()
    plan = prepare(DEFS / "pair.json")
    wf_id, _ = start_workflow(store, plan, {"i": 1})
    snap = store.snapshot(wf_id)
    first = {**snap.tasks[0], "status": "COMPLETED"}
    transition = decide(plan, snap.workflow, snap.tasks, [first])
    [following] = [r for r in transition.change.records.values() if r["referenceTaskName"] == "e"]
    assert store.apply(wf_id, transition.change).applied

    follow_up(app, store, plan, wf_id, transition)  # the broker refuses the message

    [wake] = store.claim_due(10**15)
    assert (wake.kind, wake.ref, wake.attempt) == ("wake", "e", 0)
    assert wake.token == following["scheduledTime"]
    assert following["taskId"] == attempt_id(wf_id, "e", 0)
