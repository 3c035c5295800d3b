"""A diagram as nodes and edges (what mermaid and dot take), its DO_WHILE frames as clusters.

An edge leaves every open end of what comes before (the last box of each lane of a split, or a
switch itself for an empty case, with the case as label) for the next box, as Conductor's UI links
its tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from translator.graph.model import Box, Diagram, Frame, Item, Shape, Split
from translator.graph.style import EDGE_DIMMED, EDGE_PLAIN, EDGE_RAN, EDGE_TAKEN


@dataclass(frozen=True, slots=True)
class Edge:
    source: Box
    target: Box
    label: str | None = None
    state: str = EDGE_PLAIN  # style.EDGE_*
    loop: bool = False  # the loop-back edge of a DO_WHILE (drawn from ``target`` back to ``source``)


@dataclass
class Cluster:
    """A DO_WHILE frame: its boxes and nested clusters, in drawing order."""

    id: str
    members: list[Box | Cluster] = field(default_factory=list)


@dataclass
class Graph:
    title: str
    coloured: bool
    members: list[Box | Cluster]
    edges: list[Edge]

    def boxes(self) -> list[Box]:
        found: list[Box] = []

        def visit(members: list[Box | Cluster]) -> None:
            for member in members:
                if isinstance(member, Cluster):
                    visit(member.members)
                else:
                    found.append(member)

        visit(self.members)
        return found


@dataclass(frozen=True, slots=True)
class _Tail:
    """An open end waiting for the next box: the edge's source, label and whether it was taken."""

    box: Box
    label: str | None = None
    taken: bool | None = None


def flatten(drawing: Diagram) -> Graph:
    graph = Graph(drawing.title, drawing.coloured, [], [])
    _Flattener(graph).items(drawing.items, [], graph.members)
    return graph


class _Flattener:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def items(self, items: tuple[Item, ...], tails: list[_Tail], scope: list[Box | Cluster]) -> list[_Tail]:
        for item in items:
            tails = self.item(item, tails, scope)
        return tails

    def item(self, item: Item, tails: list[_Tail], scope: list[Box | Cluster]) -> list[_Tail]:
        if isinstance(item, Box):
            self.place(item, tails, scope)
            return [] if item.shape is Shape.TERMINATE else [_Tail(item)]
        if isinstance(item, Split):
            self.place(item.head, tails, scope)
            ends: list[_Tail] = []
            for lane in item.lanes:
                ends += self.items(lane.items, [_Tail(item.head, lane.label, lane.taken)], scope)
            if item.join is None:
                return ends
            self.place(item.join, ends, scope)
            return [_Tail(item.join)] if ends else []  # every lane ended in a TERMINATE
        return self.frame(item, tails, scope)

    def frame(self, frame: Frame, tails: list[_Tail], scope: list[Box | Cluster]) -> list[_Tail]:
        cluster = Cluster(f"{frame.head.id}_loop")
        scope.append(cluster)
        self.place(frame.head, tails, cluster.members)
        ends = self.items(frame.body, [_Tail(frame.head)], cluster.members)
        self.place(frame.foot, ends, cluster.members)
        state = self.state(frame.head, frame.foot) if self.graph.coloured else EDGE_PLAIN
        self.graph.edges.append(Edge(frame.head, frame.foot, frame.condition or None, state, loop=True))
        return [_Tail(frame.foot)]

    def place(self, box: Box, tails: list[_Tail], scope: list[Box | Cluster]) -> None:
        scope.append(box)
        for tail in tails:
            if not self.graph.coloured:
                state = EDGE_PLAIN
            elif tail.taken is not None:
                state = EDGE_TAKEN if tail.taken else EDGE_DIMMED
            else:
                state = self.state(tail.box, box)
            self.graph.edges.append(Edge(tail.box, box, tail.label, state))

    @staticmethod
    def state(source: Box, target: Box) -> str:
        return EDGE_RAN if source.ran and target.ran else EDGE_DIMMED
