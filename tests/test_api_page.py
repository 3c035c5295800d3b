"""The execution page (``GET /execution/{workflowId}``) over real executions: a private redis-server, a
real prefork worker pool running the workflows, the page's router served by uvicorn on a free port, and
headless Chromium (``--dump-dom`` after the page's script ran, ``--screenshot``) under the page's own
Content-Security-Policy."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from celery import Celery
from fastapi import FastAPI, Request

from tests.services import (
    ROOT,
    celery_worker,
    free_port,
    redis_server,
    redis_server_binary,
    wait_until,
)
from translator.api import page
from translator.graph.style import COMPLETED, FAILED, NOT_RUN, RUNNING, SKIPPED
from translator.runner import Session, prepare, submit, wait
from translator.runtime.celery_app import install
from translator.store.records import terminate
from translator.store.state import RedisStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

TASKDEFS = ROOT / "tests" / "fixtures" / "runtime" / "taskdefs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/bootstrap installs the Debian package)"
)
TITLE = '<b>Sunset</b> & "friends"'
BAD_PIXEL = "<script>alert('pixel')</script> bad pixel at (3, 4)"


def echo(ref: str, **inputs: Any) -> dict[str, Any]:
    return {"name": "echo", "taskReferenceName": ref, "type": "SIMPLE", "inputParameters": inputs}


REVIEW = {
    "name": "image_review",
    "version": 3,
    "schemaVersion": 2,
    "tasks": [
        echo("prepare", title="${workflow.input.title}"),
        {
            "name": "route",
            "taskReferenceName": "route",
            "type": "SWITCH",
            "evaluatorType": "value-param",
            "expression": "format",
            "inputParameters": {"format": "${workflow.input.format}"},
            "decisionCases": {"png": [echo("to_png", src="${workflow.input.url}")]},
            "defaultCase": [echo("convert", src="${workflow.input.url}")],
        },
        {
            "name": "resize",
            "taskReferenceName": "resize",
            "type": "FORK_JOIN",
            "forkTasks": [
                [
                    {
                        "name": "add",
                        "taskReferenceName": "thumb",
                        "type": "SIMPLE",
                        "inputParameters": {"a": 1, "b": 2},
                    }
                ],
                [
                    {
                        "name": "always_fail",
                        "taskReferenceName": "inspect",
                        "type": "SIMPLE",
                        "inputParameters": {"message": BAD_PIXEL},
                    }
                ],
            ],
        },
        {"name": "join", "taskReferenceName": "gather", "type": "JOIN", "joinOn": ["thumb", "inspect"]},
        echo("publish", title="${prepare.output.title}"),
    ],
    "outputParameters": {"published": "${publish.output.title}"},
}
WAITING = {
    "name": "waiting_review",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        echo("first", n=1),
        {"name": "hold", "taskReferenceName": "hold", "type": "WAIT"},
        echo("last"),
    ],
}


@dataclass
class Pool:
    store: RedisStore
    session: Session
    directory: Path

    def start(self, definition: dict[str, Any], workflow_input: dict[str, Any]) -> str:
        path = self.directory / f"{definition['name']}.json"
        path.write_text(json.dumps(definition))
        return submit(self.session, prepare(path, [TASKDEFS]), workflow_input)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Iterator[Pool]:
    """A private redis-server, a real worker pool on it, and a client session."""
    base = tmp_path_factory.mktemp("page")
    with redis_server(base / "redis") as url, celery_worker(url, base / "worker.log", concurrency=2):
        app = Celery("page-client", broker=url)
        app.conf.update(task_serializer="json", accept_content=["json"])
        install(app)
        store = RedisStore(url)
        yield Pool(store, Session(app, store, embedded=False), base)


@pytest.fixture(scope="module")
def failed(pool) -> dict[str, Any]:
    """A finished execution: a switch, a fork whose second branch fails (twice: one retry)."""
    wf_id = pool.start(REVIEW, {"title": TITLE, "format": "gif", "url": "https://example.com/a.gif"})
    execution = wait(pool.store, wf_id, timeout=90)
    assert execution["status"] == "FAILED", execution
    return execution


class Server:
    """The page's router on its own FastAPI app (or ``app``), served by uvicorn in a thread;
    ``after_page`` runs after each page response is built (with the number of pages served so far)."""

    def __init__(self, store: RedisStore, app: FastAPI | None = None) -> None:
        self.served: list[str] = []
        self.after_page: Any = None
        if app is None:
            app = FastAPI()
            app.state.store = store
            app.include_router(page.router)

        @app.middleware("http")
        async def count(request: Request, call_next):
            response = await call_next(request)
            if request.url.path.startswith("/execution/"):
                self.served.append(request.url.path)
                if self.after_page is not None:
                    self.after_page(len(self.served))
            return response

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Server:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=30, what="uvicorn to start")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def server(pool) -> Iterator[Server]:
    with Server(pool.store) as running:
        yield running


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a fresh profile, as this machine requires it run."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            f"--user-data-dir={profile}",
            *args,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


# ---------------------------------------------------------------------------------------------
# The HTML itself


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def node_classes(html: Elements) -> dict[str, str]:
    """Diagram node reference -> its status class (``st_...``)."""
    return {
        a["data-ref"]: next(c for c in a["class"].split() if c.startswith("st_"))
        for a in html.find("g")
        if "data-ref" in a and a.get("class", "").startswith("node")
    }


def test_the_page_shows_a_finished_execution(server, failed):
    wf_id = failed["workflowId"]
    response = httpx.get(server.url(f"/execution/{wf_id}"), timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    html = Elements(response.text)
    assert html.find("html")[0]["data-live"] == "off"  # terminal: no refresh
    assert not html.find("meta", **{"http-equiv": "refresh"})
    assert html.find("script", src="../execution-assets/page.js")
    nodes = node_classes(html)
    assert nodes["prepare"] == COMPLETED.name and nodes["convert"] == COMPLETED.name
    assert nodes["to_png"] == NOT_RUN.name and nodes["publish"] == NOT_RUN.name
    assert nodes["thumb"] == COMPLETED.name and nodes["inspect"] == FAILED.name
    assert nodes["gather"] == SKIPPED.name  # the JOIN of a failed fork is canceled
    rows = [row for row in html.find("tr") if "data-ref" in row]
    assert [(r["data-ref"], r["data-status"]) for r in rows] == [
        (t["referenceTaskName"], t["status"]) for t in sorted(failed["tasks"], key=lambda t: t["seq"])
    ]
    assert sum(r["data-ref"] == "inspect" for r in rows) == 2  # the failure and its retry
    text = "".join(html.text)
    assert text.count(BAD_PIXEL) >= 2  # the tasks' reasons and the workflow's, as text
    assert json.dumps(TITLE) in text and "https://example.com/a.gif" in text
    assert "<script>alert" not in response.text and "<b>Sunset" not in response.text
    assert "image_review" in text and "v3" in text and wf_id in text


def test_an_unknown_execution_is_a_404_page(server):
    response = httpx.get(server.url("/execution/%3Cimg%20src%3Dx%3Enope"), timeout=30)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Execution not found" in response.text
    assert "&lt;img src=x&gt;nope" in response.text and "<img" not in response.text


def test_the_assets_are_served_with_the_page(server):
    css = httpx.get(server.url("/execution-assets/page.css"), timeout=30)
    js = httpx.get(server.url("/execution-assets/page.js"), timeout=30)
    assert css.status_code == js.status_code == 200
    assert css.headers["content-type"].startswith("text/css") and ".task-table" in css.text
    assert js.headers["content-type"].startswith("text/javascript") and "DOMParser" in js.text
    assert httpx.get(server.url("/execution-assets/..%2Fpage.py"), timeout=30).status_code == 404
    assert httpx.get(server.url("/execution-assets/app.py"), timeout=30).status_code == 404


# ---------------------------------------------------------------------------------------------
# In a browser


@needs_chromium
def test_chromium_renders_the_diagram_and_the_task_table(server, failed):
    url = server.url(f"/execution/{failed['workflowId']}")
    result = chromium("--virtual-time-budget=5000", "--dump-dom", url)
    assert result.returncode == 0, result.stderr[-3000:]
    html = Elements(result.stdout)
    assert html.find("svg") and node_classes(html)["inspect"] == FAILED.name
    assert len([row for row in html.find("tr") if "data-ref" in row]) == len(failed["tasks"])
    assert "Content Security Policy" not in result.stderr, result.stderr[-3000:]
    assert "Refused to" not in result.stderr, result.stderr[-3000:]


@needs_chromium
def test_chromium_screenshot_of_the_page(server, failed, tmp_path):
    from wand.image import Image

    shot = tmp_path / "page.png"
    url = server.url(f"/execution/{failed['workflowId']}")
    result = chromium("--hide-scrollbars", f"--screenshot={shot}", "--window-size=1280,900", url)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-3000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image(filename=str(shot)) as image:
        assert image.size == (1280, 900)
        image.quantize(64)
        assert len(image.histogram) > 8  # text, badges and coloured boxes: not a blank page


@needs_chromium
def test_a_running_execution_refreshes_until_it_ends(pool, tmp_path):
    wf_id = pool.start(WAITING, {})
    wait_until(
        lambda: any(t["referenceTaskName"] == "hold" for t in pool.store.tasks(wf_id)),
        timeout=60,
        what="the WAIT task to be scheduled",
    )
    with Server(pool.store) as server:
        html = Elements(httpx.get(server.url(f"/execution/{wf_id}"), timeout=30).text)
        assert html.find("html")[0]["data-live"] == "on"
        assert html.find("meta", **{"http-equiv": "refresh"})  # without script
        assert node_classes(html)["hold"] == RUNNING.name
        # The workflow ends right after the browser's first load: only the page's polling shows it.
        server.after_page = lambda served: served == 2 and terminate(pool.store, wf_id, "ended <by> test")
        result = chromium("--virtual-time-budget=20000", "--dump-dom", server.url(f"/execution/{wf_id}"))
    assert result.returncode == 0, result.stderr[-3000:]
    shown = Elements(result.stdout)
    assert shown.find("html")[0]["data-status"] == "TERMINATED"
    assert shown.find("html")[0]["data-live"] == "off"
    assert "ended <by> test" in "".join(shown.text)
    assert node_classes(shown)["hold"] == SKIPPED.name
    assert len(server.served) >= 3  # httpx, the browser's load, at least one poll


def test_the_serve_app_includes_the_page(pool, failed):
    from translator.api import create_app

    path = f"/execution/{failed['workflowId']}"
    with Server(pool.store, create_app(pool.session)) as server:
        response = httpx.get(server.url(path), timeout=30)
        assert response.status_code == 200 and "image_review" in response.text
        assert httpx.get(server.url("/execution-assets/page.css"), timeout=30).status_code == 200
    with Server(pool.store, create_app(pool.session, token="s3cret")) as server:
        assert httpx.get(server.url(path), timeout=30).status_code == 401
        authorized = httpx.get(server.url(path), headers={"Authorization": "Bearer s3cret"}, timeout=30)
        assert authorized.status_code == 200
        # a browser: ?token= once sets an HttpOnly cookie and redirects to the page without it
        assert httpx.get(server.url(path + "?token=wrong"), timeout=30).status_code == 401
        with httpx.Client(timeout=30, follow_redirects=True) as browser:
            visit = browser.get(server.url(path + "?token=s3cret"))
            assert visit.status_code == 200 and "image_review" in visit.text
            assert visit.history and visit.history[0].status_code == 303
            assert str(visit.url).endswith(path) and "token=" not in str(visit.url)
            cookie = visit.history[0].headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
            assert browser.get(server.url("/execution-assets/page.js")).status_code == 200
            assert browser.get(server.url("/api/workflow/search")).status_code == 401  # only the pages
