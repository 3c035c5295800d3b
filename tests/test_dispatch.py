"""Continuations decided outside a chain survive a broker that refuses them."""

from __future__ import annotations

from celery import Celery

from tests.conftest import ROOT
from tests.services import free_port
from translator.celery_app import install
from translator.dispatch import follow
from translator.records import attempt_id, scheduled_record, start_workflow
from translator.runner import prepare
from translator.runtime import Outcome, StepResult
from translator.state import MemoryStore

DEFS = ROOT / "tests" / "fixtures" / "runtime"


def test_a_refused_continuation_is_parked_for_the_sweeper():
    app = Celery("dead-broker", broker=f"redis://127.0.0.1:{free_port()}/0")
    app.conf.update(broker_connection_timeout=0.5, task_publish_retry=False)
    install(app)
    store = MemoryStore()
    plan = prepare(DEFS / "pair.json")
    wf_id = start_workflow(store, plan, {"i": 1})
    snap = store.snapshot(wf_id)
    first = snap.tasks[0]
    first.update(status="COMPLETED")
    following = scheduled_record(snap.workflow, plan.step("e"), 0, snap.seq)
    store.save_tasks(wf_id, first, following)

    follow(app, store, plan, wf_id, "s", StepResult(Outcome.CONTINUE))

    [wake] = store.claim_due(10**15)
    assert (wake.kind, wake.ref, wake.attempt) == ("wake", "e", 0)
    assert wake.token == following["scheduledTime"]
    assert following["taskId"] == attempt_id(wf_id, "e", 0)
