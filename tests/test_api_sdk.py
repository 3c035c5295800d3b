"""The official Conductor Python SDK (``conductor-python``), unchanged client code, against
``translator serve`` on a real worker pool: register a task definition and a workflow, start it, read
its status, end a HUMAN task, terminate one execution and retry another."""

from __future__ import annotations

import time

import pytest
from conductor.client.configuration.configuration import Configuration
from conductor.client.http.models import StartWorkflowRequest, TaskDef, WorkflowDef, WorkflowTask
from conductor.client.http.rest import ApiException
from conductor.client.orkes_clients import OrkesClients

from tests.services import redis_server_binary
from tests.test_api import pool  # noqa: F401 (the fixture)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]


def wait_status(workflow_client, workflow_id: str, wanted: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = workflow_client.get_workflow_status(workflow_id).status
        if status in wanted:
            return status
        assert time.monotonic() < deadline, f"{workflow_id} still {status}"
        time.sleep(0.1)


def test_conductor_python_sdk(pool):  # noqa: F811
    # --- client code as the SDK's documentation writes it ---
    configuration = Configuration(server_api_url=f"{pool.api}/api")
    clients = OrkesClients(configuration=configuration)
    metadata_client = clients.get_metadata_client()
    workflow_client = clients.get_workflow_client()
    task_client = clients.get_task_client()

    metadata_client.register_task_def(TaskDef(name="flaky", retry_count=0, owner_email="dev@example.com"))
    flaky = WorkflowTask(name="flaky", task_reference_name="flaky_ref", type="SIMPLE")
    flaky.input_parameters = {"failures": "${workflow.input.failures}"}
    approve = WorkflowTask(name="approve", task_reference_name="approve_ref", type="HUMAN")
    workflow_def = WorkflowDef(
        name="sdk_flow",
        version=1,
        tasks=[flaky, approve],
        output_parameters={"attempt": "${flaky_ref.output.attempt}", "ok": "${approve_ref.output.result}"},
        owner_email="dev@example.com",
        timeout_seconds=0,
    )
    metadata_client.register_workflow_def(workflow_def, overwrite=True)

    assert metadata_client.get_task_def("flaky").retry_count == 0
    fetched = metadata_client.get_workflow_def("sdk_flow", version=1)
    assert fetched.name == "sdk_flow" and [t.task_reference_name for t in fetched.tasks] == [
        "flaky_ref",
        "approve_ref",
    ]

    # start by name, wait at the HUMAN task, end it through the task client
    workflow_id = workflow_client.start_workflow_by_name("sdk_flow", {"failures": 0}, correlationId="sdk-1")
    wait_status(workflow_client, workflow_id, {"RUNNING"})
    deadline = time.monotonic() + 60
    while not any(
        t.reference_task_name == "approve_ref" for t in workflow_client.get_workflow(workflow_id).tasks
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    task_client.update_task_by_ref_name(workflow_id, "approve_ref", "COMPLETED", True)
    assert wait_status(workflow_client, workflow_id, {"COMPLETED", "FAILED"}) == "COMPLETED"
    status = workflow_client.get_workflow_status(workflow_id, include_output=True)
    assert status.output == {"attempt": 0, "ok": True} and status.correlation_id == "sdk-1"
    execution = workflow_client.get_workflow(workflow_id, include_tasks=True)
    assert execution.workflow_name == "sdk_flow" and execution.workflow_version == 1
    assert [t.status for t in execution.tasks] == ["COMPLETED", "COMPLETED"]

    # terminate one: it waits at the HUMAN task
    request = StartWorkflowRequest(name="sdk_flow", version=1, input={"failures": 0})
    to_terminate = workflow_client.start_workflow(request)
    wait_status(workflow_client, to_terminate, {"RUNNING"})
    workflow_client.terminate_workflow(to_terminate, reason="stopped by the SDK test")
    terminated = workflow_client.get_workflow(to_terminate)
    assert (
        terminated.status == "TERMINATED" and terminated.reason_for_incompletion == "stopped by the SDK test"
    )

    # retry one: its first task fails once (no retries in its task definition), then succeeds
    to_retry = workflow_client.start_workflow_by_name("sdk_flow", {"failures": 1})
    assert wait_status(workflow_client, to_retry, {"FAILED", "COMPLETED"}) == "FAILED"
    workflow_client.retry_workflow(to_retry)
    wait_status(workflow_client, to_retry, {"RUNNING"})
    deadline = time.monotonic() + 60
    while workflow_client.get_workflow(to_retry).tasks[-1].reference_task_name != "approve_ref":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    task_client.update_task_by_ref_name(to_retry, "approve_ref", "COMPLETED", "yes")
    assert wait_status(workflow_client, to_retry, {"COMPLETED", "FAILED"}) == "COMPLETED"
    retried = workflow_client.get_workflow(to_retry)
    assert [(t.reference_task_name, t.status) for t in retried.tasks] == [
        ("flaky_ref", "FAILED"),
        ("flaky_ref", "COMPLETED"),
        ("approve_ref", "COMPLETED"),
    ]

    # Conductor's refusals reach the SDK as its ApiException with the status
    with pytest.raises(ApiException) as refused:
        workflow_client.terminate_workflow(workflow_id)  # already COMPLETED
    assert refused.value.status == 409
    with pytest.raises(ApiException) as missing:
        workflow_client.get_workflow("no-such-workflow")
    assert missing.value.status == 404


def test_sdk_with_the_bearer_token(pool):  # noqa: F811
    from tests.test_api import serve

    with serve(pool.redis_url, pool.base / "serve-sdk-token.log", TRANSLATOR_API_TOKEN="t0ken") as api:
        metadata_client = OrkesClients(
            configuration=Configuration(server_api_url=f"{api}/api")
        ).get_metadata_client()
        with pytest.raises(ApiException) as refused:
            metadata_client.get_all_task_defs()
        assert refused.value.status == 401
        metadata_client.api_client.default_headers["Authorization"] = "Bearer t0ken"
        assert isinstance(metadata_client.get_all_task_defs(), list)
