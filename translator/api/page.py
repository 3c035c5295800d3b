"""``/execution/{workflowId}``: one execution as a page, the path Conductor's UI shows it at.

The page holds the workflow's diagram coloured by task status (``translator.graph``, drawn from the plan
stored with the execution), its status, times, input and output, and a table of its tasks with their
inputs, outputs and reasons. Every value is HTML-escaped. The page needs nothing but this server: its
stylesheet and script are served next to it (``/execution-assets/``) and it is sent with a strict
Content-Security-Policy (no inline script or style). While the workflow is not terminal the script
fetches the page again every two seconds and swaps its content in (without script: a meta refresh).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from importlib import resources
from typing import Any

import redis
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from translator.graph import render
from translator.graph.style import shade
from translator.status import WorkflowStatus
from translator.store.records import plan_of
from translator.store.state import RedisStore, StoreUnavailable

router = APIRouter(tags=["pages"])

REFRESH_SECONDS = 2  # how often a page of a running workflow fetches itself again (page.js)
JSON_LIMIT = 20_000  # characters of one input or output shown; the API has the rest
ASSETS = {"page.css": "text/css; charset=utf-8", "page.js": "text/javascript; charset=utf-8"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _store(request: Request) -> RedisStore:
    """The state store of the app: ``app.state.store``, else its services' session store."""
    store = getattr(request.app.state, "store", None)
    if store is None:
        store = request.app.state.services.session.store
    return store


@router.get("/execution/{workflow_id}", response_class=HTMLResponse, include_in_schema=False)
def execution_page(request: Request, workflow_id: str) -> HTMLResponse:
    store = _store(request)
    try:
        fields = store.workflow_fields(workflow_id)
        tasks = store.tasks(workflow_id) if fields is not None else []
        plan = plan_of(store, fields) if fields is not None else None
    except (StoreUnavailable, redis.RedisError) as exc:
        return _page(503, "State store unavailable", _message("The state store cannot be read.", str(exc)))
    if fields is None:
        text = f"There is no execution {workflow_id} in the state store (never started, removed or expired)."
        return _page(404, "Execution not found", _message("Execution not found", text))
    execution = {k: v for k, v in fields.items() if v is not None and not k.startswith("_")}
    execution["tasks"] = sorted(tasks, key=lambda t: _int(t.get("seq")))
    status = str(execution.get("status") or "")
    live = not _terminal(status)
    svg = render(plan, "svg", execution) if plan is not None else None
    title = f"{execution.get('workflowName', 'workflow')} · {status} · {workflow_id}"
    return _page(200, title, _execution(execution, svg, live), status=status, live=live)


@router.get("/execution-assets/{name}", include_in_schema=False)
def execution_asset(name: str) -> Response:
    """The page's stylesheet and script (package data of ``translator.api``)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        return Response("not found\n", status_code=404, media_type="text/plain", headers=HEADERS)
    body = resources.files("translator.api").joinpath("static", name).read_bytes()
    headers = {**HEADERS, "Cache-Control": "public, max-age=300"}
    return Response(body, media_type=media_type, headers=headers)


# ---------------------------------------------------------------------------------------------
# HTML


def _page(code: int, title: str, main: str, *, status: str = "", live: bool = False) -> HTMLResponse:
    refresh = (
        f'<noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS * 2}"></noscript>' if live else ""
    )
    document = (
        "<!DOCTYPE html>\n"
        f'<html lang="en" data-status="{_e(status)}" data-live="{"on" if live else "off"}">\n'
        '<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n"
        '<link rel="stylesheet" href="../execution-assets/page.css">\n'
        '<script src="../execution-assets/page.js" defer></script>\n'
        f"{refresh}</head>\n<body>\n{main}\n</body>\n</html>\n"
    )
    headers = {**HEADERS, "Cache-Control": "no-store"}
    return HTMLResponse(document, status_code=code, headers=headers)


def _message(heading: str, text: str) -> str:
    return f'<main id="execution" class="message">\n<h1>{_e(heading)}</h1>\n<p>{_e(text)}</p>\n</main>'


def _execution(execution: Mapping[str, Any], svg: str | None, live: bool) -> str:
    wf_id = str(execution.get("workflowId", ""))
    status = str(execution.get("status") or "")
    name = str(execution.get("workflowName") or "workflow")
    version = execution.get("workflowVersion")
    tasks = execution["tasks"]
    live_note = f'<span class="live">refreshing every {REFRESH_SECONDS} s</span>' if live else ""
    header = (
        '<header class="top">\n'
        f"<h1>{_e(name)}{f' <small>v{_e(version)}</small>' if version is not None else ''}</h1>\n"
        f"{_badge(status)}{live_note}\n"
        f'<p class="wfid"><code>{_e(wf_id)}</code></p>\n'
        "</header>"
    )
    diagram = (
        f'<div class="svg">{svg}</div>'
        if svg is not None
        else '<p class="note">The plan of this execution is not stored: no diagram.</p>'
    )
    return (
        f'<main id="execution" data-status="{_e(status)}">\n{header}\n'
        f"{_summary(execution)}\n"
        '<div class="columns">\n'
        f'<section class="diagram"><h2>Diagram</h2>\n{diagram}\n</section>\n'
        f'<section class="tasks"><h2>Tasks <small>{len(tasks)}</small></h2>\n'
        f"{_task_table(tasks, _day(execution.get('startTime')))}\n</section>\n"
        "</div>\n"
        '<div class="io">\n'
        f"<section><h2>Input</h2>{_json(execution.get('input', {}))}</section>\n"
        f"<section><h2>Output</h2>{_json(execution.get('output', {}))}</section>\n"
        "</div>\n</main>"
    )


def _summary(execution: Mapping[str, Any]) -> str:
    rows = [
        ("Correlation id", _e(execution["correlationId"]) if execution.get("correlationId") else None),
        ("Started", _time(execution.get("startTime"))),
        ("Ended", _time(execution.get("endTime"))),
        ("Updated", None if execution.get("endTime") else _time(execution.get("updateTime"))),
        ("Duration", _e(_duration(execution.get("startTime"), execution.get("endTime")))),
        ("Priority", _e(execution.get("priority")) if execution.get("priority") else None),
    ]
    failed = execution.get("failedReferenceTaskNames") or execution.get("failedTaskNames")
    if failed:
        rows.append(("Failed tasks", ", ".join(f"<code>{_e(ref)}</code>" for ref in failed)))
    items = "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in rows if value)
    reason = execution.get("reasonForIncompletion")
    callout = f'\n<pre class="reason">{_e(reason)}</pre>' if reason else ""
    return f'<section class="summary">\n<dl>{items}</dl>{callout}\n</section>'


def _task_table(tasks: list[Mapping[str, Any]], day: str) -> str:
    if not tasks:
        return '<p class="note">No task scheduled yet.</p>'
    head = (
        "<thead><tr><th>#</th><th>Task</th><th>Status</th><th>Started · took</th>"
        "<th>Input / output</th></tr></thead>"
    )
    rows = "".join(_task_row(t, day) for t in tasks)
    return f'<table class="task-table">{head}<tbody>\n{rows}</tbody></table>'


def _task_row(task: Mapping[str, Any], day: str) -> str:
    """A task's row, and a row under it with its reason when it has one."""
    ref = str(task.get("referenceTaskName") or "")
    task_id = str(task.get("taskId") or task.get("seq") or ref)
    kind = str(task.get("taskType") or "")
    name = str(task.get("taskDefName") or "")
    described = " · ".join(_e(part) for part in dict.fromkeys((name, kind)) if part)
    attempt = _int(task.get("retryCount"))
    retried = f' <span class="attempt">attempt {attempt + 1}</span>' if attempt else ""
    worker = (
        f'<div class="sub">worker <code>{_e(task["workerId"])}</code></div>' if task.get("workerId") else ""
    )
    status = str(task.get("status") or "")
    reason = task.get("reasonForIncompletion")
    marked = ' class="has-reason"' if reason else ""
    row = (
        f'<tr data-ref="{_e(ref)}" data-status="{_e(status)}"{marked}>'
        f'<td class="seq">{_e(task.get("seq", ""))}</td>'
        f'<td class="task"><code class="ref">{_e(ref)}</code>{retried}<div class="sub">{described}</div>'
        f"{worker}</td>"
        f"<td>{_badge(status)}</td>"
        f'<td class="when">{_time(task.get("startTime"), day) or "—"}'
        f'<div class="sub">{_e(_duration(task.get("startTime"), task.get("endTime")))}</div></td>'
        f'<td class="data">{_details(f"in-{task_id}", "input", task.get("inputData"))}'
        f"{_details(f'out-{task_id}', 'output', task.get('outputData'))}</td>"
        "</tr>\n"
    )
    if reason:
        pre = f'<pre class="reason">{_e(reason)}</pre>'
        row += f'<tr class="reason-row"><td></td><td colspan="4">{pre}</td></tr>\n'
    return row


def _details(element_id: str, label: str, value: Any) -> str:
    if not value:
        return f'<div class="empty">no {label}</div>'
    return f'<details id="{_e(element_id)}"><summary>{label}</summary>{_json(value)}</details>'


def _json(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > JSON_LIMIT:
        more = len(text) - JSON_LIMIT
        text = text[:JSON_LIMIT] + f"\n… ({more} more characters: see /api/workflow/{{workflowId}})"
    return f'<pre class="json">{_e(text)}</pre>'


def _badge(status: str) -> str:
    paint = shade(status or None, True).name.replace("_", "-")
    return f'<span class="badge {paint}">{_e(status or "NOT RUN")}</span>'


# ---------------------------------------------------------------------------------------------
# Values


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _terminal(status: str) -> bool:
    try:
        return WorkflowStatus(status).terminal
    except ValueError:
        return False  # a status of a later Conductor: keep watching


def _moment(value: Any) -> datetime | None:
    ms = _int(value)
    return datetime.fromtimestamp(ms / 1000, UTC) if ms > 0 else None


def _day(value: Any) -> str:
    moment = _moment(value)
    return moment.strftime("%Y-%m-%d") if moment is not None else ""


def _time(value: Any, day: str = "") -> str:
    """An epoch-milliseconds time as a ``<time>`` in UTC, without its date when that is ``day`` ('' when
    unset)."""
    moment = _moment(value)
    if moment is None:
        return ""
    clock = moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    full = f"{moment.strftime('%Y-%m-%d')} {clock} UTC"
    shown = clock if moment.strftime("%Y-%m-%d") == day else full
    return f'<time datetime="{moment.isoformat(timespec="milliseconds")}" title="{full}">{shown}</time>'


def _duration(start: Any, end: Any) -> str:
    """From ``start`` to ``end`` (epoch ms) for people: '850 ms', '12.4 s', '3 min 5 s' ('' unset)."""
    first, last = _int(start), _int(end)
    if first <= 0 or last < first:
        return ""
    ms = last - first
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
