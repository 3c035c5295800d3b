"""Searching executions as Conductor's ``GET /api/workflow/search`` does (docs/search.md).

``search`` parses Conductor's query (clauses on ``workflowType``, ``status``, ``correlationId``,
``workflowId`` and ``startTime`` joined with AND) into ``Criteria`` and returns Conductor's
``SearchResult<WorkflowSummary>``; ``running`` lists the ids of a definition's running executions
(``GET /api/workflow/running/{name}``). The stores answer from indexes kept in the same atomic writes
as the records (:mod:`translator.store.scripts`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from translator.errors import UsageError
from translator.status import WorkflowStatus
from translator.store.state import Criteria, StateStore, now_ms

MAX_SIZE = 1000  # results in one page
STATUSES = frozenset(s.value for s in WorkflowStatus)
# The workflow fields a summary is made of.
SUMMARY_FIELDS = (
    "workflowId",
    "workflowName",
    "workflowVersion",
    "correlationId",
    "createTime",
    "startTime",
    "updateTime",
    "endTime",
    "status",
    "input",
    "output",
    "reasonForIncompletion",
    "event",
    "failedReferenceTaskNames",
    "failedTaskNames",
    "priority",
    "parentWorkflowId",
    "taskToDomain",
    "createdBy",
    "idempotencyKey",
    "externalInputPayloadStoragePath",
    "externalOutputPayloadStoragePath",
)
RUNNING_STATUSES = frozenset({WorkflowStatus.RUNNING.value, WorkflowStatus.PAUSED.value})

_TOKEN = re.compile(
    r"""\s*(?:(?P<quoted>'[^']*'|"[^"]*")|(?P<op>>=|<=|!=|=|>|<)|(?P<punct>[(),])|(?P<word>[^\s'"(),=<>!]+))"""
)
_FIELDS = {"workflowType", "status", "correlationId", "workflowId", "startTime"}
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def search(
    store: StateStore,
    *,
    query: str | None,
    free_text: str = "*",
    start: int = 0,
    size: int = 100,
    sort: str | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Conductor's ``SearchResult<WorkflowSummary>``: ``{"totalHits": n, "results": [summary]}`` of
    the executions ``query`` and ``free_text`` select, ``size`` of them from ``start``, ordered by
    ``sort`` (``startTime:DESC``, the default, or ``startTime:ASC``). UsageError for anything else."""
    criteria = parse_query(query)
    criteria = _with_free_text(criteria, free_text)
    return find(store, criteria, start=start, size=size, ascending=_ascending(sort))


def find(
    store: StateStore, criteria: Criteria, *, start: int = 0, size: int = 100, ascending: bool = False
) -> dict[str, Any]:
    """``search`` with its criteria already made (the command line builds them from options)."""
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise UsageError(f"start must be a whole number >= 0, got {start!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise UsageError(f"size must be a whole number from 0 to {MAX_SIZE}, got {size!r}")
    page = replace(criteria, offset=start, limit=size, ascending=ascending)
    total, records = store.find(page, SUMMARY_FIELDS)
    return {"totalHits": total, "results": [summary(record) for record in records]}


def running(store: StateStore, name: str, version: int | None = None) -> list[str]:
    """The ids of the executions of workflow ``name`` (of ``version``; None: any) that have not
    ended (RUNNING or PAUSED, as Conductor's pending set), oldest first."""
    versions = None if version is None else frozenset({version})
    criteria = Criteria(
        names=frozenset({name}), statuses=RUNNING_STATUSES, versions=versions, limit=None, ascending=True
    )
    return [record["workflowId"] for record in store.find(criteria, ("workflowId",))[1]]


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """Conductor's WorkflowSummary of an execution's fields (``WorkflowSummary(Workflow)``): times as
    UTC ISO strings, input and output as JSON text, the failed references comma-joined; null fields
    left out, as Conductor's JSON does."""
    created = record.get("createTime") or record.get("startTime")
    end = record.get("endTime") or 0
    found: dict[str, Any] = {
        "workflowType": record.get("workflowName"),
        "version": record.get("workflowVersion") or 0,
        "workflowId": record.get("workflowId"),
        "correlationId": record.get("correlationId"),
        "startTime": iso_time(created) if created is not None else None,
        "updateTime": iso_time(record["updateTime"]) if record.get("updateTime") is not None else None,
        "endTime": iso_time(end) if end > 0 else None,
        "status": record.get("status"),
        "input": _text(record.get("input")),
        "output": _text(record.get("output")),
        "reasonForIncompletion": record.get("reasonForIncompletion"),
        "executionTime": end - (record.get("startTime") or 0) if end > 0 else 0,
        "event": record.get("event"),
        "failedReferenceTaskNames": ",".join(record.get("failedReferenceTaskNames") or []),
        "failedTaskNames": list(record.get("failedTaskNames") or []),
        "priority": record.get("priority") or 0,
        "parentWorkflowId": record.get("parentWorkflowId") or "",
        "taskToDomain": record.get("taskToDomain") or {},
        "createdBy": record.get("createdBy"),
        "idempotencyKey": record.get("idempotencyKey"),
        "externalInputPayloadStoragePath": record.get("externalInputPayloadStoragePath") or None,
        "externalOutputPayloadStoragePath": record.get("externalOutputPayloadStoragePath") or None,
    }
    found["inputSize"] = len(found["input"] or "")
    found["outputSize"] = len(found["output"] or "")
    return {name: value for name, value in found.items() if value is not None}


def iso_time(ms: int | float) -> str:
    """Epoch ms as Conductor's summaries write it: ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`` (UTC)."""
    moment = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def _text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# The query


def parse_query(query: str | None) -> Criteria:
    """Criteria of a Conductor search query: ``field op value`` clauses joined with AND, where field
    is workflowType, status, correlationId or workflowId (``=`` or ``IN (a,b)``) or startTime
    (``=``, ``>``, ``<``, ``>=``, ``<=``: epoch ms or an ISO date/time); values quoted or not."""
    if query is None or not query.strip():
        return Criteria()
    sets: dict[str, frozenset[str]] = {}
    start_min: int | None = None
    start_max: int | None = None
    for clause in _clauses(query):
        name, op, values = _parse_clause(clause)
        if name == "startTime":
            at = parse_time(values[0], clause=clause)
            low, high = {"=": (at, at), ">": (at + 1, None), ">=": (at, None), "<": (None, at - 1)}.get(
                op, (None, at)
            )
            start_min = low if start_min is None or (low is not None and low > start_min) else start_min
            start_max = high if start_max is None or (high is not None and high < start_max) else start_max
            continue
        if name == "status":
            unknown = [v for v in values if v not in STATUSES]
            if unknown:
                raise UsageError(
                    f"unknown workflow status {unknown[0]!r} in the search clause {clause!r} "
                    f"(one of {', '.join(sorted(STATUSES))})"
                )
        chosen = frozenset(values)
        sets[name] = sets[name] & chosen if name in sets else chosen  # clauses are ANDed
    return Criteria(
        names=sets.get("workflowType"),
        statuses=sets.get("status"),
        correlation_ids=sets.get("correlationId"),
        ids=sets.get("workflowId"),
        start_min=start_min,
        start_max=start_max,
    )


def _clauses(query: str) -> list[str]:
    """The clauses of ``query`` (split on AND outside quotes and parentheses), as written."""
    clauses, begin, depth = [], 0, 0
    for match in _TOKEN.finditer(query):
        if match.group("punct") == "(":
            depth += 1
        elif match.group("punct") == ")":
            depth -= 1
        word = match.group("word")
        if word is not None and depth == 0:
            if word.upper() == "OR":
                raise UsageError(f"search queries join clauses with AND only, not OR: {query.strip()!r}")
            if word.upper() == "AND":
                clauses.append(query[begin : match.start("word")].strip())
                begin = match.end()
    rest = query[begin:].strip()
    clauses.append(rest)
    consumed = "".join(m.group(0) for m in _TOKEN.finditer(query))
    if consumed.strip() != query.strip():
        raise UsageError(f"cannot read the search query {query.strip()!r}")
    for clause in clauses:
        if not clause:
            raise UsageError(f"empty clause in the search query {query.strip()!r}")
    return clauses


def _parse_clause(clause: str) -> tuple[str, str, list[str]]:
    """(field, operator, values) of one clause; UsageError naming it when it is not one we run."""
    tokens = [(m.lastgroup, m.group(m.lastgroup)) for m in _TOKEN.finditer(clause)]
    if len(tokens) < 3 or tokens[0][0] != "word":
        raise UsageError(
            f"cannot read the search clause {clause!r}: expected FIELD = VALUE or FIELD IN (A,B)"
        )
    field = tokens[0][1]
    if field not in _FIELDS:
        raise UsageError(
            f"the search clause {clause!r} names {field!r}: only {', '.join(sorted(_FIELDS))} can be searched"
        )
    kind, op = tokens[1]
    if kind == "word" and op.upper() == "IN":
        values = _in_values(tokens[2:], clause)
        op = "IN"
    elif kind == "op":
        if len(tokens) != 3 or tokens[2][0] not in ("word", "quoted"):
            raise UsageError(f"cannot read the search clause {clause!r}: one value expected after {op}")
        values = [_value(tokens[2])]
    else:
        raise UsageError(
            f"cannot read the search clause {clause!r}: expected =, >, <, >=, <= or IN after {field}"
        )
    if field == "startTime":
        if op not in ("=", ">", "<", ">=", "<="):
            raise UsageError(f"the search clause {clause!r}: startTime takes =, >, <, >= or <=")
    elif op not in ("=", "IN"):
        raise UsageError(f"the search clause {clause!r}: {field} takes = or IN")
    return field, op, values


def _in_values(tokens: list[tuple[str | None, str]], clause: str) -> list[str]:
    if len(tokens) < 3 or tokens[0][1] != "(" or tokens[-1][1] != ")":
        raise UsageError(f"cannot read the search clause {clause!r}: IN takes a list, IN (A,B)")
    values, expect_value = [], True
    for kind, text in tokens[1:-1]:
        if expect_value and kind in ("word", "quoted"):
            values.append(_value((kind, text)))
        elif not expect_value and text == ",":
            pass
        else:
            raise UsageError(f"cannot read the search clause {clause!r}: IN takes a list, IN (A,B)")
        expect_value = not expect_value
    if expect_value:  # empty list or a trailing comma
        raise UsageError(f"cannot read the search clause {clause!r}: IN takes a list, IN (A,B)")
    return values


def _value(token: tuple[str | None, str]) -> str:
    kind, text = token
    return text[1:-1] if kind == "quoted" else text


def parse_time(text: str, *, clause: str | None = None, now: int | None = None) -> int:
    """Epoch ms of ``text``: epoch ms, an ISO date or date/time (UTC unless it names a zone), or,
    outside a query, a time ago (``30s``, ``15m``, ``2h``, ``7d``, ``1w``)."""
    value = text.strip()
    where = f"the search clause {clause!r}" if clause is not None else f"the time {text!r}"
    if re.fullmatch(r"\d{1,15}", value):
        return int(value)
    relative = _RELATIVE.match(value)
    if relative and clause is None:
        return (now if now is not None else now_ms()) - int(relative.group(1)) * _UNITS[
            relative.group(2)
        ] * 1000
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        hint = " or a time ago (30s, 15m, 2h, 7d, 1w)" if clause is None else ""
        raise UsageError(
            f"{where}: {text!r} is not a time (epoch milliseconds, an ISO date/time{hint})"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _with_free_text(criteria: Criteria, free_text: str | None) -> Criteria:
    """``free_text``: ``*`` (or empty) is every execution; a workflow id is that one execution; any
    other text is refused (there is no full-text index)."""
    text = (free_text or "").strip()
    if text in ("", "*"):
        return criteria
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", text):
        raise UsageError(
            f"freeText {text!r}: full-text search is not supported; use '*' or a workflow id, and the "
            "query for workflowType, status, correlationId and startTime"
        )
    ids = frozenset({text}) if criteria.ids is None else criteria.ids & {text}
    return replace(criteria, ids=ids)


def _ascending(sort: str | Sequence[str] | None) -> bool:
    """Whether ``sort`` (Conductor's ``field:ASC|DESC``, one or a list) asks for oldest first."""
    orders = [sort] if isinstance(sort, str) else list(sort or [])
    chosen: bool | None = None
    for item in orders:
        for part in (p.strip() for p in item.split(",") if p.strip()):
            field, _, order = part.partition(":")
            order = (order or "ASC").strip().upper()
            if field.strip() != "startTime" or order not in ("ASC", "DESC"):
                raise UsageError(f"cannot sort by {part!r}: only startTime:ASC or startTime:DESC")
            chosen = order == "ASC"
    return bool(chosen)
