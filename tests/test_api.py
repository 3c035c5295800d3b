"""``translator serve``, Conductor's REST API, against a real worker pool: a private redis-server, a real
``celery -A tasks worker`` (prefork), moto's S3 server, and the API served by the ``translator serve``
command in a subprocess. The seed blog's three curl commands are replayed byte for byte (read from the
seed at test time); the blog's image URL is served by a local HTTPS server the worker reaches under the
blog's host name (``tests/api_workers.py``), so nothing leaves the machine."""

from __future__ import annotations

import contextlib
import datetime
import json
import shlex
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CORPUS_ROOT, corpus_required
from tests.services import (
    ROOT,
    celery_worker,
    free_port,
    redis_server,
    redis_server_binary,
    s3_server,
    service_env,
    stop_process,
    wait_until,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

SEED = CORPUS_ROOT.parent / "seed"  # the seed blog, beside the reference corpus (../shared/seed)
BLOG_HOST = "pbs.twimg.com"
TERMINAL = {"COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"}


# ---------------------------------------------------------------------------------------------
# The seed's curl commands


@dataclass
class Curl:
    method: str
    url: str
    headers: dict[str, str]
    data: bytes | None


def seed_curls() -> list[Curl]:
    """The curl commands of the seed blog, parsed as a shell would (``\\``-newline continuations,
    single-quoted arguments kept byte for byte)."""
    pages = sorted(SEED.glob("*.txt")) if SEED.is_dir() else []
    text = next((p.read_text() for p in pages if "/api/metadata/taskdefs" in p.read_text()), None)
    if text is None:
        required = corpus_required()
        if required:
            pytest.fail(f"the seed blog is not in {SEED} ({required})")
        pytest.skip(f"the seed blog is not in {SEED}")
    commands: list[Curl] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if not lines[i].startswith("curl "):
            i += 1
            continue
        source = ""
        while i < len(lines):
            source += lines[i]
            i += 1
            try:
                words = shlex.split(source.replace("\\\n", " "))
            except ValueError:  # a quoted argument goes on
                continue
            if not source.rstrip().endswith("\\"):
                break
        commands.append(_curl(words))
    return commands


def _curl(words: list[str]) -> Curl:
    method, url, headers, data = "GET", "", {}, None
    args = iter(words[1:])
    for word in args:
        if word == "-X":
            method = next(args)
        elif word == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            data = next(args).encode()
        else:
            url = word
    return Curl(method, url, headers, data)


# ---------------------------------------------------------------------------------------------
# Services


@contextlib.contextmanager
def fake_image_host(directory: Path, image: bytes) -> Iterator[tuple[int, Path]]:
    """An HTTPS server with a certificate for the blog's image host that answers every GET with
    ``image``; yields its port and the certificate (the CA file the worker trusts)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BLOG_HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(BLOG_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "host.pem", directory / "host.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], cert_file
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serve(redis_url: str, log: Path, **env: str) -> Iterator[str]:
    """``translator serve`` on a free loopback port for the pool at ``redis_url``; yields its base URL."""
    port = free_port()
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "translator", "serve", "--port", str(port)],
        cwd=ROOT,
        env=service_env(redis_url, **env),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"translator serve exited: {log.read_text(errors='replace')}")
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=60, what="translator serve answering", interval=0.1)
        yield base
    finally:
        stop_process(process)
        handle.close()


@dataclass
class Pool:
    redis_url: str
    api: str
    base: Path
    s3_env: dict[str, str]

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Iterator[Pool]:
    base = tmp_path_factory.mktemp("api")
    shared, inputs = base / "shared", base / "input"
    shared.mkdir()
    inputs.mkdir()
    image = (ROOT / "examples" / "sample.png").read_bytes()
    with (
        redis_server(base / "redis") as url,
        s3_server() as s3_env,
        fake_image_host(base, image) as (image_port, cert),
    ):
        worker_env = {
            **s3_env,
            "TRANSLATOR_SHARED_DIR": str(shared),
            "TRANSLATOR_INPUT_ROOT": str(inputs),
            "TRANSLATOR_FETCH_ALLOW": f"{BLOG_HOST}:443",
            "API_TEST_HOSTS": f"{BLOG_HOST}:443=127.0.0.1:{image_port}",
            "SSL_CERT_FILE": str(cert),
        }
        modules = "tests.runtime_workers,tests.api_workers"
        with (
            celery_worker(url, base / "worker.log", modules=modules, concurrency=2, extra_env=worker_env),
            serve(url, base / "serve.log") as api,
        ):
            yield Pool(url, api, base, s3_env)


def wait_ended(client: httpx.Client, wf_id: str, timeout: float = 90) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        response = client.get(f"/api/workflow/{wf_id}")
        assert response.status_code == 200, response.text
        execution = response.json()
        return execution if execution["status"] in TERMINAL else None

    return wait_until(ended, timeout=timeout, what=f"workflow {wf_id} ended", interval=0.1)


# ---------------------------------------------------------------------------------------------
# The blog, byte for byte


def test_blog_curl_commands_replayed_byte_for_byte(pool):
    taskdefs, workflow, start = seed_curls()
    assert [c.url.split("8080", 1)[1] for c in (taskdefs, workflow, start)] == [
        "/api/metadata/taskdefs",
        "/api/metadata/workflow",
        "/api/workflow/image_convert_resize?priority=0",
    ]
    with pool.client() as client:
        replies = []
        for curl in (taskdefs, workflow, start):
            url = curl.url.replace("http://localhost:8080", pool.api)
            replies.append(client.request(curl.method, url, headers=curl.headers, content=curl.data))
        refused, registered, started = replies
        # Conductor refuses the blog's task definition too (its TaskTimeoutConstraint): 60 > 30.
        assert refused.status_code == 400
        body = refused.json()
        assert (
            body["status"] == 400 and body["message"] == "Validation failed, check below errors for detail."
        )
        [problem] = body["validationErrors"]
        assert problem["path"] == "/0/responseTimeoutSeconds"
        assert problem["message"].startswith(
            "TaskDef: image_convert_resize responseTimeoutSeconds: 60 must be less than timeoutSeconds: 30"
        )
        assert registered.status_code == 200 and registered.content == b""
        assert started.status_code == 200, started.text
        assert started.headers["content-type"].startswith("text/plain")
        wf_id = started.text
        execution = wait_ended(client, wf_id)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    for key in ("workflowId", "workflowName", "workflowVersion", "input", "output", "tasks", "createTime"):
        assert key in execution, key
    assert (execution["workflowId"], execution["workflowName"], execution["workflowVersion"]) == (
        wf_id,
        "image_convert_resize",
        1,
    )
    assert execution["input"]["recipeParameters"]["outputSize"] == {"width": 300, "height": 300}
    resize, upload = execution["tasks"]
    for task in (resize, upload):
        for key in ("taskId", "taskType", "referenceTaskName", "status", "inputData", "outputData", "seq"):
            assert key in task, key
        assert task["workflowInstanceId"] == wf_id and task["status"] == "COMPLETED"
    assert (resize["referenceTaskName"], upload["referenceTaskName"]) == (
        "image_convert_resize_ref",
        "image_toS3_ref",
    )
    bucket = pool.s3_env["TRANSLATOR_S3_BUCKET"]
    assert execution["output"]["fileLocation"].startswith(f"{pool.s3_env['AWS_ENDPOINT_URL_S3']}/{bucket}/")
    assert execution["output"]["fileLocation"].endswith(".gif")


# ---------------------------------------------------------------------------------------------
# Definitions


def _task(name: str, ref: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "taskReferenceName": ref, "type": "SIMPLE", **extra}


def _workflow(name: str, tasks: list[dict[str, Any]], version: int = 1, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "tasks": tasks, "ownerEmail": "dev@example.com", **extra}


def test_task_definitions(pool):
    with pool.client() as client:
        taskdefs = [{"name": "api_td_a", "retryCount": 1}, {"name": "api_td_b", "responseTimeoutSeconds": 5}]
        assert client.post("/api/metadata/taskdefs", json=taskdefs).status_code == 200
        got = client.get("/api/metadata/taskdefs/api_td_a").json()
        assert got["name"] == "api_td_a" and got["retryCount"] == 1 and got["retryLogic"] == "FIXED"
        assert got["createTime"] > 0
        names = [t["name"] for t in client.get("/api/metadata/taskdefs").json()]
        assert {"api_td_a", "api_td_b"} <= set(names)
        assert (
            client.put("/api/metadata/taskdefs", json={"name": "api_td_a", "retryCount": 5}).status_code
            == 200
        )
        assert client.get("/api/metadata/taskdefs/api_td_a").json()["retryCount"] == 5
        missing = client.put("/api/metadata/taskdefs", json={"name": "api_td_none"})
        assert (missing.status_code, missing.json()["message"]) == (404, "No such task by name api_td_none")
        assert client.delete("/api/metadata/taskdefs/api_td_b").status_code == 200
        gone = client.get("/api/metadata/taskdefs/api_td_b")
        assert gone.status_code == 404
        assert gone.json()["message"] == "No such taskType found by name: api_td_b"
        assert client.delete("/api/metadata/taskdefs/api_td_b").status_code == 404
        empty = client.post("/api/metadata/taskdefs", json=[])
        assert (
            empty.status_code == 400
            and empty.json()["validationErrors"][0]["message"] == "TaskDefList is empty"
        )
        bad = client.post("/api/metadata/taskdefs", json=[{"name": "ok"}, {"retryCount": -1}])
        assert bad.status_code == 400
        paths = {(e["path"], e["message"]) for e in bad.json()["validationErrors"]}
        assert ("/1/name", "TaskDef name cannot be null or empty") in paths
        assert any(path == "/1/retryCount" for path, _ in paths)
        assert client.get("/api/metadata/taskdefs/ok").status_code == 404  # nothing of a refused call


def test_workflow_definitions(pool):
    with pool.client() as client:
        first = _workflow("api_defs", [_task("echo", "e")])
        assert client.post("/api/metadata/workflow", json=first).status_code == 200
        again = client.post("/api/metadata/workflow", json=first)
        assert again.status_code == 409
        assert again.json()["message"] == "Workflow with api_defs.1 already exists!"
        assert again.json()["status"] == 409 and again.json()["retryable"] is False
        second = _workflow("api_defs", [_task("noop", "n")], version=2)
        bulk = client.put(
            "/api/metadata/workflow", json=[second, _workflow("api_defs_other", [_task("echo", "e")])]
        )
        assert bulk.json() == {
            "bulkErrorResults": {},
            "bulkSuccessfulResults": ["api_defs", "api_defs_other"],
        }
        assert client.get("/api/metadata/workflow/api_defs").json()["version"] == 2
        v1 = client.get("/api/metadata/workflow/api_defs", params={"version": 1}).json()
        assert v1["tasks"][0]["name"] == "echo" and v1["schemaVersion"] == 2
        listed = [(w["name"], w["version"]) for w in client.get("/api/metadata/workflow").json()]
        assert ("api_defs", 1) in listed and ("api_defs", 2) in listed
        assert client.delete("/api/metadata/workflow/api_defs/2").status_code == 200
        assert client.get("/api/metadata/workflow/api_defs").json()["version"] == 1
        missing = client.get("/api/metadata/workflow/api_defs", params={"version": 7})
        assert missing.status_code == 404
        assert missing.json()["message"] == "No such workflow found by name: api_defs, version: 7"
        assert client.delete("/api/metadata/workflow/api_defs/7").status_code == 404


def test_invalid_definitions_and_bodies_are_400_with_pointers(pool):
    with pool.client() as client:
        invalid = client.post("/api/metadata/workflow", json={"version": 1, "tasks": []})
        assert invalid.status_code == 400
        body = invalid.json()
        assert body["message"] == "Validation failed, check below errors for detail."
        errors = {(e["path"], e["message"]) for e in body["validationErrors"]}
        assert ("/name", "WorkflowDef name cannot be null or empty") in errors
        assert ("/tasks", "WorkflowTask list cannot be empty") in errors
        typed = client.post("/api/metadata/workflow", json=_workflow("api_bad", [{"name": "x", "type": 5}]))
        assert typed.status_code == 400
        assert any(e["path"].startswith("/tasks/0") for e in typed.json()["validationErrors"])
        headers = {"Content-Type": "application/json"}
        for content in (b'{"name": ', b'{"a": NaN}', b"[1] [2]", b"\xff\xfe", b"[" * 5000):
            response = client.post("/api/metadata/workflow", content=content, headers=headers)
            assert response.status_code == 400, (content[:20], response.text)
            assert response.json()["validationErrors"]
        huge = client.post(
            "/api/metadata/workflow", content=b" " * (11 * 1024 * 1024) + b"{}", headers=headers
        )
        assert huge.status_code == 400 and huge.json()["validationErrors"][0]["path"] == ""
        scalar = client.post("/api/workflow/api_defs", content=b"[1, 2]", headers=headers)
        assert scalar.status_code == 400
        assert scalar.json()["validationErrors"][0]["message"] == "the workflow input must be a JSON object"
        wrong_type = client.get("/api/metadata/workflow/x", params={"version": "one"})
        assert (
            wrong_type.status_code == 400
            and wrong_type.json()["validationErrors"][0]["path"] == "query.version"
        )


# ---------------------------------------------------------------------------------------------
# Executions


def test_start_read_and_summaries(pool):
    with pool.client() as client:
        wf = _workflow(
            "api_start",
            [_task("echo", "first", inputParameters={"v": "${workflow.input.v}"})],
            outputParameters={"v": "${first.output.v}"},
        )
        client.post("/api/metadata/workflow", json=wf, params={"overwrite": True})
        started = client.post(
            "/api/workflow/api_start", json={"v": 7}, params={"correlationId": "c-1", "priority": 5}
        )
        assert started.status_code == 200, started.text
        wf_id = started.text
        execution = wait_ended(client, wf_id)
        assert execution["status"] == "COMPLETED" and execution["output"] == {"v": 7}
        assert execution["correlationId"] == "c-1" and execution["priority"] == 5
        bare = client.get(f"/api/workflow/{wf_id}", params={"includeTasks": False}).json()
        assert "tasks" not in bare and bare["workflowId"] == wf_id
        status = client.get(f"/api/workflow/{wf_id}/status").json()
        assert status == {"workflowId": wf_id, "correlationId": "c-1", "status": "COMPLETED"}
        full = client.get(
            f"/api/workflow/{wf_id}/status", params={"includeOutput": True, "includeVariables": True}
        )
        assert full.json()["output"] == {"v": 7} and full.json()["variables"] == {}
        page = client.get(f"/api/workflow/{wf_id}/tasks").json()
        assert page["totalHits"] == 1 and page["results"][0]["referenceTaskName"] == "first"
        assert (
            client.get(f"/api/workflow/{wf_id}/tasks", params={"status": "FAILED"}).json()["totalHits"] == 0
        )
        unknown = client.get("/api/workflow/no-such-id")
        assert (
            unknown.status_code == 404
            and unknown.json()["message"] == "No such workflow found by id: no-such-id"
        )
        nameless = client.post("/api/workflow/api_nothing", json={})
        assert nameless.status_code == 404
        assert nameless.json()["message"] == "No such workflow defined. name=api_nothing, version=null"
        too_high = client.post("/api/workflow/api_start", json={}, params={"priority": 100})
        assert too_high.status_code == 400


def test_start_workflow_request_with_inline_definition(pool):
    with pool.client() as client:
        inline = _workflow(
            "api_inline", [_task("add", "sum", inputParameters={"a": 2, "b": "${workflow.input.b}"})]
        )
        inline["outputParameters"] = {"sum": "${sum.output.sum}"}
        request = {"name": "api_inline", "input": {"b": 40}, "correlationId": "inline", "workflowDef": inline}
        started = client.post("/api/workflow", json=request)
        assert started.status_code == 200, started.text
        execution = wait_ended(client, started.text)
        assert (execution["status"], execution["output"]) == ("COMPLETED", {"sum": 42})
        broken = dict(request, workflowDef=_workflow("api_inline", [{"name": "add", "type": "SIMPLE"}]))
        refused = client.post("/api/workflow", json=broken)
        assert refused.status_code == 400
        paths = [e["path"] for e in refused.json()["validationErrors"]]
        assert "/workflowDef/tasks/0/taskReferenceName" in paths
        nameless = client.post("/api/workflow", json={"input": {}})
        assert nameless.status_code == 400
        assert nameless.json()["validationErrors"] == [
            {"path": "/name", "message": "Workflow name cannot be null or empty"}
        ]


def test_subworkflow_resolved_from_the_registry(pool):
    with pool.client() as client:
        child = _workflow("api_child", [_task("echo", "c", inputParameters={"x": "${workflow.input.x}"})])
        child["outputParameters"] = {"x": "${c.output.x}"}
        sub = {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "api_child"},
            "inputParameters": {"x": "${workflow.input.x}"},
        }
        parent = _workflow("api_parent", [sub], outputParameters={"x": "${sub.output.x}"})
        missing = client.post("/api/metadata/workflow", json=parent)
        assert missing.status_code == 200  # as Conductor: the child need not exist to register
        refused = client.post("/api/workflow/api_parent", json={"x": 1})
        assert refused.status_code == 400
        [problem] = refused.json()["validationErrors"]
        assert problem["path"] == "registry:/workflow/api_parent/1:/tasks/0/subWorkflowParam/name"
        client.post("/api/metadata/workflow", json=child)
        started = client.post("/api/workflow/api_parent", json={"x": 3})
        execution = wait_ended(client, started.text)
        assert (execution["status"], execution["output"]) == ("COMPLETED", {"x": 3})


def test_human_task_ended_through_the_api(pool):
    with pool.client() as client:
        wf = _workflow("api_human", [{"name": "approve", "taskReferenceName": "approve", "type": "HUMAN"}])
        wf["outputParameters"] = {"ok": "${approve.output.ok}"}
        client.post("/api/metadata/workflow", json=wf)
        wf_id = client.post("/api/workflow/api_human", json={}).text
        wait_until(
            lambda: client.get(f"/api/workflow/{wf_id}").json().get("tasks"),
            timeout=30,
            what="HUMAN scheduled",
        )
        bad = client.post(f"/api/tasks/{wf_id}/approve/SCHEDULED", json={})
        assert bad.status_code == 400
        done = client.post(f"/api/tasks/{wf_id}/approve/COMPLETED", json={"ok": True})
        assert done.status_code == 200 and done.text
        execution = wait_ended(client, wf_id)
        assert (execution["status"], execution["output"]) == ("COMPLETED", {"ok": True})
        late = client.post(f"/api/tasks/{wf_id}/approve/COMPLETED", json={})
        assert (late.status_code, late.text) == (200, "")  # nothing pending: an empty 200, as Conductor


# ---------------------------------------------------------------------------------------------
# Lifecycle and search


def test_terminate_retry_restart_remove(pool):
    with pool.client() as client:
        client.post("/api/metadata/taskdefs", json=[{"name": "flaky", "retryCount": 0}])
        waiting = _workflow("api_wait", [{"name": "hold", "taskReferenceName": "hold", "type": "HUMAN"}])
        client.post("/api/metadata/workflow", json=waiting)
        wf_id = client.post("/api/workflow/api_wait", json={}).text
        assert client.get("/api/workflow/running/api_wait").json() == [wf_id]
        assert client.put(f"/api/workflow/{wf_id}/pause").status_code == 200
        assert client.get(f"/api/workflow/{wf_id}/status").json()["status"] == "PAUSED"
        assert client.put(f"/api/workflow/{wf_id}/resume").status_code == 200
        assert (
            client.delete(f"/api/workflow/{wf_id}", params={"reason": "no longer needed"}).status_code == 200
        )
        ended = client.get(f"/api/workflow/{wf_id}").json()
        assert ended["status"] == "TERMINATED" and ended["reasonForIncompletion"] == "no longer needed"
        assert ended["tasks"][0]["status"] == "CANCELED"
        assert client.put(f"/api/workflow/{wf_id}/pause").status_code == 409
        assert client.get("/api/workflow/running/api_wait").json() == []
        flaky = _workflow("api_flaky", [_task("flaky", "f", inputParameters={"failures": 1})])
        client.post("/api/metadata/workflow", json=flaky)
        failed_id = client.post("/api/workflow/api_flaky", json={}).text
        assert wait_ended(client, failed_id)["status"] == "FAILED"
        assert client.post(f"/api/workflow/{failed_id}/retry").status_code == 204
        retried = wait_ended(client, failed_id)
        assert retried["status"] == "COMPLETED" and [t["status"] for t in retried["tasks"]] == [
            "FAILED",
            "COMPLETED",
        ]
        assert client.post(f"/api/workflow/{failed_id}/retry").status_code == 409
        assert client.post(f"/api/workflow/{failed_id}/restart").status_code == 204
        restarted = wait_ended(client, failed_id)
        assert restarted["workflowId"] == failed_id and restarted["tasks"][0]["retryCount"] == 0
        found = client.get(
            "/api/workflow/search", params={"query": "workflowType IN (api_flaky) AND status = FAILED"}
        )
        assert found.status_code == 200 and "totalHits" in found.json()
        hits = client.get(
            "/api/workflow/search", params={"query": "workflowType = api_wait", "freeText": "*"}
        )
        assert [r["workflowId"] for r in hits.json()["results"]] == [wf_id]
        assert client.get("/api/workflow/search", params={"query": "nonsense ~~ 1"}).status_code == 400
        assert client.delete(f"/api/workflow/{wf_id}/remove").status_code == 200
        assert client.get(f"/api/workflow/{wf_id}").status_code == 404
        assert client.delete(f"/api/workflow/{wf_id}/remove").status_code == 404
        assert client.post("/api/workflow/no-such-id/retry").status_code == 404


# ---------------------------------------------------------------------------------------------
# Serving


def test_bearer_token_guards_every_api_route(pool):
    log = pool.base / "serve-token.log"
    with (
        serve(pool.redis_url, log, TRANSLATOR_API_TOKEN="s3cret") as api,
        httpx.Client(base_url=api, timeout=30) as client,
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            for method, path in (("GET", "/api/metadata/taskdefs"), ("POST", "/api/workflow/x")):
                response = client.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (headers, path)
                assert response.json()["status"] == 401
                assert response.headers["www-authenticate"] == "Bearer"
        assert client.get("/execution/some-id").status_code == 401  # the pages show execution data
        ok = client.get("/api/metadata/taskdefs", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        document = client.get("/api-docs").json()
        assert "/api/workflow/{name}" in document["paths"] and "/api/metadata/taskdefs" in document["paths"]


def test_serve_refuses_without_a_broker():
    env = {k: v for k, v in service_env("redis://unused").items() if not k.startswith("CELERY_")}
    result = subprocess.run(
        [sys.executable, "-m", "translator", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "no worker pool configured: set CELERY_BROKER_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_runs_a_workflow_registered_through_the_api(pool):
    """``translator run --registered NAME[:VERSION]`` plans the registered definition (with the
    registered sub-workflows) and runs it on the same pool."""
    with pool.client() as client:
        child = _workflow("api_cli_child", [_task("echo", "c", inputParameters={"v": "${workflow.input.v}"})])
        child["outputParameters"] = {"v": "${c.output.v}"}
        sub = {"name": "sub", "taskReferenceName": "sub", "type": "SUB_WORKFLOW"}
        sub.update(
            subWorkflowParam={"name": "api_cli_child", "version": 1},
            inputParameters={"v": "${workflow.input.v}"},
        )
        for version, factor in ((1, "one"), (2, "two")):
            parent = _workflow(
                "api_cli_parent",
                [sub],
                version=version,
                outputParameters={"v": "${sub.output.v}", "k": factor},
            )
            assert (
                client.post("/api/metadata/workflow", json=parent, params={"overwrite": True}).status_code
                == 200
            )
        assert (
            client.post("/api/metadata/workflow", json=child, params={"overwrite": True}).status_code == 200
        )
    env = service_env(pool.redis_url)
    for name, kind in (("api_cli_parent", "two"), ("api_cli_parent:1", "one")):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "translator",
                "run",
                "--registered",
                name,
                "--input",
                "-",
                "--timeout",
                "90",
            ],
            input='{"v": 5}',
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"v": 5, "k": kind}
    missing = subprocess.run(
        [sys.executable, "-m", "translator", "run", "--registered", "api_cli_nothing"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "No such workflow found by name: api_cli_nothing, version: null" in missing.stderr
