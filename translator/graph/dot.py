"""A diagram as a Graphviz ``digraph``, statuses as fill colours.

Shapes: start a circle, end a double circle, TERMINATE a double octagon, a task a rounded box,
SUB_WORKFLOW a box with a thick border, DYNAMIC a dashed box, SWITCH a diamond, fork, join and
loop bars thin dark boxes (a dynamic fork's dashed), a dynamic fork's spawned tasks a 3-D box; a
DO_WHILE is a cluster with a dashed loop-back edge. Labels are double-quoted strings with ``\\``
and ``"`` escaped.
"""

from __future__ import annotations

from translator.graph.flat import Cluster, Edge, flatten
from translator.graph.model import Box, Diagram, Shape
from translator.graph.style import EDGE_COLOURS, EDGE_DIMMED, EDGE_WIDTHS, TOOLTIP_LIMIT, clip, shade

FONT = "Helvetica,Arial,sans-serif"
SHAPES: dict[Shape, str] = {
    Shape.START: "shape=circle, style=filled, width=0.6, fixedsize=true, fontsize=10",
    Shape.END: "shape=doublecircle, style=filled, width=0.5, fixedsize=true, fontsize=10",
    Shape.TERMINATE: "shape=doubleoctagon, style=filled",
    Shape.TASK: 'shape=box, style="rounded,filled"',
    Shape.SUB_WORKFLOW: 'shape=box, style="rounded,filled", penwidth=3',
    Shape.DYNAMIC: 'shape=box, style="rounded,filled,dashed", penwidth=1.5',
    Shape.SWITCH: "shape=diamond, style=filled",
    Shape.SPAWNED: 'shape=box3d, style="filled,dashed"',
}
BAR = 'shape=box, style=filled, height=0.25, margin="0.3,0.02", fontsize=10'
DYNAMIC_BAR = 'shape=box, style="filled,dashed", penwidth=2, height=0.25, margin="0.3,0.02", fontsize=10'


def quote(value: str) -> str:
    """``value`` as a DOT double-quoted string (Graphviz reads HTML entities in labels, so ``&`` is
    escaped too)."""
    escaped = value.replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


def render_dot(drawing: Diagram) -> str:
    graph = flatten(drawing)
    title = drawing.title
    if drawing.workflow_id is not None:
        title += f"\nexecution {drawing.workflow_id}: {drawing.workflow_status}"
    lines = [
        "digraph workflow {",
        f"    graph [label={quote(title)}, labelloc=t, fontname={quote(FONT)}, nodesep=0.3, ranksep=0.35];",
        f'    node [fontname={quote(FONT)}, fontsize=11, margin="0.15,0.06"];',
        f"    edge [fontname={quote(FONT)}, fontsize=10, arrowsize=0.7];",
    ]
    _members(graph.members, lines, "    ", graph.coloured)
    lines += ["    " + _edge(edge) for edge in graph.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _members(members: list[Box | Cluster], lines: list[str], indent: str, coloured: bool) -> None:
    for member in members:
        if isinstance(member, Cluster):
            lines.append(f"{indent}subgraph cluster_{member.id} {{")
            lines.append(f'{indent}    label=""; style="rounded,dashed"; color="#9e9e9e";')
            _members(member.members, lines, indent + "    ", coloured)
            lines.append(f"{indent}}}")
        else:
            lines.append(f"{indent}{_node(member, coloured)}")


def _node(box: Box, coloured: bool) -> str:
    paint = shade(box.status, coloured, bar=box.is_bar)
    if box.is_bar:
        look = DYNAMIC_BAR if box.shape is Shape.DYNAMIC_FORK else BAR
    else:
        look = SHAPES.get(box.shape, SHAPES[Shape.TASK])
    label = quote("\n".join(box.lines))
    tooltip = f", tooltip={quote(clip(box.ref, TOOLTIP_LIMIT))}" if box.ref is not None else ""
    colours = f'fillcolor="{paint.fill}", color="{paint.stroke}", fontcolor="{paint.text}"'
    return f"{box.id} [label={label}, {look}, {colours}{tooltip}];"


def _edge(edge: Edge) -> str:
    colour = EDGE_COLOURS[edge.state]
    attributes = [f'color="{colour}"', f"penwidth={EDGE_WIDTHS[edge.state]}"]
    if edge.label:
        attributes += [f"label={quote(edge.label)}", f'fontcolor="{colour}"']
    if edge.state == EDGE_DIMMED or edge.loop:
        attributes.append("style=dashed")
    if edge.loop:  # drawn from the loop's bar to its end, the arrow pointing back at the bar
        attributes += ["dir=back", "arrowtail=normal"]
    return f"{edge.source.id} -> {edge.target.id} [{', '.join(attributes)}];"
