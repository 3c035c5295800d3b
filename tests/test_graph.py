"""translator graph: plans drawn as Conductor's UI draws them (mermaid, dot, SVG), coloured by executions.

The drawing is checked through its format-free form (translator.graph.model / flat) and through each
format's text: mermaid labels decoded back from their entities, dot labels unquoted, SVG parsed with
xml.etree. Colouring is a pure function of the plan and an execution dict (hand-made records, or a
real embedded run's ``--full`` output); one CLI test reads an execution from a private redis-server.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CORPUS, ROOT, corpus_missing, corpus_params, require_corpus
from tests.services import embedded_env, free_port, translator_cli
from translator.definitions.issues import Level
from translator.definitions.jsonsource import read_file
from translator.definitions.loader import DocumentKind, detect_kind
from translator.definitions.validate import check_file
from translator.engine.plan import Plan, Sequence, walk
from translator.errors import UsageError
from translator.graph import FORMATS, diagram, execution_view, render
from translator.graph.dot import quote
from translator.graph.flat import Cluster, Graph, flatten
from translator.graph.model import Box, Shape
from translator.graph.style import COMPLETED, FAILED, NOT_RUN, RUNNING, SCHEDULED, SKIPPED, clip, visible
from translator.runner import prepare

SVG = "{http://www.w3.org/2000/svg}"
TAKEN_BLUE = "#1565c0"


def simple(ref: str, name: str = "echo") -> dict[str, Any]:
    return {"name": name, "taskReferenceName": ref, "type": "SIMPLE"}


def switch(ref: str, cases: dict[str, list], default: list | None = None, kind: str = "SWITCH") -> dict:
    task = {"name": ref, "taskReferenceName": ref, "type": kind, "decisionCases": cases}
    task["defaultCase"] = default or []
    task["inputParameters"] = {"k": "${workflow.input.k}"}
    if kind == "SWITCH":
        task.update(evaluatorType="value-param", expression="k")
    else:
        task["caseValueParam"] = "k"
    return task


def fork(ref: str, *branches: list, join: str | None = None) -> list[dict[str, Any]]:
    ends = [branch[-1]["taskReferenceName"] for branch in branches if branch]
    return [
        {"name": ref, "taskReferenceName": ref, "type": "FORK_JOIN", "forkTasks": list(branches)},
        {"name": "join", "taskReferenceName": join or f"{ref}_join", "type": "JOIN", "joinOn": ends},
    ]


def loop(ref: str, body: list, condition: str | None = None) -> dict[str, Any]:
    return {
        "name": ref,
        "taskReferenceName": ref,
        "type": "DO_WHILE",
        "loopCondition": condition or f"$.{ref}['iteration'] < 2",
        "loopOver": body,
    }


def terminate(ref: str, status: str = "FAILED") -> dict[str, Any]:
    return {
        "name": ref,
        "taskReferenceName": ref,
        "type": "TERMINATE",
        "inputParameters": {"terminationStatus": status},
    }


def dynamic_fork(ref: str, join: str) -> list[dict[str, Any]]:
    return [
        {
            "name": ref,
            "taskReferenceName": ref,
            "type": "FORK_JOIN_DYNAMIC",
            "dynamicForkTasksParam": "tasks",
            "dynamicForkTasksInputParamName": "inputs",
            "inputParameters": {"tasks": "${workflow.input.tasks}", "inputs": "${workflow.input.inputs}"},
        },
        {"name": "join", "taskReferenceName": join, "type": "JOIN"},
    ]


def write_workflow(directory: Path, tasks: list, name: str = "graph_test", **extra: Any) -> Path:
    path = directory / f"{name}.json"
    definition = {"name": name, "version": 1, "schemaVersion": 2, "tasks": tasks, **extra}
    path.write_text(json.dumps(definition))
    return path


def plan_of(directory: Path, tasks: list, **extra: Any) -> Plan:
    return prepare(write_workflow(directory, tasks, **extra))


def boxes_by_ref(graph: Graph) -> dict[str, Box]:
    return {box.ref: box for box in graph.boxes() if box.ref is not None and box.shape is not Shape.LOOP_END}


def edges(graph: Graph) -> set[tuple[str, str, str | None]]:
    """(source title, target title, label) of every forward edge."""
    return {(e.source.title, e.target.title, e.label) for e in graph.edges if not e.loop}


def record(ref: str, status: str, seq: int, **fields: Any) -> dict[str, Any]:
    return {"referenceTaskName": ref, "status": status, "seq": seq, "taskType": "SIMPLE", **fields}


# ---------------------------------------------------------------------------------------------
# Shapes and edges


KITCHEN = [
    simple("first"),
    {"name": "calc", "taskReferenceName": "calc", "type": "INLINE", "inputParameters": {
        "evaluatorType": "graaljs", "expression": "1"}},
    {"name": "pause", "taskReferenceName": "pause", "type": "WAIT"},
    switch("route", {"a": [simple("in_a")], "skip": [], "stop": [terminate("halt")]}, [simple("other")]),
    *fork("fan", [simple("left1"), simple("left2")], [simple("right")]),
    *dynamic_fork("spread", "gather"),
    loop("again", [simple("body")]),
    {"name": "dyn", "taskReferenceName": "dyn", "type": "DYNAMIC", "dynamicTaskNameParam": "which",
     "inputParameters": {"which": "${workflow.input.which}"}},
    {"name": "child", "taskReferenceName": "child", "type": "SUB_WORKFLOW", "subWorkflowParam": {
        "name": "inner_wf", "version": 3, "workflowDefinition": {
            "name": "inner_wf", "version": 3, "tasks": [simple("inner")]}}},
    {"name": "kick", "taskReferenceName": "kick", "type": "START_WORKFLOW",
     "inputParameters": {"startWorkflow": {"name": "other_wf", "version": 2}}},
    simple("last"),
]  # fmt: skip


@pytest.fixture
def kitchen(tmp_path) -> Plan:
    return plan_of(tmp_path, KITCHEN)


def test_every_node_kind_has_its_shape(kitchen):
    graph = flatten(diagram(kitchen))
    shapes = {ref: box.shape for ref, box in boxes_by_ref(graph).items()}
    assert shapes == {
        "first": Shape.TASK,
        "calc": Shape.TASK,
        "pause": Shape.TASK,
        "route": Shape.SWITCH,
        "in_a": Shape.TASK,
        "halt": Shape.TERMINATE,
        "other": Shape.TASK,
        "fan": Shape.FORK,
        "left1": Shape.TASK,
        "left2": Shape.TASK,
        "right": Shape.TASK,
        "fan_join": Shape.JOIN,
        "spread": Shape.DYNAMIC_FORK,
        "gather": Shape.JOIN,
        "again": Shape.LOOP,
        "body": Shape.TASK,
        "dyn": Shape.DYNAMIC,
        "child": Shape.SUB_WORKFLOW,
        "kick": Shape.SUB_WORKFLOW,
        "last": Shape.TASK,
    }
    titles = [box.title for box in graph.boxes()]
    assert titles[0] == "start" and titles[-1] == "end"
    by_ref = boxes_by_ref(graph)
    assert by_ref["calc"].details == ("calc", "INLINE")  # reference, then name and type under it
    assert by_ref["child"].details == ("child", "SUB_WORKFLOW", "inner_wf v3")
    assert by_ref["kick"].details == ("kick", "START_WORKFLOW", "starts other_wf v2")
    assert by_ref["dyn"].details == ("dyn", "DYNAMIC", "task named by which")
    assert by_ref["halt"].details == ("halt", "TERMINATE", "ends FAILED")
    assert by_ref["fan"].title == "fan (FORK_JOIN)"


def test_edges_follow_the_flow(kitchen):
    flow = edges(flatten(diagram(kitchen)))
    assert {
        ("start", "first", None),
        ("pause", "route", None),
        ("route", "in_a", "a"),
        ("route", "halt", "stop"),
        ("route", "other", "default"),
        ("route", "fan (FORK_JOIN)", "skip"),  # an empty case goes straight past the switch
        ("in_a", "fan (FORK_JOIN)", None),
        ("other", "fan (FORK_JOIN)", None),
        ("fan (FORK_JOIN)", "left1", None),
        ("left1", "left2", None),
        ("fan (FORK_JOIN)", "right", None),
        ("left2", "fan_join (JOIN)", None),
        ("right", "fan_join (JOIN)", None),
        ("fan_join (JOIN)", "spread (FORK_JOIN_DYNAMIC)", None),
        ("spread (FORK_JOIN_DYNAMIC)", "dynamic tasks", None),
        ("dynamic tasks", "gather (JOIN)", None),
        ("gather (JOIN)", "again (DO_WHILE)", None),
        ("again (DO_WHILE)", "body", None),
        ("body", "end of again", None),
        ("end of again", "dyn", None),
        ("last", "end", None),
    } <= flow
    assert not any(source == "halt" for source, _, _ in flow)  # TERMINATE ends its lane


def test_a_loop_is_a_cluster_with_a_labelled_loop_back_edge(tmp_path):
    condition = "if ($.again['iteration'] < $.list.length && $.more) { true; } else { false; }"
    graph = flatten(diagram(plan_of(tmp_path, [loop("again", [simple("one"), simple("two")], condition)])))
    [cluster] = [m for m in graph.members if isinstance(m, Cluster)]
    assert [m.title for m in cluster.members if isinstance(m, Box)] == [
        "again (DO_WHILE)",
        "one",
        "two",
        "end of again",
    ]
    [back] = [e for e in graph.edges if e.loop]
    assert (back.source.title, back.target.title) == ("again (DO_WHILE)", "end of again")
    assert back.label is not None and back.label.startswith("while if ($.again['iteration'] <")
    assert len(back.label) == 40 and back.label.endswith("…")  # shortened


def test_the_end_is_left_out_when_every_way_terminates(tmp_path):
    tasks = [switch("sw", {"a": [terminate("t1")]}, [terminate("t2", "COMPLETED")])]
    graph = flatten(diagram(plan_of(tmp_path, tasks)))
    assert "end" not in [box.title for box in graph.boxes()]
    open_plan = plan_of(tmp_path, [switch("sw", {"a": [terminate("t1")]}, [])])
    assert flatten(diagram(open_plan)).boxes()[-1].title == "end"


def test_structures_nest_to_any_depth(tmp_path):
    tasks: list = [simple("leaf")]
    for depth, kind in enumerate(["fork", "switch", "loop", "fork", "switch", "fork"]):  # innermost first
        if kind == "fork":
            tasks = fork(f"f{depth}", tasks, [simple(f"side{depth}")])
        elif kind == "switch":
            tasks = [switch(f"s{depth}", {"x": tasks}, [simple(f"dflt{depth}")])]
        else:
            tasks = [loop(f"l{depth}", tasks)]
    plan = plan_of(tmp_path, tasks)
    refs = {node.ref for node in walk(plan.root)}
    assert len(refs) == 15
    graph = flatten(diagram(plan))
    assert set(boxes_by_ref(graph)) == refs
    assert ("f0 (FORK_JOIN)", "leaf", None) in edges(graph) and ("leaf", "f0_join (JOIN)", None) in edges(
        graph
    )
    for fmt in FORMATS:
        drawn = render(plan, fmt)
        for ref in refs:
            assert ref in drawn, (fmt, ref)
    root = ET.fromstring(render(plan, "svg"))
    assert {g.get("data-ref") for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("node")} >= refs
    mermaid = render(plan, "mermaid")
    assert mermaid.count("subgraph ") == [line.strip() for line in mermaid.splitlines()].count("end") == 1


@dataclass(frozen=True, slots=True)
class FutureNode:
    """A node kind the plan may carry later: only ``ref``, ``name``, ``type`` and ``kind``."""

    ref: str
    name: str
    type: str
    kind: str = "future"


def test_an_unknown_node_kind_draws_as_a_task_box(tmp_path):
    plan = plan_of(tmp_path, [simple("before")])
    plan = replace(plan, root=Sequence((*plan.root.nodes, FutureNode("later", "later_task", "SHINY_NEW"))))
    graph = flatten(diagram(plan))
    later = boxes_by_ref(graph)["later"]
    assert (later.shape, later.details) == (Shape.TASK, ("later_task", "SHINY_NEW"))
    assert ("before", "later", None) in edges(graph)
    executed = {"status": "RUNNING", "tasks": [record("later", "IN_PROGRESS", 1)]}
    for fmt in FORMATS:
        assert "SHINY_NEW" in render(plan, fmt, executed)


def test_an_unknown_format_is_a_usage_error(kitchen):
    with pytest.raises(UsageError, match="unknown graph format 'png'"):
        render(kitchen, "png")


# ---------------------------------------------------------------------------------------------
# Escaping


HOSTILE = [
    'a"b]c',
    "end",
    "x --> y",
    "<script>alert(1)</script>",
    "#quot;&amp;",
    "%%comment",
    "line\nbreak\u2028sep",
    "|pipe|`tick`;",
    "sub{graph}[x](y)",
    "emoji 🚀 ü",
    "back\\slash\\n",
    "class st_failed",
    "\x00nul\x1b\ud800\ufffe",
    "x" * 500,
]


@pytest.fixture
def hostile(tmp_path) -> Plan:
    tasks = [simple(ref, name=f"n{i}") for i, ref in enumerate(HOSTILE)]
    tasks.append(switch('sw"{}', {'c"|]': [simple("in case")], "<b>": []}))
    tasks.append(loop('lo"op', [simple('body"')], 'if ($.x < 3 && "a" != "|") { true; }'))
    return plan_of(tmp_path, tasks, name="hostile_wf")


def test_visible_escapes_what_no_label_can_hold():
    assert visible("plain ü 🚀 \u00a0") == "plain ü 🚀 \u00a0"
    assert visible("a\nb\tc\x00\u2028\ud800\ufffe") == "a\\nb\\tc\\x00\\u2028\\ud800\\ufffe"
    assert clip("x" * 100) == "x" * 59 + "…"


def test_mermaid_labels_hold_only_safe_characters_and_decode_back(hostile):
    text = render(hostile, "mermaid")
    assert text.startswith("%% hostile_wf v1\nflowchart TD\n")
    declared = _mermaid_labels(text)
    assert len(declared) == len(HOSTILE) + 7  # the tasks, switch, in case, loop, body, loop end, start, end
    for label in declared.values():
        assert re.fullmatch(r"[\w\s_\-.,:/()=+@!?*'$~#;]*(<br/>[\w\s_\-.,:/()=+@!?*'$~#;]*)*", label), label
    assert {clip(ref) for ref in HOSTILE} <= _mermaid_titles(text)
    ids = re.findall(r"^\s+(\S+) -\.?->", text, re.M)
    assert set(ids) <= set(declared)
    assert '-->|"c#34;#124;#93;"|' in text and '-->|"#60;b#62;"|' in text


def _mermaid_labels(text: str) -> dict[str, str]:
    """Node id -> the quoted label of its declaration."""
    declared = {}
    for line in text.splitlines():
        found = re.fullmatch(r'\s+(n\d+|wf_start|wf_end)[\[({/\\]+"([^"]*)"[\])}/\\]+', line)
        if found:
            declared[found.group(1)] = found.group(2)
    return declared


def _mermaid_titles(text: str) -> set[str]:
    """The first line of every node's label, entities decoded."""
    return {
        re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), label).split("<br/>")[0]
        for label in _mermaid_labels(text).values()
    }


def _dot_strings(text: str) -> list[str]:
    return [
        re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s).replace("&amp;", "&")
        for s in re.findall(r'label="((?:[^"\\]|\\.)*)"', text)
    ]


def test_dot_labels_are_quoted_and_unquote_back(hostile):
    text = render(hostile, "dot")
    labels = _dot_strings(text)
    firsts = {label.split("\n")[0] for label in labels}
    assert {clip(ref) for ref in HOSTILE} <= firsts
    assert quote('a"b\\c\nd&e') == '"a\\"b\\\\c\\nd&amp;e"'
    ids = [i for i in re.findall(r"^\s+(\S+) (?:\[|->)", text, re.M) if i not in ("graph", "node", "edge")]
    assert ids and all(re.fullmatch(r"n\d+|wf_start|wf_end", node) for node in ids)
    if shutil.which("dot"):  # Graphviz, where installed, reads it
        result = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr


def test_svg_is_valid_xml_and_keeps_every_reference(hostile):
    root = ET.fromstring(render(hostile, "svg"))
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("node ")]
    refs = {g.get("data-ref") for g in nodes}
    assert {clip(ref, 400) for ref in HOSTILE} <= refs
    shown = {"".join(g.find(f"{SVG}text").itertext()) for g in nodes}
    assert any(text.startswith("<script>alert(1)</script>") for text in shown)
    assert all(re.fullmatch(r"n\d+|wf_start|wf_end", g.get("id")) for g in nodes)


# ---------------------------------------------------------------------------------------------
# Colouring (pure: the plan and an execution dict)


@pytest.fixture
def coloured(tmp_path) -> Plan:
    tasks = [
        simple("first"),
        switch("route", {"a": [simple("in_a")], "b": [simple("in_b")]}, [simple("other")]),
        loop("again", [simple("body")]),
        *dynamic_fork("spread", "gather"),
        simple("last"),
    ]
    return plan_of(tmp_path, tasks)


EXECUTION = {
    "workflowId": "wf-1",
    "status": "RUNNING",
    "tasks": [
        record("first", "FAILED", 1),
        record("first", "COMPLETED", 2),  # the retry wins
        record("route", "COMPLETED", 3, taskType="SWITCH", outputData={"evaluationResult": ["b"]}),
        record("in_b", "COMPLETED", 4),
        record("again", "COMPLETED", 5, taskType="DO_WHILE", iteration=2),
        record("body__1", "COMPLETED", 6, iteration=1),
        record("body__2", "TIMED_OUT", 7, iteration=2),  # the latest iteration wins
        record("spread", "COMPLETED", 8, taskType="FORK", inputData={"forkedTasks": ["x", "y", "z", "w"]}),
        record("x", "COMPLETED", 9),
        record("y", "FAILED_WITH_TERMINAL_ERROR", 10),
        record("z", "SCHEDULED", 11),
        record("w", "CANCELED", 12),
        record("gather", "IN_PROGRESS", 13, taskType="JOIN"),
    ],
}


def test_execution_view_takes_each_references_latest_record(coloured):
    view = execution_view(coloured, EXECUTION)
    assert view.statuses == {
        "first": "COMPLETED",
        "route": "COMPLETED",
        "in_b": "COMPLETED",
        "again": "COMPLETED",
        "body": "TIMED_OUT",
        "spread": "COMPLETED",
        "gather": "IN_PROGRESS",
    }
    assert view.attempts["first"] == 2 and view.attempts["body"] == 1
    assert view.taken == {"route": 1}  # cases a, b, then the default
    assert view.iterations == {"again": 2}
    tally = view.spawned["spread"]
    assert (tally.total, tally.completed, tally.failed, tally.pending, tally.canceled) == (4, 1, 1, 1, 1)
    assert tally.status == "IN_PROGRESS"
    assert (view.workflow_id, view.workflow_status, view.terminated) == ("wf-1", "RUNNING", False)


def test_the_diagram_shows_statuses_attempts_iterations_and_spawned_tasks(coloured):
    graph = flatten(diagram(coloured, EXECUTION))
    by_ref = boxes_by_ref(graph)
    assert by_ref["first"].details[-1] == "2 attempts"
    assert by_ref["again"].title == "again (DO_WHILE), iteration 2"
    spawned = next(box for box in graph.boxes() if box.shape is Shape.SPAWNED)
    assert spawned.lines == ("1 of 4 tasks succeeded", "1 pending", "1 failed", "1 canceled")
    assert spawned.status == "IN_PROGRESS"
    assert by_ref["in_a"].status is None and by_ref["last"].status is None
    route = [(e.label, e.state) for e in graph.edges if e.source.ref == "route"]
    assert route == [("a", "dimmed"), ("b", "taken"), ("default", "dimmed")]
    assert [e.state for e in graph.edges if e.source.ref == "first"] == ["ran"]


def test_a_switch_falls_to_its_default_as_conductor_picks_it(tmp_path):
    plan = plan_of(tmp_path, [switch("d", {"a": [], "b": [simple("in_b")]}, [simple("dflt")], "DECISION")])

    def taken(value: Any) -> int | None:
        output = {"caseOutput": [value]}
        return execution_view(plan, {"tasks": [record("d", "COMPLETED", 1, outputData=output)]}).taken.get(
            "d"
        )

    assert taken("b") == 1
    assert taken("zzz") == 2  # no such case
    assert taken("a") == 2  # DECISION: an empty matched case runs the default
    assert execution_view(plan, {"tasks": [record("d", "IN_PROGRESS", 1)]}).taken == {}


@pytest.mark.parametrize(
    ("status", "paint"),
    [
        ("COMPLETED", COMPLETED),
        ("FAILED", FAILED),
        ("FAILED_WITH_TERMINAL_ERROR", FAILED),
        ("TIMED_OUT", FAILED),
        ("IN_PROGRESS", RUNNING),
        ("SCHEDULED", SCHEDULED),
        ("CANCELED", SKIPPED),
        ("SKIPPED", SKIPPED),
        (None, NOT_RUN),
    ],
)
def test_each_status_has_its_colour_in_every_format(tmp_path, status, paint):
    plan = plan_of(tmp_path, [simple("only"), simple("next")])
    tasks = [record("only", status, 1)] if status else []
    execution = {"workflowId": "w", "status": "RUNNING", "tasks": tasks}
    mermaid = render(plan, "mermaid", execution)
    classes = dict(re.findall(r"^\s+class (\S+) (\S+)$", mermaid, re.M))
    ids = next(ids for ids, name in classes.items() if name == paint.name)
    assert "n1" in ids.split(",")
    assert f"classDef {paint.name} fill:{paint.fill},stroke:{paint.stroke}" in mermaid
    dot = render(plan, "dot", execution)
    assert re.search(rf'^\s+n1 \[.*fillcolor="{paint.fill}"', dot, re.M)
    root = ET.fromstring(render(plan, "svg", execution))
    [node] = [g for g in root.iter(f"{SVG}g") if g.get("data-ref") == "only"]
    assert node.find(f"{SVG}rect").get("fill") == paint.fill
    assert (node.get("data-status") or None) == status


def test_the_taken_case_edge_is_highlighted_in_every_format(coloured):
    mermaid = render(coloured, "mermaid", EXECUTION)
    edge_lines = [line.strip() for line in mermaid.splitlines() if re.match(r"\s+\S+ -\.?->", line)]
    taken_index = next(i for i, line in enumerate(edge_lines) if '|"b"|' in line)
    styles = dict(re.findall(r"^\s+linkStyle (\S+) (.*)$", mermaid, re.M))
    blue = next(style for indexes, style in styles.items() if str(taken_index) in indexes.split(","))
    assert f"stroke:{TAKEN_BLUE}" in blue
    assert sum(f"stroke:{TAKEN_BLUE}" in style for style in styles.values()) == 1
    dot = render(coloured, "dot", EXECUTION)
    [taken] = [line for line in dot.splitlines() if TAKEN_BLUE in line]
    assert 'label="b"' in taken
    root = ET.fromstring(render(coloured, "svg", EXECUTION))
    taken_paths = [p for p in root.iter(f"{SVG}path") if p.get("class") == "edge taken"]
    assert len(taken_paths) == 1 and taken_paths[0].get("stroke") == TAKEN_BLUE
    labels = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge-label taken"]
    assert ["".join(g.itertext()) for g in labels] == ["b"]


def test_a_definition_drawing_has_no_status(kitchen):
    graph = flatten(diagram(kitchen))
    assert all(box.status is None for box in graph.boxes())
    assert {edge.state for edge in graph.edges} == {"plain"}
    assert "st_not_run" not in render(kitchen, "mermaid") and "legend" not in render(kitchen, "svg")


# ---------------------------------------------------------------------------------------------
# A real execution (embedded run, its --full output)


REAL = [
    switch("route", {"png": [simple("to_png")], "gif": [simple("to_gif")]}, [simple("other")]),
    {
        "name": "spread",
        "taskReferenceName": "spread",
        "type": "FORK_JOIN_DYNAMIC",
        "inputParameters": {"forkTaskName": "add", "forkTaskInputs": "${workflow.input.pairs}"},
    },
    {"name": "gather", "taskReferenceName": "gather", "type": "JOIN"},
    loop("again", [simple("body")]),
]


def test_a_real_execution_colours_its_graph(tmp_path):
    path = write_workflow(tmp_path, REAL, name="real_run")
    run_input = {"k": "gif", "pairs": [{"a": 1, "b": 2}, {"a": 3, "b": "x"}]}  # the second add fails
    taskdefs = ROOT / "tests" / "fixtures" / "runtime" / "taskdefs"
    args = ["run", str(path), "--taskdefs", str(taskdefs), "--input", "-", "--full", "--timeout", "60"]
    result = translator_cli(*args, env=embedded_env(), stdin=json.dumps(run_input), timeout=120)
    execution = json.loads(result.stdout)
    assert execution["status"] == "FAILED", result.stderr
    plan = prepare(path, [taskdefs])
    graph = flatten(diagram(plan, execution))
    by_ref = boxes_by_ref(graph)
    assert {ref: box.status for ref, box in by_ref.items()} == {
        "route": "COMPLETED",
        "to_png": None,
        "to_gif": "COMPLETED",
        "other": None,
        "spread": "COMPLETED",
        "gather": "CANCELED",
        "again": None,
        "body": None,
    }
    spawned = next(box for box in graph.boxes() if box.shape is Shape.SPAWNED)
    assert (spawned.title, spawned.details, spawned.status) == (
        "1 of 2 tasks succeeded",
        ("1 failed",),
        "FAILED",
    )
    assert [e.state for e in graph.edges if e.source.ref == "route"] == ["dimmed", "taken", "dimmed"]
    assert graph.boxes()[-1].status is None  # the end: not reached
    assert_clean_layout(render(plan, "svg", execution))


# ---------------------------------------------------------------------------------------------
# The SVG layout


def _bbox(node: ET.Element) -> tuple[float, float, float, float]:
    """The box (left, top, right, bottom) of a node's outline."""
    xs: list[float] = []
    ys: list[float] = []
    for shape in node:
        if shape.tag == f"{SVG}rect":
            x, y, w, h = (float(shape.get(a)) for a in ("x", "y", "width", "height"))
            xs += [x, x + w]
            ys += [y, y + h]
        elif shape.tag == f"{SVG}circle":
            cx, cy, r = (float(shape.get(a)) for a in ("cx", "cy", "r"))
            xs += [cx - r, cx + r]
            ys += [cy - r, cy + r]
        elif shape.tag == f"{SVG}polygon":
            for point in shape.get("points").split():
                x, y = (float(v) for v in point.split(","))
                xs.append(x)
                ys.append(y)
    return min(xs), min(ys), max(xs), max(ys)


def assert_clean_layout(svg: str) -> None:
    """Nodes inside the picture, none overlapping another; every edge inside the picture."""
    root = ET.fromstring(svg)
    width, height = float(root.get("width")), float(root.get("height"))
    boxes = [_bbox(g) for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("node ")]
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap = a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5
            assert not overlap, (a, b)
    for path in root.iter(f"{SVG}path"):
        if "edge" in (path.get("class") or ""):
            for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", path.get("d")):
                assert 0 <= float(x) <= width and 0 <= float(y) <= height


def test_the_svg_layout_is_clean(kitchen, hostile, coloured):
    for plan in (kitchen, hostile, coloured):
        assert_clean_layout(render(plan, "svg"))
    assert_clean_layout(render(coloured, "svg", EXECUTION))


def test_the_layout_check_catches_overlaps(kitchen):
    svg = render(kitchen, "svg")
    first = re.search(r'<g id="n1"[^>]*><title>[^<]*</title><rect x="([\d.]+)" y="([\d.]+)"', svg)
    assert first is not None
    second = r'(<g id="n2"[^>]*><title>[^<]*</title><rect x=")[\d.]+(" y=")[\d.]+'
    moved = re.sub(second, rf"\g<1>{first.group(1)}\g<2>{first.group(2)}", svg)
    assert moved != svg
    assert_clean_layout(svg)
    with pytest.raises(AssertionError):
        assert_clean_layout(moved)


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_prints_mermaid_by_default(tmp_path):
    path = write_workflow(tmp_path, KITCHEN, name="cli_default")
    result = translator_cli("graph", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("%% cli_default v1\nflowchart TD\n")
    assert result.stderr == ""


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_writes_each_format_to_a_file(tmp_path, fmt):
    path = write_workflow(tmp_path, KITCHEN, name="cli_file")
    out = tmp_path / f"graph.{fmt}"
    result = translator_cli("graph", str(path), "--format", fmt, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert out.read_text() == render(prepare(path), fmt)


def test_cli_formats_are_the_modules():
    result = translator_cli("graph", "--help")
    assert f"--format [{'|'.join(FORMATS)}]" in result.stdout


def test_cli_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"name": "w", "tasks": [{"name": "h", "taskReferenceName": "h", "type": "NO_SUCH_TYPE"}]}'
    )
    graphed = translator_cli("graph", str(bad))
    compiled = translator_cli("compile", "--dry-run", str(bad))
    assert graphed.returncode == compiled.returncode == 1
    assert graphed.stderr == compiled.stderr and f"{bad}:/tasks/0/type" in graphed.stderr
    assert "Traceback" not in graphed.stderr and graphed.stdout == ""
    good = write_workflow(tmp_path, [simple("a")])
    unknown = translator_cli("graph", str(good), "--format", "png")
    assert unknown.returncode == 2 and "'png' is not one of" in unknown.stderr
    missing = translator_cli("graph", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    unwritable = translator_cli("graph", str(good), "-o", str(tmp_path / "no" / "dir" / "g.mmd"))
    assert unwritable.returncode == 2 and "error: cannot write" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr


def test_cli_execution_from_the_state_store(tmp_path, redis_url):
    from translator.store.records import start_workflow
    from translator.store.state import RedisStore

    path = write_workflow(tmp_path, [simple("a"), simple("b")], name="stored")
    store = RedisStore(redis_url)
    started = start_workflow(store, prepare(path), {})
    assert started is not None
    wf_id = started[0]
    env = {**embedded_env(None), "TRANSLATOR_STATE_URL": redis_url}
    result = translator_cli("graph", str(path), "--format", "dot", "--execution", wf_id, env=env)
    assert result.returncode == 0, result.stderr
    assert f"execution {wf_id}: RUNNING" in result.stdout
    assert re.search(rf'^\s+n1 \[label="a.*fillcolor="{SCHEDULED.fill}"', result.stdout, re.M)
    assert re.search(rf'^\s+n2 \[label="b.*fillcolor="{NOT_RUN.fill}"', result.stdout, re.M)
    unknown = translator_cli("graph", str(path), "--execution", "no-such-id", env=env)
    assert unknown.returncode == 1 and "error: no workflow no-such-id in the state store" in unknown.stderr
    other = write_workflow(tmp_path, [simple("a")], name="another")
    mismatch = translator_cli("graph", str(other), "--execution", wf_id, env=env)
    assert mismatch.returncode == 2 and "is an execution of 'stored', not of 'another'" in mismatch.stderr
    down = {**env, "TRANSLATOR_STATE_URL": f"redis://127.0.0.1:{free_port()}/0"}
    unreachable = translator_cli("graph", str(path), "--execution", wf_id, env=down)
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert unreachable.stderr.startswith("error: ")


# ---------------------------------------------------------------------------------------------
# The corpus: every workflow translator validate accepts, in every format


def _accepted() -> list[str]:
    """Corpus workflow files with no validation error (as tests/test_corpus_runs.py decides)."""
    if corpus_missing() is not None:
        return []
    names = []
    for path in sorted(CORPUS.glob("*.json")):
        data, _ = read_file(path)
        if detect_kind(data) is DocumentKind.WORKFLOW and not any(
            issue.level is Level.ERROR for issue in check_file(path)
        ):
            names.append(path.name)
    return names


@pytest.mark.parametrize("name", **corpus_params(_accepted()))
def test_corpus_workflow_in_every_format(name):
    corpus = require_corpus()
    plan = prepare(corpus / name)
    refs = {node.ref for node in walk(plan.root)}
    svg = render(plan, "svg")
    root = ET.fromstring(svg)
    assert {g.get("data-ref") for g in root.iter(f"{SVG}g") if g.get("data-ref")} >= refs
    assert_clean_layout(svg)
    graph = flatten(diagram(plan))
    assert {box.ref for box in graph.boxes()} >= refs
    titles = {box.title for box in graph.boxes()}
    mermaid = render(plan, "mermaid")
    assert mermaid.splitlines()[1] == "flowchart TD"
    assert _mermaid_titles(mermaid) == titles
    dot = render(plan, "dot")
    assert dot.startswith("digraph workflow {") and dot.rstrip().endswith("}")
    assert {label.split("\n")[0] for label in _dot_strings(dot)} >= titles
    if shutil.which("dot"):
        checked = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr


def test_the_docs_example_is_the_corpus_drawing():
    """docs/graph-example.svg is what ``translator graph --format svg`` draws for the corpus file."""
    corpus = require_corpus()
    example = (ROOT / "docs" / "graph-example.svg").read_text()
    assert example == render(prepare(corpus / "oss__kitchensink__kitchensink.json"), "svg")
