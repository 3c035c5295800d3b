"""A diagram as a mermaid flowchart (``flowchart TD``), statuses as classDefs.

Shapes: start a circle, end and TERMINATE double circles, a task a rounded box, SUB_WORKFLOW a
subroutine box, DYNAMIC a parallelogram, SWITCH a diamond, fork and loop bars trapezoids (a JOIN
and a loop's end upside down), a dynamic fork's spawned tasks a hexagon; a DO_WHILE is a subgraph
with a dotted loop-back edge. Every character of a label outside a small safe set is written as a
mermaid entity (``#35;``), so no reference can break out of its quotes.
"""

from __future__ import annotations

from translator.graph.flat import Cluster, Edge, Graph, flatten
from translator.graph.model import Box, Diagram, Shape
from translator.graph.style import EDGE_COLOURS, EDGE_DIMMED, EDGE_PLAIN, EDGE_WIDTHS, Shade, shade

SAFE = frozenset(" _-.,:/()=+@!?*'$~")
SHAPES: dict[Shape, tuple[str, str]] = {
    Shape.START: ("((", "))"),
    Shape.END: ("(((", ")))"),
    Shape.TERMINATE: ("(((", ")))"),
    Shape.TASK: ("(", ")"),
    Shape.SUB_WORKFLOW: ("[[", "]]"),
    Shape.DYNAMIC: ("[/", "/]"),
    Shape.SWITCH: ("{", "}"),
    Shape.FORK: ("[/", "\\]"),
    Shape.DYNAMIC_FORK: ("[/", "\\]"),
    Shape.LOOP: ("[/", "\\]"),
    Shape.JOIN: ("[\\", "/]"),
    Shape.LOOP_END: ("[\\", "/]"),
    Shape.SPAWNED: ("{{", "}}"),
}
DASHED = frozenset({Shape.DYNAMIC_FORK, Shape.SPAWNED})


def text(value: str) -> str:
    """``value`` for inside a quoted mermaid label: letters, digits and a few signs as they are,
    everything else as ``#<code>;``."""
    return "".join(char if char.isalnum() or char in SAFE else f"#{ord(char)};" for char in value)


def render_mermaid(drawing: Diagram) -> str:
    graph = flatten(drawing)
    lines = [f"%% {_title(drawing)}", "flowchart TD"]
    _members(graph.members, lines, "    ")
    for edge in graph.edges:
        lines.append("    " + _edge(edge))
    lines += _styles(graph)
    return "\n".join(lines) + "\n"


def _title(drawing: Diagram) -> str:
    if drawing.workflow_id is None:
        return drawing.title
    return f"{drawing.title}, execution {drawing.workflow_id}: {drawing.workflow_status}"


def _members(members: list[Box | Cluster], lines: list[str], indent: str) -> None:
    for member in members:
        if isinstance(member, Cluster):
            lines.append(f'{indent}subgraph {member.id}[" "]')
            _members(member.members, lines, indent + "    ")
            lines.append(f"{indent}end")
        else:
            opening, closing = SHAPES.get(member.shape, SHAPES[Shape.TASK])
            label = "<br/>".join(text(line) for line in member.lines)
            lines.append(f'{indent}{member.id}{opening}"{label}"{closing}')


def _edge(edge: Edge) -> str:
    label = f'|"{text(edge.label)}"|' if edge.label else ""
    if edge.loop:  # from the loop's end back to its bar
        return f"{edge.target.id} -.->{label} {edge.source.id}"
    return f"{edge.source.id} -->{label} {edge.target.id}"


def _styles(graph: Graph) -> list[str]:
    boxes = graph.boxes()
    by_shade: dict[Shade, list[str]] = {}
    for box in boxes:
        by_shade.setdefault(shade(box.status, graph.coloured, bar=box.is_bar), []).append(box.id)
    lines = []
    for paint, ids in by_shade.items():
        lines.append(f"    classDef {paint.name} fill:{paint.fill},stroke:{paint.stroke},color:{paint.text}")
        lines.append(f"    class {','.join(ids)} {paint.name}")
    lines += [f"    style {box.id} stroke-dasharray:5 5" for box in boxes if box.shape in DASHED]
    by_state: dict[str, list[str]] = {}
    for index, edge in enumerate(graph.edges):
        if edge.state != EDGE_PLAIN:
            by_state.setdefault(edge.state, []).append(str(index))
    for state, indexes in by_state.items():
        dash = ",stroke-dasharray:4 4" if state == EDGE_DIMMED else ""
        width = EDGE_WIDTHS[state]
        colour = EDGE_COLOURS[state]
        lines.append(f"    linkStyle {','.join(indexes)} stroke:{colour},stroke-width:{width}px{dash}")
    return lines
