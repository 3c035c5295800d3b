"""The ``translator`` command line.

Exit codes: 0 success (warnings allowed), 1 invalid definitions or a failed workflow,
2 usage errors. User mistakes are reported as messages, never as tracebacks.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

from translator.definitions.validate import check_files
from translator.errors import DefinitionError, TranslatorError, UsageError

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

_taskdefs_option = click.option(
    "--taskdefs",
    "taskdefs",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="A task definition file (one TaskDef or a JSON list) or a directory of them. "
    "Repeatable; added after DIR/taskdefs/ of the workflow file.",
)

_definitions_option = click.option(
    "--definitions",
    "definitions",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="A workflow definition file or a directory of them, where sub-workflows and failure workflows "
    "are looked up by name and version. Repeatable; searched after the workflow file's directory.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="translator")
def main() -> None:
    """Run Conductor workflow definitions on Celery."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_taskdefs_option
@_definitions_option
@click.option("--json", "as_json", is_flag=True, help="Print the issues as a JSON document.")
def validate(
    files: tuple[Path, ...], taskdefs: tuple[Path, ...], definitions: tuple[Path, ...], as_json: bool
) -> None:
    """Validate workflow and task definition FILES.

    Prints one line per issue, ``file:pointer: level code: message``, where pointer is an
    RFC 6901 JSON pointer into the file. Exits 0 when there is no error (warnings allowed),
    1 otherwise.
    """
    report = check_files(files, list(taskdefs), list(definitions))
    if as_json:
        document = {
            "valid": report.ok,
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "issues": [issue.as_dict() for issue in report.issues],
        }
        click.echo(json.dumps(document, indent=2))
    else:
        for issue in report.issues:
            click.echo(issue.render())
        sys.stdout.flush()
        summary = f"{len(files)} file(s): {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
        click.echo(summary, err=True)
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)


def _read_input(source: str) -> dict:
    """The workflow input: a JSON object from a file or ``-`` (stdin), read as strictly as definitions.

    Unreadable: UsageError. Not JSON, NaN/Infinity/1e999, beyond the limits of docs/definitions.md,
    or not an object: InputError naming the file and the JSON pointer. Duplicate keys: a warning.
    """
    from translator.definitions.issues import Level, one_line
    from translator.definitions.jsonsource import decode
    from translator.errors import InputError

    name = "<stdin>" if source == "-" else source
    data = _read_input_bytes(source, name)
    if not data.removeprefix(b"\xef\xbb\xbf").strip():
        return {}
    value, issues = decode(data)
    for issue in issues:
        if issue.level is Level.WARNING:
            click.echo(one_line(f"warning: {name}:{issue.pointer}: {issue.message}"), err=True)
    errors = [issue for issue in issues if issue.level is Level.ERROR]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        where = f"{name}:{errors[0].pointer}" if errors[0].pointer else name
        raise InputError(one_line(f"{where}: {errors[0].message}{more}"))
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else f"the value {json.dumps(value)[:40]}"
        raise InputError(f"{name}: the workflow input must be a JSON object, got {kind}")
    return value


def _read_input_bytes(source: str, name: str) -> bytes:
    """The input's bytes, at most one more than the documents translator reads."""
    from translator.definitions.jsonsource import MAX_DOCUMENT_BYTES

    try:
        if source == "-":
            stream = getattr(sys.stdin, "buffer", None)
            if stream is None:  # a text stream (tests, embedding): its characters as UTF-8
                return sys.stdin.read(MAX_DOCUMENT_BYTES + 1).encode("utf-8")
            return stream.read(MAX_DOCUMENT_BYTES + 1)
        with Path(source).open("rb") as handle:
            return handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the input {name}: {exc.strerror or exc}") from None


EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


@main.command()
@click.argument("definition", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--registered",
    default=None,
    metavar="NAME[:VERSION]",
    help="Instead of a file: the workflow registered through the REST API (translator serve), latest "
    "version unless given, with the registered task definitions and sub-workflows (needs the pool).",
)
@click.option(
    "--input", "-i", "input_source", default=None, metavar="FILE|-", help="Workflow input (a JSON object)."
)
@_taskdefs_option
@_definitions_option
@click.option("--full", is_flag=True, help="Print the whole execution JSON, whatever the final status.")
@click.option("--no-wait", is_flag=True, help="Print the workflow id and return (needs a broker).")
@click.option("--timeout", type=float, default=None, help="Give up waiting after this many seconds.")
@click.option("--concurrency", type=int, default=4, show_default=True, help="Threads of the embedded worker.")
@click.option("--correlation-id", default=None, help="The workflow's correlationId (searchable).")
@click.option(
    "--priority", type=click.IntRange(0, 99), default=0, show_default=True, help="The workflow's priority."
)
def run(
    definition: Path | None,
    registered: str | None,
    input_source: str | None,
    taskdefs: tuple[Path, ...],
    definitions: tuple[Path, ...],
    full: bool,
    no_wait: bool,
    timeout: float | None,
    concurrency: int,
    correlation_id: str | None,
    priority: int,
) -> None:
    """Run the workflow DEFINITION and print its output as JSON.

    With CELERY_BROKER_URL set, the workflow runs on the worker pool (celery -A tasks worker) and its
    state is kept in Redis. With nothing configured it runs embedded: a real Celery worker (threads)
    in this process over an in-memory transport, with the same retry, delay and timeout semantics
    (a timed-out step is abandoned as Conductor does, not killed), invisible to Flower.

    Exit status: 0 when the workflow COMPLETED; 1 when it ended otherwise (the reason is printed on
    stderr), --timeout passed, or the definitions are invalid; 2 for usage errors; 130 on Ctrl-C.
    """
    _phase("run")
    import gc

    gc.disable()  # start-up allocates much and frees little: no collections until the worker is ready
    from translator.progress import Progress
    from translator.runner import open_session, prepare, submit, wait
    from translator.settings import Settings

    settings = Settings.from_env()
    if (definition is None) == (registered is None):
        raise UsageError("give either a DEFINITION file or --registered NAME[:VERSION]")
    if definition is not None:
        plan = prepare(definition, list(taskdefs), list(definitions))
    else:
        from translator.runner import registered_plan

        plan = registered_plan(str(registered), settings)
    workflow_input = _read_input(input_source) if input_source else {}
    embedded = settings.broker_url is None
    if embedded:  # failures show in the progress lines, not as tracebacks
        logging.getLogger("translator").setLevel(logging.ERROR)
    if no_wait and embedded:
        raise UsageError(
            "--no-wait needs a worker pool: set CELERY_BROKER_URL (embedded runs end with the process)"
        )
    session = wf_id = None
    try:
        with open_session(settings, concurrency=concurrency) as session:
            gc.freeze()  # what start-up made stays: collections never examine it again
            gc.enable()
            _phase("ready")
            wf_id = submit(session, plan, workflow_input, correlation_id=correlation_id, priority=priority)
            if no_wait:
                click.echo(wf_id)
                return
            interval = 0.02 if session.embedded else 0.05  # an in-process store costs nothing to poll
            execution = wait(session.store, wf_id, timeout=timeout, progress=Progress(), interval=interval)
            _phase("ended")
            _report_failure_workflow(session, plan, execution, timeout)
    except KeyboardInterrupt:
        if wf_id is None:
            fate = ""
        elif embedded:
            fate = f": workflow {wf_id} ends with this process"
        else:
            fate = f": workflow {wf_id} goes on on the worker pool (translator status {wf_id})"
        _leave(session, EXIT_INTERRUPTED, f"error: interrupted{fate}")
    except TranslatorError as exc:  # --timeout passed, the broker went away, ...
        if session is None or not session.abandoned:
            raise
        _leave(session, EXIT_INVALID, f"error: {exc}")
    _phase("stopped")
    status = execution["status"]
    click.echo(json.dumps(execution if full else execution.get("output", {}), indent=2))
    if status == "COMPLETED":
        _leave(session, EXIT_OK)
    reason = execution.get("reasonForIncompletion") or "no reason recorded"
    _leave(session, EXIT_INVALID, f"error: workflow {wf_id} {status}: {reason}")


def _phase(name: str) -> None:
    """With TRANSLATOR_PROFILE_PHASES set, when ``run`` reaches ``name`` (epoch seconds, on stderr):
    what benchmarks/embedded_run.py measures."""
    import os

    if os.environ.get("TRANSLATOR_PROFILE_PHASES"):
        click.echo(f"translator: phase {name} {time.time():.6f}", err=True)


def _leave(session, code: int, message: str | None = None) -> None:
    """Exit with ``code`` (after ``message`` on stderr). When an embedded run left steps running
    (threads cannot be stopped), exit at once: the interpreter would wait for any non-daemon
    thread their worker functions started."""
    import gc
    import os

    if message:
        click.echo(message, err=True)
    gc.freeze()  # the process ends: spare the interpreter's exit a collection of every object (0.4 s)
    if session is not None and session.abandoned:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _report_failure_workflow(session, plan, execution: dict, timeout: float | None) -> None:
    """Name the failure workflow a failed run started; an embedded run waits for it before exiting."""
    from translator.engine.decide import failure_plan
    from translator.errors import WorkflowNotFound
    from translator.runner import wait
    from translator.store.records import FAILURE_WORKFLOW_KEY

    output = execution.get("output")
    failure_id = output.get(FAILURE_WORKFLOW_KEY) if isinstance(output, dict) else None
    failure = failure_plan(plan, execution)
    if not failure_id or failure is None:
        return
    click.echo(f"failure workflow {failure.name} started: {failure_id}", err=True)
    if not session.embedded:
        return
    began = time.monotonic()
    while True:  # it is created right after the failed workflow ends
        try:
            ended = wait(session.store, failure_id, timeout=timeout)
            break
        except WorkflowNotFound:
            if time.monotonic() - began > 10:
                click.echo(f"warning: failure workflow {failure_id} did not start", err=True)
                return
            time.sleep(0.05)
    reason = ended.get("reasonForIncompletion")
    click.echo(
        f"failure workflow {failure.name} {failure_id} {ended['status']}" + (f": {reason}" if reason else ""),
        err=True,
    )


@main.command(name="compile")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_taskdefs_option
@_definitions_option
@click.option("--dry-run", is_flag=True, help="Print the compiled canvas as JSON (nothing is ever sent).")
def compile_command(
    definition: Path, taskdefs: tuple[Path, ...], definitions: tuple[Path, ...], dry_run: bool
) -> None:
    """Compile DEFINITION to a Celery canvas and print it as JSON (nothing is sent)."""
    from translator.engine.compiler import canvas_json
    from translator.runner import celery_app, prepare

    plan = prepare(definition, list(taskdefs), list(definitions))
    click.echo(json.dumps(canvas_json(plan, celery_app()), indent=2))


@main.command()
@click.argument("definition", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_taskdefs_option
@_definitions_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg"]),
    default="mermaid",
    show_default=True,
    help="mermaid flowchart, Graphviz dot, or a standalone SVG.",
)
@click.option(
    "--execution",
    "workflow_id",
    default=None,
    metavar="WORKFLOW_ID",
    help="Colour each task by its status in this execution, read from the state store as status does.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to FILE."
)
def graph(
    definition: Path,
    taskdefs: tuple[Path, ...],
    definitions: tuple[Path, ...],
    fmt: str,
    workflow_id: str | None,
    output: Path | None,
) -> None:
    """Draw the workflow DEFINITION as Conductor's UI does (docs/graph.md), on stdout or to FILE."""
    from translator.graph import read_execution, render
    from translator.runner import prepare

    plan = prepare(definition, list(taskdefs), list(definitions))
    execution = read_execution(workflow_id, plan) if workflow_id is not None else None
    drawing = render(plan, fmt, execution)
    if output is None:
        click.echo(drawing, nl=False)
        return
    try:
        output.write_text(drawing, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


@main.command()
@click.argument("workflow_id")
@click.option("--tasks", "with_tasks", is_flag=True, help="Include the tasks.")
@click.option("--table", "as_table", is_flag=True, help="A readable summary and a table of its tasks.")
def status(workflow_id: str, with_tasks: bool, as_table: bool) -> None:
    """Print the execution WORKFLOW_ID (Conductor's Workflow JSON) from the Redis state store.

    The store is the worker pool's: TRANSLATOR_STATE_URL, else CELERY_RESULT_BACKEND, else
    CELERY_BROKER_URL (Redis URLs), else redis://127.0.0.1:6379/0. Embedded runs keep their state in
    their own process: status cannot see them. Exit status 1 when there is no such workflow.
    """
    from translator.runner import read_workflow

    execution = read_workflow(workflow_id, include_tasks=with_tasks or as_table)
    if not as_table:
        click.echo(json.dumps(execution, indent=2))
        return
    head = f"{execution.get('workflowName')} v{execution.get('workflowVersion')}  {execution.get('status')}"
    click.echo(f"{head}  {workflow_id}")
    for key in ("correlationId", "reasonForIncompletion"):
        if execution.get(key):
            click.echo(f"{key}: {execution[key]}")
    rows = [("SEQ", "REFERENCE", "TYPE", "STATUS", "ATTEMPT", "TOOK", "REASON")]
    for task in execution.get("tasks", []):
        start, end = int(task.get("startTime") or 0), int(task.get("endTime") or 0)
        took = f"{(end - start) / 1000:.3f}s" if start and end >= start else ""
        rows.append(
            (
                str(task.get("seq", "")),
                task.get("referenceTaskName", ""),
                task.get("taskType", ""),
                task.get("status", ""),
                str(task.get("retryCount", 0)),
                took,
                (task.get("reasonForIncompletion") or "")[:80],
            )
        )
    _print_table(rows)


def _print_table(rows: list[tuple[str, ...]]) -> None:
    """Rows as aligned columns (the first row: the headings)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


_STATUS_CHOICE = click.Choice(["RUNNING", "PAUSED", "COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"])


@main.command("list")
@click.option("--name", "names", multiple=True, help="Workflow name (repeatable: any of them).")
@click.option("--status", "statuses", multiple=True, type=_STATUS_CHOICE, help="Status (repeatable).")
@click.option("--correlation-id", "correlation_id", default=None, help="Correlation id.")
@click.option(
    "--since",
    default=None,
    metavar="T",
    help="Started at or after T: ISO date/time, epoch ms, or ago (1h, 7d).",
)
@click.option(
    "--limit", type=click.IntRange(0, 1000), default=20, show_default=True, help="At most this many."
)
@click.option("--json", "as_json", is_flag=True, help="Print Conductor's SearchResult of WorkflowSummary.")
def list_command(
    names: tuple[str, ...],
    statuses: tuple[str, ...],
    correlation_id: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List executions in the pool's Redis state store, newest first (docs/search.md)."""
    import redis

    from translator.errors import BrokerUnavailable
    from translator.runner import status_store
    from translator.store.search import find, parse_time
    from translator.store.state import Criteria, safe_url

    criteria = Criteria(
        names=frozenset(names) or None,
        statuses=frozenset(statuses) or None,
        correlation_ids=frozenset({correlation_id}) if correlation_id is not None else None,
        start_min=parse_time(since) if since is not None else None,
    )
    store = status_store()
    try:
        found = find(store, criteria, size=limit)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"cannot read the state store {safe_url(store.url)}: {exc}") from None
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    rows = [("WORKFLOW ID", "NAME", "VERSION", "STATUS", "STARTED", "ENDED", "CORRELATION ID")]
    for item in found["results"]:
        started, ended = item.get("startTime", ""), item.get("endTime", "")
        rows.append(
            (
                item["workflowId"],
                item.get("workflowType", ""),
                str(item.get("version", "")),
                item.get("status", ""),
                started[:19].replace("T", " "),
                ended[:19].replace("T", " "),
                item.get("correlationId", ""),
            )
        )
    _print_table(rows)
    click.echo(f"{len(found['results'])} of {found['totalHits']} execution(s)", err=True)


@main.command("complete-task")
@click.argument("workflow_id")
@click.argument("task_ref")
@click.option(
    "--status",
    type=click.Choice(["COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR"]),
    default="COMPLETED",
    show_default=True,
    help="The status the task ends with.",
)
@click.option(
    "--output", "output_text", default=None, metavar="JSON", help="Output to merge (a JSON object)."
)
@click.option("--reason", default=None, help="The task's reasonForIncompletion.")
def complete_task_command(
    workflow_id: str, task_ref: str, status: str, output_text: str | None, reason: str | None
) -> None:
    """End the pending task TASK_REF of workflow WORKFLOW_ID (a HUMAN task, a WAIT without a time, an
    asyncComplete task), as Conductor's POST /tasks/{workflowId}/{taskRefName}/{status}; the workflow
    goes on, on the worker pool (CELERY_BROKER_URL). Prints the task as recorded.

    Exit status: 0 when ended; 1 when there is no such workflow or no pending task of that reference;
    2 for usage errors (a bad --output, no worker pool configured)."""
    from translator.runner import complete_task

    output = None
    if output_text is not None:
        try:
            output = json.loads(output_text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--output is not JSON: {exc}") from None
        if not isinstance(output, dict):
            raise UsageError("--output must be a JSON object")
    task = complete_task(workflow_id, task_ref, status, output, reason)
    click.echo(json.dumps(task, indent=2))


def _json_object(text: str | None, option: str) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{option} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{option} must be a JSON object")
    return value


def _done(workflow_id: str, what: str) -> None:
    click.echo(f"workflow {workflow_id} {what}")


@main.command()
@click.argument("workflow_id")
def pause(workflow_id: str) -> None:
    """Pause a running workflow: nothing new is scheduled until it is resumed (running tasks still
    end). Exit status 1 when it has ended or does not exist."""
    from translator.operations import pause_workflow

    pause_workflow(workflow_id)
    _done(workflow_id, "paused")


@main.command()
@click.argument("workflow_id")
def resume(workflow_id: str) -> None:
    """Resume a paused workflow."""
    from translator.operations import resume_workflow

    resume_workflow(workflow_id)
    _done(workflow_id, "resumed")


@main.command()
@click.argument("workflow_id")
@click.option("--reason", default=None, help="The workflow's reasonForIncompletion.")
def terminate(workflow_id: str, reason: str | None) -> None:
    """Terminate a workflow: TERMINATED, its running tasks canceled and stopped, its sub-workflows
    terminated; no failure workflow. Refused for a COMPLETED workflow."""
    from translator.operations import terminate_workflow

    terminate_workflow(workflow_id, reason)
    _done(workflow_id, "terminated")


@main.command()
@click.argument("workflow_id")
def retry(workflow_id: str) -> None:
    """Run an ended workflow again from its failed tasks (each scheduled again as a new attempt)."""
    from translator.operations import retry_workflow

    retry_workflow(workflow_id)
    _done(workflow_id, "retried")


@main.command()
@click.argument("workflow_id")
@click.option(
    "--latest",
    "latest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Run this definition file (the latest definition) instead of the one the workflow ran.",
)
@_taskdefs_option
@_definitions_option
def restart(
    workflow_id: str, latest: Path | None, taskdefs: tuple[Path, ...], definitions: tuple[Path, ...]
) -> None:
    """Run an ended workflow again from its start: same id, original input, every task removed."""
    from translator.operations import load_workflow, restart_workflow

    plan = load_workflow(latest, list(taskdefs), list(definitions)) if latest is not None else None
    restart_workflow(workflow_id, plan)
    _done(workflow_id, "restarted")


@main.command()
@click.argument("workflow_id")
@click.option("--from-task", "from_task", default=None, metavar="TASK_ID", help="The taskId to rerun from.")
@click.option("--task-input", default=None, metavar="JSON", help="That task's new input (a JSON object).")
@click.option("--input", "workflow_input", default=None, metavar="JSON", help="The workflow's new input.")
@click.option("--correlation-id", default=None, help="The workflow's new correlationId.")
def rerun(
    workflow_id: str,
    from_task: str | None,
    task_input: str | None,
    workflow_input: str | None,
    correlation_id: str | None,
) -> None:
    """Rerun an ended workflow from a task (every task scheduled after it is removed) or, without
    --from-task, from its start; Conductor's RerunWorkflowRequest."""
    from translator.operations import rerun_workflow

    rerun_workflow(
        workflow_id,
        from_task,
        task_input=_json_object(task_input, "--task-input"),
        workflow_input=_json_object(workflow_input, "--input"),
        correlation_id=correlation_id,
    )
    _done(workflow_id, "rerun" + (f" from task {from_task}" if from_task else ""))


@main.command("skip-task")
@click.argument("workflow_id")
@click.argument("task_ref")
@click.option("--input", "task_input", default=None, metavar="JSON", help="The skipped task's input.")
@click.option("--output", "task_output", default=None, metavar="JSON", help="The skipped task's output.")
def skip_task_command(
    workflow_id: str, task_ref: str, task_input: str | None, task_output: str | None
) -> None:
    """Skip TASK_REF of a running workflow before it is reached: it is SKIPPED and the workflow
    goes past it."""
    from translator.operations import skip_task

    skip_task(
        workflow_id,
        task_ref,
        task_input=_json_object(task_input, "--input"),
        task_output=_json_object(task_output, "--output"),
    )
    _done(workflow_id, f"skips {task_ref}")


@main.command()
@click.argument("workflow_id")
def remove(workflow_id: str) -> None:
    """Delete an execution from the state store (a running one is terminated first)."""
    from translator.operations import remove_workflow

    remove_workflow(workflow_id)
    _done(workflow_id, "removed")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="The port.")
def serve(host: str, port: int) -> None:
    """Serve Conductor's REST API (under /api; OpenAPI at /api-docs) for the worker pool
    (CELERY_BROKER_URL, required). With TRANSLATOR_API_TOKEN set, every /api request needs
    ``Authorization: Bearer <token>`` (docs/api.md)."""
    import os

    import uvicorn

    from translator.api.app import TOKEN_ENV, app_from_env

    app = app_from_env()
    if host not in ("127.0.0.1", "::1", "localhost") and not os.environ.get(TOKEN_ENV):
        click.echo(
            f"warning: listening on {host} with no {TOKEN_ENV}: anyone who reaches it can run workflows",
            err=True,
        )
    uvicorn.run(app, host=host, port=port, log_level="info")


def run_cli() -> None:
    """Entry point wrapper: turns TranslatorError into a message and exit code."""
    try:
        main(standalone_mode=True)
    except UsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except DefinitionError as exc:
        for issue in exc.issues:
            click.echo(issue.render(), err=True)
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_INVALID)
    except TranslatorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)


if __name__ == "__main__":
    run_cli()
