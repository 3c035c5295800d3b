"""Loading definition files into typed models, and finding the definitions a workflow needs.

Discovery convention, for a workflow file ``DIR/NAME.json``:

* task definitions: every ``*.json`` file in ``DIR/taskdefs/`` (each holds one TaskDef object or a
  JSON array of them, like the body of ``POST /api/metadata/taskdefs``), then every ``--taskdefs PATH``
  in the order given (a file, or a directory of such files). A later definition of the same name
  replaces an earlier one.
* sub-workflow and failure-workflow definitions: every ``*.json`` file in ``DIR`` and in
  ``DIR/workflows/`` that holds a WorkflowDef (an object with a ``tasks`` key), keyed by name and
  version; a reference without a version takes the highest version found.

Nothing here raises for bad input: problems come back as Issues with the file and JSON pointer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from translator.definitions.issues import Issue, error, join, warning
from translator.definitions.jsonsource import read_file
from translator.definitions.model import TaskDef, WorkflowDef

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

TASKDEFS_DIR = "taskdefs"
WORKFLOWS_DIR = "workflows"


class DocumentKind(StrEnum):
    WORKFLOW = "workflow"
    TASKDEFS = "taskdefs"
    WORKFLOW_TASK = "workflow-task"
    WORKFLOW_INPUT = "workflow-input"


_TASKDEF_KEYS = frozenset(TaskDef.model_fields)
NOT_A_DEFINITION = (
    'this looks like a workflow input (an object without "name" and "tasks"), not a definition; '
    "pass it to translator run with --input"
)


def detect_kind(data: Any) -> DocumentKind | None:
    """What a parsed JSON document holds: a WorkflowDef, TaskDef(s), a single WorkflowTask, or an object
    that is none of them (no ``name``, ``tasks`` nor ``taskReferenceName``, and mostly keys a TaskDef
    does not have): most likely a workflow input given where a definition was expected."""
    if isinstance(data, list):
        return DocumentKind.TASKDEFS
    if not isinstance(data, dict):
        return None
    if "tasks" in data:
        return DocumentKind.WORKFLOW
    if "taskReferenceName" in data:
        return DocumentKind.WORKFLOW_TASK
    if "name" not in data and 2 * len(_TASKDEF_KEYS.intersection(data)) < max(len(data), 1):
        return DocumentKind.WORKFLOW_INPUT
    return DocumentKind.TASKDEFS


# ---------------------------------------------------------------------------------------------
# JSON -> model, with every type error reported at its pointer


def describe(value: Any) -> str:
    """A short JSON rendering of a value for messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer (no fractional part)",
    "bool_parsing": "a boolean (true or false)",
    "bool_type": "a boolean (true or false)",
    "string_type": "a string",
    "list_type": "a JSON array",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
}


def _type_message(err: Any, field: str, union: bool) -> str:
    got = describe(err.get("input"))
    if union:
        return f"{field}: invalid value {got}"
    kind = err.get("type", "")
    if kind == "enum":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{field}: expected one of {expected}, got {got}"
    if kind in _EXPECTED:
        return f"{field}: expected {_EXPECTED[kind]}, got {got}"
    return f"{field}: {err.get('msg', 'invalid value')}, got {got}"


def _data_tokens(data: Any, loc: Sequence[Any]) -> tuple[list[str | int], bool]:
    """Keep the loc entries that navigate ``data``; the others are pydantic union tags."""
    tokens: list[str | int] = []
    dropped = False
    current = data
    for entry in loc:
        in_object = isinstance(current, dict) and entry in current
        in_array = isinstance(current, list) and isinstance(entry, int) and 0 <= entry < len(current)
        if in_object or in_array:
            tokens.append(entry)
            current = current[entry]
        else:
            dropped = True
    return tokens, dropped


def _remove(data: Any, tokens: list[str | int], replace_with_object: bool) -> bool:
    """Drop the value at ``tokens`` so the rest of the document can still be checked."""
    if not tokens:
        return False
    parent = data
    for token in tokens[:-1]:
        parent = parent[token]
    last = tokens[-1]
    if isinstance(parent, dict):
        del parent[last]
    elif replace_with_object:  # keep list positions stable for later pointers
        parent[last] = {}
    else:
        del parent[last]
    return True


def build_model(cls: type[M], data: Any, base: str = "") -> tuple[M | None, list[Issue]]:
    """Build ``cls`` from JSON data. Values of the wrong type are reported and left out."""
    if not isinstance(data, dict):
        return None, [error(base, "type", f"expected a JSON object, got {describe(data)}")]
    issues: list[Issue] = []
    reported: set[str] = set()
    work = data
    for _ in range(50):
        try:
            return cls.model_validate(work), issues
        except ValidationError as exc:
            if work is data:
                work = copy.deepcopy(data)
            progressed = False
            for err in exc.errors():
                tokens, union = _data_tokens(work, err["loc"])
                ptr = join(base, *tokens)
                field = str(tokens[-1]) if tokens else cls.__name__
                if ptr not in reported:
                    reported.add(ptr)
                    issues.append(error(ptr, "type", _type_message(err, field, union)))
                object_expected = err.get("type") in ("model_type", "model_attributes_type")
                try:
                    progressed |= _remove(work, tokens, object_expected)
                except (KeyError, IndexError, TypeError):
                    continue
            if not progressed:
                return None, issues
    return None, issues


# ---------------------------------------------------------------------------------------------
# Catalog of definitions


@dataclass(frozen=True)
class Located(Generic[T]):
    """A definition with where it came from."""

    value: T
    file: str
    pointer: str


@dataclass
class Catalog:
    """Task definitions and workflow definitions available to a workflow."""

    taskdefs: dict[str, Located[TaskDef]] = field(default_factory=dict)
    workflows: dict[tuple[str, int], Located[WorkflowDef]] = field(default_factory=dict)
    searched: list[str] = field(default_factory=list)

    def taskdef(self, name: str | None) -> TaskDef | None:
        found = self.taskdefs.get(name or "")
        return found.value if found else None

    def workflow(self, name: str, version: int | None = None) -> WorkflowDef | None:
        found = self.located_workflow(name, version)
        return found.value if found else None

    def located_workflow(self, name: str, version: int | None = None) -> Located[WorkflowDef] | None:
        """A workflow by name and version (None: the highest version found) with its file."""
        if version is not None:
            return self.workflows.get((name, version))
        versions = [v for (n, v) in self.workflows if n == name]
        return self.workflows[(name, max(versions))] if versions else None


@dataclass
class TaskDefFile:
    file: str
    taskdefs: list[Located[TaskDef]]
    issues: list[Issue]


def parse_taskdefs(data: Any, file: str) -> TaskDefFile:
    """A TaskDef object or a JSON array of them."""
    items: list[tuple[str, Any]]
    if isinstance(data, list):
        if not data:
            return TaskDefFile(file, [], [warning("", "empty", "the task definition list is empty")])
        items = [(join("", i), item) for i, item in enumerate(data)]
    else:
        items = [("", data)]
    found: list[Located[TaskDef]] = []
    issues: list[Issue] = []
    for ptr, item in items:
        model, item_issues = build_model(TaskDef, item, ptr)
        issues += item_issues
        if model is not None:
            found.append(Located(model, file, ptr))
    return TaskDefFile(file, found, issues)


def _json_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.glob("*.json") if p.is_file())
    return [path]


def with_file(issues: Iterable[Issue], file: str) -> list[Issue]:
    return [Issue(i.pointer, i.code, i.message, i.level, file) for i in issues]


def load_taskdef_files(paths: Iterable[Path]) -> tuple[list[TaskDefFile], list[Issue]]:
    """Read task definition files (or directories of them)."""
    files: list[TaskDefFile] = []
    issues: list[Issue] = []
    for path in paths:
        if not path.exists():
            issues.append(Issue("", "io", "no such file or directory", file=str(path)))
            continue
        for file in _json_files(path):
            data, read_issues = read_file(file)
            if data is None:
                issues += with_file(read_issues, str(file))
                continue
            parsed = parse_taskdefs(data, str(file))
            parsed.issues = with_file(read_issues + parsed.issues, str(file))
            files.append(parsed)
    return files, issues


def scan_workflows(
    directories: Iterable[Path], exclude: Path | None = None
) -> dict[tuple[str, int], Located[WorkflowDef]]:
    """Index the WorkflowDef files found directly in ``directories`` (or given as files) by (name,
    version); the first one found for a (name, version) wins."""
    found: dict[tuple[str, int], Located[WorkflowDef]] = {}
    for directory in directories:
        if directory.is_file():
            files = [directory]
        elif directory.is_dir():
            files = _json_files(directory)
        else:
            continue
        for file in files:
            if exclude is not None and file.resolve() == exclude.resolve():
                continue
            data, _ = read_file(file)
            if detect_kind(data) is not DocumentKind.WORKFLOW:
                continue
            model, _ = build_model(WorkflowDef, data)
            if model is not None and model.name:
                found.setdefault((model.name, model.version), Located(model, str(file), ""))
    return found


@dataclass
class WorkflowBundle:
    """A workflow definition with everything found for it, and every issue met on the way."""

    file: str
    definition: WorkflowDef | None
    catalog: Catalog
    taskdef_files: list[TaskDefFile]
    issues: list[Issue]


def default_taskdef_paths(workflow_file: Path) -> list[Path]:
    directory = workflow_file.parent / TASKDEFS_DIR
    return [directory] if directory.is_dir() else []


def load_workflow(
    path: Path,
    taskdef_paths: Sequence[Path] = (),
    *,
    discover: bool = True,
    definition_paths: Sequence[Path] = (),
) -> WorkflowBundle:
    """Load a workflow file and the task/sub-workflow definitions it can use: sub-workflows and
    failure workflows are looked up next to it, in its workflows/ directory, then in each of
    ``definition_paths`` (workflow files or directories of them)."""
    path = Path(path)
    taskdef_paths = [Path(p) for p in taskdef_paths]
    file = str(path)
    data, issues = read_file(path)
    definition: WorkflowDef | None = None
    if data is not None:
        kind = detect_kind(data)
        if kind is DocumentKind.WORKFLOW:
            definition, model_issues = build_model(WorkflowDef, data)
            issues += model_issues
        elif kind is DocumentKind.WORKFLOW_INPUT:
            issues.append(error("", "not-a-definition", NOT_A_DEFINITION))
        else:
            issues.append(
                error(
                    "",
                    "not-a-workflow",
                    f"expected a workflow definition (an object with a 'tasks' list), "
                    f"found {'task definitions' if kind else describe(data)}",
                )
            )
    catalog = Catalog()
    search = [*(default_taskdef_paths(path) if discover else []), *taskdef_paths]
    taskdef_files, load_issues = load_taskdef_files(search)
    catalog.searched = [str(p) for p in search]
    for parsed in taskdef_files:
        for located in parsed.taskdefs:
            if located.value.name:
                catalog.taskdefs[located.value.name] = located
    directories = [path.parent, path.parent / WORKFLOWS_DIR] if discover else []
    catalog.workflows = scan_workflows([*directories, *(Path(p) for p in definition_paths)], exclude=path)
    if definition is not None and definition.name:
        catalog.workflows[(definition.name, definition.version)] = Located(definition, file, "")
    return WorkflowBundle(file, definition, catalog, taskdef_files, with_file(issues, file) + load_issues)
