"""The definitions registry: task and workflow definitions registered through the REST API, kept in
Redis under the state prefix so that every API process sees the same ones.

Keys (under ``TRANSLATOR_STATE_PREFIX``):

| Key | Type | Content |
|---|---|---|
| ``meta:taskdefs`` | hash | task name -> TaskDef JSON |
| ``meta:workflows`` | set | the names that have at least one registered version |
| ``meta:workflow:<name>`` | hash | version -> WorkflowDef JSON |

A workflow started by name is loaded from here as a :class:`WorkflowBundle` whose catalog holds every
registered definition, each located at a pseudo-path (``registry:/workflow/<name>/<version>``,
``registry:/taskdefs/<name>``), so validation issues name the definition they are about.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from translator.definitions.issues import Issue, Level
from translator.definitions.loader import (
    Catalog,
    Located,
    WorkflowBundle,
    build_model,
    with_file,
)
from translator.definitions.model import TaskDef, WorkflowDef
from translator.definitions.validate import validate_bundle, validate_taskdef, validate_workflow
from translator.engine.plan import Plan, build_plan
from translator.errors import ConflictError, DefinitionError, DefinitionNotFound

REGISTRY = "registry:"


def taskdef_path(name: str) -> str:
    return f"{REGISTRY}/taskdefs/{name}"


def workflow_path(name: str, version: int) -> str:
    return f"{REGISTRY}/workflow/{name}/{version}"


def _errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.level is Level.ERROR]


def check_taskdef(data: Any, pointer: str = "", file: str = "") -> TaskDef:
    """A TaskDef from JSON, validated as Conductor validates a registration (DefinitionError)."""
    model, issues = build_model(TaskDef, data, pointer)
    if model is not None:
        issues += validate_taskdef(model, pointer)
    errors = _errors(with_file(issues, file))
    if model is None or errors:
        raise DefinitionError("invalid task definition", errors)
    return model


def check_workflow(data: Any, pointer: str = "", file: str = "") -> WorkflowDef:
    """A WorkflowDef from JSON with Conductor's registration rules checked (DefinitionError). Task
    definitions, sub-workflows and failure workflows are not required to exist yet (Conductor does
    not require them at registration); starting the workflow checks them."""
    model, issues = build_model(WorkflowDef, data, pointer)
    if model is not None:
        issues += validate_workflow(model, base=pointer)
    errors = _errors(with_file(issues, file))
    if model is None or errors:
        raise DefinitionError("invalid workflow definition", errors)
    return model


def full_json(model: TaskDef | WorkflowDef) -> dict[str, Any]:
    """The definition as Conductor's GET shows it: every field, defaults included, nulls left out."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class MetadataStore:
    """Task and workflow definitions in Redis (``client`` decodes responses)."""

    def __init__(self, client: redis.Redis, prefix: str = "translator:") -> None:
        self.client = client
        self.taskdefs_key = f"{prefix}meta:taskdefs"
        self.names_key = f"{prefix}meta:workflows"
        self.workflow_prefix = f"{prefix}meta:workflow:"

    # -- task definitions ---------------------------------------------------------------------

    def put_taskdefs(self, taskdefs: list[TaskDef]) -> None:
        """Create or replace (Conductor's ``POST /metadata/taskdefs``)."""
        now = int(time.time() * 1000)
        mapping = {}
        for taskdef in taskdefs:
            data = taskdef.to_json()
            data["createTime"] = now
            data.pop("updateTime", None)
            mapping[taskdef.name or ""] = json.dumps(data)
        if mapping:
            self.client.hset(self.taskdefs_key, mapping=mapping)

    def update_taskdef(self, taskdef: TaskDef) -> None:
        """Replace an existing one (Conductor's ``PUT /metadata/taskdefs``); DefinitionNotFound."""
        name = taskdef.name or ""
        current = self.client.hget(self.taskdefs_key, name)
        if current is None:
            raise DefinitionNotFound(f"No such task by name {name}")
        data = taskdef.to_json()
        data["createTime"] = json.loads(current).get("createTime")
        data["updateTime"] = int(time.time() * 1000)
        self.client.hset(self.taskdefs_key, name, json.dumps(data))

    def taskdef(self, name: str) -> TaskDef:
        raw = self.client.hget(self.taskdefs_key, name)
        if raw is None:
            raise DefinitionNotFound(f"No such taskType found by name: {name}")
        return TaskDef.model_validate(json.loads(raw))

    def taskdefs(self) -> list[TaskDef]:
        stored = self.client.hgetall(self.taskdefs_key)
        return [TaskDef.model_validate(json.loads(stored[name])) for name in sorted(stored)]

    def delete_taskdef(self, name: str) -> None:
        if not self.client.hdel(self.taskdefs_key, name):
            raise DefinitionNotFound(f"Cannot remove the task - no such task definition: {name}")

    # -- workflow definitions -----------------------------------------------------------------

    def _workflow_key(self, name: str) -> str:
        return self.workflow_prefix + name

    def create_workflow(self, workflow: WorkflowDef, *, overwrite: bool = False) -> None:
        """Register a new (name, version) (``POST /metadata/workflow``); ConflictError when it exists
        and ``overwrite`` is false."""
        name, version = workflow.name or "", workflow.version
        data = workflow.to_json()
        data["createTime"] = int(time.time() * 1000)
        data.pop("updateTime", None)
        key = self._workflow_key(name)
        if overwrite:
            self.client.hset(key, str(version), json.dumps(data))
        elif not self.client.hsetnx(key, str(version), json.dumps(data)):
            raise ConflictError(f"Workflow with {name}.{version} already exists!")
        self.client.sadd(self.names_key, name)

    def put_workflow(self, workflow: WorkflowDef) -> None:
        """Create or replace (``PUT /metadata/workflow``), keeping the first createTime."""
        name, version = workflow.name or "", workflow.version
        key = self._workflow_key(name)
        data = workflow.to_json()
        current = self.client.hget(key, str(version))
        now = int(time.time() * 1000)
        if current is not None:
            data["createTime"] = json.loads(current).get("createTime")
            data["updateTime"] = now
        else:
            data["createTime"] = now
        self.client.hset(key, str(version), json.dumps(data))
        self.client.sadd(self.names_key, name)

    def _versions(self, name: str) -> dict[int, str]:
        stored = self.client.hgetall(self._workflow_key(name))
        return {int(version): raw for version, raw in stored.items()}

    def workflow(self, name: str, version: int | None = None) -> WorkflowDef:
        """By name and version (None: the latest); DefinitionNotFound as Conductor words it."""
        versions = self._versions(name)
        chosen = max(versions) if version is None and versions else version
        if chosen is None or chosen not in versions:
            shown = "null" if version is None else str(version)
            raise DefinitionNotFound(f"No such workflow found by name: {name}, version: {shown}")
        return WorkflowDef.model_validate(json.loads(versions[chosen]))

    def workflows(self) -> list[WorkflowDef]:
        """Every version of every registered workflow, by name then version."""
        found = []
        for name in sorted(self.client.smembers(self.names_key)):
            versions = self._versions(name)
            found += [WorkflowDef.model_validate(json.loads(versions[v])) for v in sorted(versions)]
        return found

    def delete_workflow(self, name: str, version: int) -> None:
        key = self._workflow_key(name)
        if not self.client.hdel(key, str(version)):
            raise DefinitionNotFound(
                f"Cannot remove the workflow - no such workflow definition: {name} version: {version}"
            )
        if not self.client.hlen(key):
            self.client.srem(self.names_key, name)

    # -- loading for a run --------------------------------------------------------------------

    def catalog(self) -> Catalog:
        """Every registered definition, each located at its registry path."""
        catalog = Catalog(searched=[f"{REGISTRY}/taskdefs"])
        for taskdef in self.taskdefs():
            name = taskdef.name or ""
            catalog.taskdefs[name] = Located(taskdef, taskdef_path(name), "")
        for workflow in self.workflows():
            name = workflow.name or ""
            located = Located(workflow, workflow_path(name, workflow.version), "")
            catalog.workflows[(name, workflow.version)] = located
        return catalog

    def bundle(self, definition: WorkflowDef, file: str | None = None) -> WorkflowBundle:
        """A workflow (registered, or given inline at ``file``) with every registered definition it
        may use, validated as ``translator run`` validates a file: DefinitionError with every issue."""
        if file is None:
            file = workflow_path(definition.name or "", definition.version)
        catalog = self.catalog()
        catalog.workflows[(definition.name or "", definition.version)] = Located(definition, file, "")
        bundle = WorkflowBundle(file, definition, catalog, [], [])
        issues = validate_bundle(bundle)
        errors = _errors(issues)
        if errors:
            raise DefinitionError(f"{file}: {len(errors)} error(s) in the definitions", errors)
        bundle.issues = issues
        return bundle

    def plan(self, name: str, version: int | None = None) -> Plan:
        """The plan of the registered workflow ``name`` (``version`` None: the latest), validated with
        every registered definition it may use. DefinitionNotFound, DefinitionError."""
        return build_plan(self.bundle(self.workflow(name, version)))
