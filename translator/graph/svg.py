"""A diagram as a standalone SVG, laid out in pure Python.

A plan is series-parallel, so a recursive layout draws it cleanly: a sequence stacks its items on
one vertical axis; a fork's or a switch's lanes stand side by side under its head (a fork bar or a
diamond) and end in its JOIN bar (a switch: merge back onto its axis); a DO_WHILE's body sits in a
frame between its two bars, with the loop-back edge up its right side. Every block knows its width,
its height and its axis (where the flow enters and leaves it), and draws itself at a position.

Text widths are estimated from character classes (no font metrics): boxes are sized a little
generously. Every text and attribute is XML-escaped; each node is a ``<g>`` with ``id``, ``class``
(its shape and status), ``data-ref`` (its task reference) and a ``<title>`` tooltip.
"""

from __future__ import annotations

import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from xml.sax.saxutils import escape

from translator.graph.model import Box, Diagram, Frame, Item, Lane, Shape, Split
from translator.graph.style import (
    EDGE_COLOURS,
    EDGE_DIMMED,
    EDGE_PLAIN,
    EDGE_RAN,
    EDGE_TAKEN,
    EDGE_WIDTHS,
    NOT_RUN,
    STATUS_SHADES,
    TOOLTIP_LIMIT,
    Shade,
    clip,
    shade,
)

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
SIZE, SMALL = 12.0, 11.0  # font sizes of a title line and of the lines under it
LINE = 15.0  # line height
PAD_X, PAD_Y = 12.0, 8.0  # text padding in a box
MIN_BOX = 120.0  # narrowest task box
GAP = 32.0  # vertical space between items (an arrow)
LANE_GAP = 28.0  # horizontal space between lanes
MIN_LANE = 24.0
BAR_H = 22.0
OVERHANG = 18.0  # how far a fork bar reaches past its outer lanes
SKEW = 12.0  # slant of a DYNAMIC parallelogram
CUT = 10.0  # corner cut of a TERMINATE octagon
MERGE = 18.0  # from the longest lane of a switch down to where its lanes merge
STACK = 8.0  # offset of the cards of a dynamic fork's pile
CIRCLE = 22.0  # radius of start and end
MARGIN = 24.0
HEADER = 34.0  # height of the title line
EDGE_ORDER = {EDGE_DIMMED: 0, EDGE_PLAIN: 1, EDGE_RAN: 2, EDGE_TAKEN: 3}  # highlighted edges on top
LEGEND = (
    ("COMPLETED", "completed"),
    ("COMPLETED_WITH_ERRORS", "completed with errors"),
    ("FAILED", "failed, timed out"),
    ("IN_PROGRESS", "in progress"),
    ("SCHEDULED", "scheduled"),
    ("CANCELED", "canceled, skipped"),
)

_NARROW = frozenset("ijlft.,:;'|!()[]{}/\\` ")
_WIDE = frozenset("mwMW@%&")


def text_width(text: str, size: float = SIZE, bold: bool = False) -> float:
    """An estimate of ``text``'s width in a sans-serif font (on the wide side)."""
    units = 0.0
    for char in text:
        if char in _NARROW:
            units += 0.36
        elif char in _WIDE:
            units += 0.92
        elif unicodedata.east_asian_width(char) in ("W", "F"):
            units += 1.0
        elif char.isupper():
            units += 0.7
        elif char.isdigit():
            units += 0.64
        else:
            units += 0.6
    return units * size * (1.08 if bold else 1.0)


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


class Canvas:
    """The SVG elements, by layer: frames behind, then edges, nodes, and edge labels on top."""

    def __init__(self, coloured: bool) -> None:
        self.coloured = coloured
        self.frames: list[str] = []
        self.edges: list[tuple[int, str]] = []
        self.nodes: list[str] = []
        self.labels: list[str] = []
        self.shades: set[str] = set()

    def state(self, source_ran: bool, target_ran: bool) -> str:
        if not self.coloured:
            return EDGE_PLAIN
        return EDGE_RAN if source_ran and target_ran else EDGE_DIMMED

    def edge(self, points: list[tuple[float, float]], state: str, *, arrow: bool = True) -> None:
        kept = [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
        if len(kept) < 2:
            return
        path = " ".join(("M" if i == 0 else "L") + f"{_n(x)},{_n(y)}" for i, (x, y) in enumerate(kept))
        dash = ' stroke-dasharray="5 4"' if state == EDGE_DIMMED else ""
        marker = f' marker-end="url(#arrow-{state})"' if arrow else ""
        self.edges.append(
            (
                EDGE_ORDER[state],
                f'<path class="edge {state}" d="{path}" fill="none" stroke="{EDGE_COLOURS[state]}" '
                f'stroke-width="{EDGE_WIDTHS[state]}"{dash}{marker}/>',
            )
        )

    def label(self, x: float, y: float, text: str, state: str, anchor: str = "middle") -> None:
        """An edge label, centred on (x, y) (``anchor`` end: ending at x), on a white patch."""
        width = text_width(text, SMALL)
        left = x - width / 2 if anchor == "middle" else x - width
        colour = EDGE_COLOURS[EDGE_TAKEN] if state == EDGE_TAKEN else "#1a1a1a"
        if state == EDGE_DIMMED:
            colour = EDGE_COLOURS[EDGE_DIMMED]
        weight = ' font-weight="bold"' if state == EDGE_TAKEN else ""
        self.labels.append(
            f'<g class="edge-label {state}"><rect x="{_n(left - 3)}" y="{_n(y - 9)}" width="{_n(width + 6)}" '
            f'height="17" rx="3" fill="#ffffff" fill-opacity="0.92"/>'
            f'<text x="{_n(x)}" y="{_n(y + 4)}" text-anchor="{anchor}" font-size="{_n(SMALL)}" '
            f'fill="{colour}"{weight}>{escape(text)}</text></g>'
        )

    def node(self, box: Box, x: float, y: float, width: float, height: float) -> None:
        paint = shade(box.status, self.coloured, bar=box.is_bar)
        self.shades.add(paint.name)
        ref = clip(box.ref, TOOLTIP_LIMIT) if box.ref is not None else box.title
        tip = ref + (f": {box.status}" if box.status else "")
        data = f' data-ref="{_attr(ref)}"' if box.ref is not None else ""
        status = f' data-status="{_attr(box.status)}"' if box.status else ""
        parts = [
            f'<g id="{box.id}" class="node {box.shape.value} {paint.name}"{data}{status}>',
            f"<title>{escape(tip)}</title>",
            _outline(box, paint, x, y, width, height),
            _text(box, paint, *_text_area(box, x, y, width, height)),
            "</g>",
        ]
        self.nodes.append("".join(parts))

    def frame(self, x: float, y: float, width: float, height: float) -> None:
        self.frames.append(
            f'<rect class="loop-frame" x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" height="{_n(height)}" '
            f'rx="8" fill="#f5f7fa" stroke="#9e9e9e" stroke-dasharray="6 4"/>'
        )


def _outline(box: Box, paint: Shade, x: float, y: float, w: float, h: float) -> str:
    colours = f'fill="{paint.fill}" stroke="{paint.stroke}"'
    shape = box.shape
    if shape in (Shape.START, Shape.END):
        cx, cy = x + w / 2, y + h / 2
        inner = (
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(CIRCLE - 5)}" fill="none" stroke="{paint.stroke}"/>'
            if shape is Shape.END
            else ""
        )
        return f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(CIRCLE)}" {colours} stroke-width="1.5"/>{inner}'
    if shape is Shape.SWITCH:
        points = [(x + w / 2, y), (x + w, y + h / 2), (x + w / 2, y + h), (x, y + h / 2)]
        return _polygon(points, colours, 1.2)
    if shape is Shape.DYNAMIC:
        points = [(x + SKEW, y), (x + w, y), (x + w - SKEW, y + h), (x, y + h)]
        return _polygon(points, colours, 1.2)
    if shape is Shape.TERMINATE:
        points = [
            (x + CUT, y), (x + w - CUT, y), (x + w, y + CUT), (x + w, y + h - CUT),
            (x + w - CUT, y + h), (x + CUT, y + h), (x, y + h - CUT), (x, y + CUT),
        ]  # fmt: skip
        return _polygon(points, colours, 2.5)
    if box.is_bar:
        dash = ' stroke-dasharray="6 3"' if shape is Shape.DYNAMIC_FORK else ""
        stroke = 2.0 if shape is Shape.DYNAMIC_FORK else 1.0
        return (
            f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" {colours} '
            f'stroke-width="{_n(stroke)}"{dash}/>'
        )
    if shape is Shape.SPAWNED:  # a pile of cards, in the box's top right corner
        cards = "".join(
            f'<rect x="{_n(x + d)}" y="{_n(y + STACK - d)}" width="{_n(w - STACK)}" height="{_n(h - STACK)}" '
            f'rx="5" {colours} stroke-dasharray="4 3"/>'
            for d in (STACK, STACK / 2, 0)
        )
        return cards
    rect = f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" rx="5" {colours}'
    width = 3.5 if shape is Shape.SUB_WORKFLOW else 1.2
    return f'{rect} stroke-width="{_n(width)}"/>'


def _text_area(box: Box, x: float, y: float, w: float, h: float) -> tuple[float, float, float]:
    """Where a box's text goes: its centre line, top and height (a pile of cards: the front card)."""
    if box.shape is Shape.SPAWNED:
        return x + (w - STACK) / 2, y + STACK, h - STACK
    return x + w / 2, y, h


def _polygon(points: list[tuple[float, float]], colours: str, width: float) -> str:
    listed = " ".join(f"{_n(px)},{_n(py)}" for px, py in points)
    return f'<polygon points="{listed}" {colours} stroke-width="{_n(width)}"/>'


def _text(box: Box, paint: Shade, cx: float, y: float, height: float) -> str:
    if box.is_bar:
        return (
            f'<text x="{_n(cx)}" y="{_n(y + height / 2 + 4)}" text-anchor="middle" font-size="{_n(SMALL)}" '
            f'font-weight="bold" fill="{paint.text}">{escape(box.title)}</text>'
        )
    top = y + (height - LINE * len(box.lines)) / 2
    spans = []
    for index, line in enumerate(box.lines):
        look = f'font-size="{_n(SIZE)}" font-weight="bold"' if index == 0 else f'font-size="{_n(SMALL)}"'
        baseline = top + LINE * index + 11.5
        spans.append(f'<tspan x="{_n(cx)}" y="{_n(baseline)}" {look}>{escape(line)}</tspan>')
    return f'<text text-anchor="middle" fill="{paint.text}">{"".join(spans)}</text>'


# ---------------------------------------------------------------------------------------------
# Layout


class Block(ABC):
    """A laid-out item: ``width`` x ``height``, entered at the top and left at the bottom at
    ``axis`` (from its left edge)."""

    width: float
    height: float
    axis: float
    open: bool  # the flow goes on below it
    entry_ran: bool  # its first node ran
    exit_ran: bool  # its last node (one of them) ran

    @abstractmethod
    def draw(self, canvas: Canvas, left: float, top: float, after_ran: bool) -> None:
        """Draw at (left, top); ``after_ran``: whether what follows it ran (to colour its exits)."""


def _box_size(box: Box) -> tuple[float, float]:
    if box.shape in (Shape.START, Shape.END):
        return 2 * CIRCLE, 2 * CIRCLE
    if box.is_bar:
        return text_width(box.title, SMALL, True) + 2 * PAD_X, BAR_H
    text_w = max(text_width(line, SIZE if i == 0 else SMALL, i == 0) for i, line in enumerate(box.lines))
    text_h = LINE * len(box.lines)
    if box.shape is Shape.SWITCH:  # a diamond twice the text's size holds it
        return max(2 * text_w + 16, 96.0), max(2 * text_h, 56.0)
    width = max(text_w + 2 * PAD_X, MIN_BOX)
    if box.shape is Shape.DYNAMIC:
        width += 2 * SKEW
    elif box.shape is Shape.TERMINATE:
        width += 2 * CUT
    elif box.shape is Shape.SPAWNED:
        return width + STACK, text_h + 2 * PAD_Y + STACK
    return width, text_h + 2 * PAD_Y


class BoxBlock(Block):
    def __init__(self, box: Box) -> None:
        self.box = box
        self.width, self.height = _box_size(box)
        self.axis = self.width / 2
        self.open = box.shape is not Shape.TERMINATE
        self.entry_ran = self.exit_ran = box.ran

    def draw(self, canvas: Canvas, left: float, top: float, after_ran: bool) -> None:
        canvas.node(self.box, left, top, self.width, self.height)


class ChainBlock(Block):
    """Items one under the other, on one axis."""

    def __init__(self, blocks: list[Block]) -> None:
        self.blocks = blocks
        self.axis = max((b.axis for b in blocks), default=0.0)
        self.width = self.axis + max((b.width - b.axis for b in blocks), default=0.0)
        self.height = sum(b.height for b in blocks) + GAP * max(len(blocks) - 1, 0)
        self.open = all(b.open for b in blocks)
        self.entry_ran = bool(blocks) and blocks[0].entry_ran
        self.exit_ran = bool(blocks) and blocks[-1].exit_ran

    def draw(self, canvas: Canvas, left: float, top: float, after_ran: bool) -> None:
        x = left + self.axis
        y = top
        for index, block in enumerate(self.blocks):
            following = self.blocks[index + 1] if index + 1 < len(self.blocks) else None
            block.draw(canvas, x - block.axis, y, following.entry_ran if following else after_ran)
            y += block.height
            if following is not None:
                if block.open:
                    canvas.edge([(x, y), (x, y + GAP)], canvas.state(block.exit_ran, following.entry_ran))
                y += GAP


@dataclass
class _Lane:
    lane: Lane
    chain: ChainBlock
    centre: float  # its axis, from the lanes' left edge


class SplitBlock(Block):
    """A fork's lanes between its bar and its JOIN bar, or a switch's cases under its diamond."""

    def __init__(self, split: Split, lanes: list[ChainBlock]) -> None:
        self.split = split
        self.switch = split.head.shape is Shape.SWITCH
        placed: list[_Lane] = []
        offset = 0.0
        for lane, chain in zip(split.lanes, lanes, strict=True):
            label_w = text_width(lane.label, SMALL) if lane.label else 0.0
            slot = max(chain.width, label_w + 16, MIN_LANE)
            placed.append(_Lane(lane, chain, offset + (slot - chain.width) / 2 + chain.axis))
            offset += slot + LANE_GAP
        self.lanes = placed
        lanes_w = offset - LANE_GAP
        span = (placed[0].centre, placed[-1].centre)
        middle = (span[0] + span[1]) / 2
        self.head_size = _box_size(split.head)
        if not self.switch:
            self.head_size = (max(self.head_size[0], span[1] - span[0] + 2 * OVERHANG), BAR_H)
        self.join_size = None
        if split.join is not None:
            join_w = _box_size(split.join)[0]
            self.join_size = (max(join_w, span[1] - span[0] + 2 * OVERHANG), BAR_H)
        half = max(self.head_size[0], self.join_size[0] if self.join_size else 0.0) / 2
        self.lanes_left = max(0.0, half - middle)
        self.axis = self.lanes_left + middle
        self.width = max(self.lanes_left + lanes_w, self.axis + half)
        head_h = self.head_size[1]
        self.bus = head_h + 12 if self.switch else head_h
        self.lanes_top = self.bus + (30 if self.switch else GAP)
        self.lanes_bottom = self.lanes_top + max(p.chain.height for p in placed)
        if split.join is not None:
            self.end = self.lanes_bottom + GAP  # the JOIN bar's top
            self.height = self.end + BAR_H
        else:
            self.end = self.lanes_bottom + MERGE  # where the lanes merge
            self.height = self.end
        self.open = any(p.chain.open for p in placed)
        self.entry_ran = split.head.ran
        if split.join is not None:
            self.exit_ran = split.join.ran
        else:
            self.exit_ran = any(p.chain.exit_ran if p.chain.blocks else split.head.ran for p in placed)

    def draw(self, canvas: Canvas, left: float, top: float, after_ran: bool) -> None:
        split = self.split
        ax = left + self.axis
        head_w, head_h = self.head_size
        canvas.node(split.head, ax - head_w / 2, top, head_w, head_h)
        join = split.join
        end = top + self.end
        lane_after = join.ran if join is not None else after_ran
        for placed in self.lanes:
            lane, chain = placed.lane, placed.chain
            x = left + self.lanes_left + placed.centre
            if lane.taken is not None:
                entry_state = EDGE_TAKEN if lane.taken else EDGE_DIMMED
            else:
                entry_state = canvas.state(split.head.ran, chain.entry_ran if chain.blocks else lane_after)
            start = [(ax, top + head_h), (ax, top + self.bus)] if self.switch else [(x, top + head_h)]
            if not chain.blocks:  # straight to where the lanes end
                tail = [(x, end)] if join is not None else [(x, end), (ax, end)]
                canvas.edge([*start, (x, top + self.bus), *tail], entry_state, arrow=join is not None)
            else:
                canvas.edge([*start, (x, top + self.bus), (x, top + self.lanes_top)], entry_state)
                chain.draw(canvas, x - chain.axis, top + self.lanes_top, lane_after)
                if chain.open:
                    bottom = top + self.lanes_top + chain.height
                    exit_state = canvas.state(chain.exit_ran, lane_after)
                    if join is not None:
                        canvas.edge([(x, bottom), (x, end)], exit_state)
                    else:
                        canvas.edge([(x, bottom), (x, end), (ax, end)], exit_state, arrow=False)
            if lane.label:
                state = entry_state if canvas.coloured else EDGE_PLAIN
                canvas.label(x, top + self.bus + 15, lane.label, state)
        if join is not None and self.join_size is not None:
            canvas.node(join, ax - self.join_size[0] / 2, end, self.join_size[0], BAR_H)


class FrameBlock(Block):
    """A DO_WHILE: its bar, its body in a frame, its closing bar, and the loop-back edge."""

    def __init__(self, frame: Frame, body: ChainBlock) -> None:
        self.frame, self.body = frame, body
        bar_w = max(_box_size(frame.head)[0], _box_size(frame.foot)[0])
        label_w = text_width(frame.condition, SMALL) + 14 if frame.condition else 0.0
        left = max(body.axis, bar_w / 2) + PAD_X
        right = max(body.width - body.axis, bar_w / 2) + PAD_X
        self.back = right + label_w + 6  # where the loop-back edge runs, from the axis
        self.axis = left
        self.width = left + self.back + PAD_X + 4
        self.inner = max(body.height, 24.0)
        self.height = 2 * BAR_H + 2 * GAP + self.inner
        self.open = True
        self.entry_ran = frame.head.ran
        self.exit_ran = frame.foot.ran

    def draw(self, canvas: Canvas, left: float, top: float, after_ran: bool) -> None:
        frame, body = self.frame, self.body
        ax = left + self.axis
        foot_top = top + self.height - BAR_H
        canvas.frame(left, top + BAR_H / 2, self.width, self.height - BAR_H)
        canvas.node(frame.head, left, top, self.width, BAR_H)
        canvas.node(frame.foot, left, foot_top, self.width, BAR_H)
        body_top = top + BAR_H + GAP
        if body.blocks:
            canvas.edge([(ax, top + BAR_H), (ax, body_top)], canvas.state(frame.head.ran, body.entry_ran))
            body.draw(canvas, ax - body.axis, body_top, frame.foot.ran)
            if body.open:
                bottom = body_top + body.height
                canvas.edge([(ax, bottom), (ax, foot_top)], canvas.state(body.exit_ran, frame.foot.ran))
        else:
            canvas.edge([(ax, top + BAR_H), (ax, foot_top)], canvas.state(frame.head.ran, frame.foot.ran))
        back_x = ax + self.back
        state = (EDGE_RAN if frame.head.ran else EDGE_DIMMED) if canvas.coloured else EDGE_PLAIN
        canvas.edge([(back_x, foot_top), (back_x, top + BAR_H)], state)
        if frame.condition:
            canvas.label(back_x - 8, top + BAR_H + GAP + self.inner / 2, frame.condition, state, "end")


def layout(items: tuple[Item, ...]) -> ChainBlock:
    return ChainBlock([_block(item) for item in items])


def _block(item: Item) -> Block:
    if isinstance(item, Box):
        return BoxBlock(item)
    if isinstance(item, Split):
        return SplitBlock(item, [layout(lane.items) for lane in item.lanes])
    return FrameBlock(item, layout(item.body))


# ---------------------------------------------------------------------------------------------
# The document


def render_svg(drawing: Diagram) -> str:
    chain = layout(drawing.items)
    canvas = Canvas(drawing.coloured)
    title = drawing.title
    if drawing.workflow_id is not None:
        title += f"  ·  execution {drawing.workflow_id}: {drawing.workflow_status}"
    content_w = max(chain.width, text_width(title, 14, True))
    width = content_w + 2 * MARGIN
    chain.draw(canvas, MARGIN + (content_w - chain.width) / 2, MARGIN + HEADER, True)
    height = MARGIN + HEADER + chain.height + MARGIN
    legend: list[str] = []
    if drawing.coloured:
        legend, right = _legend(canvas, MARGIN, height)
        width = max(width, right + MARGIN)
        height += 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" font-family="{FONT}" font-size="{_n(SIZE)}">',
        f"<title>{escape(title)}</title>",
        _markers(),
        f'<rect width="{_n(width)}" height="{_n(height)}" fill="#ffffff"/>',
        f'<text x="{_n(MARGIN)}" y="{_n(MARGIN + 14)}" font-size="14" font-weight="bold" fill="#1a1a1a">'
        f"{escape(title)}</text>",
        *canvas.frames,
        *(svg for _, svg in sorted(canvas.edges, key=lambda e: e[0])),
        *canvas.nodes,
        *canvas.labels,
        *legend,
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def _markers() -> str:
    markers = "".join(
        f'<marker id="arrow-{state}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" '
        f'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        for state, colour in EDGE_COLOURS.items()
    )
    return f"<defs>{markers}</defs>"


def _legend(canvas: Canvas, x: float, y: float) -> tuple[list[str], float]:
    """Swatches of the statuses the drawing shows, in a row under it, and where the row ends."""
    entries = [(STATUS_SHADES[status], label) for status, label in LEGEND]
    entries.append((NOT_RUN, "not run"))
    out = []
    for paint, label in entries:
        if paint.name not in canvas.shades:
            continue
        out.append(
            f'<g class="legend {paint.name}"><rect x="{_n(x)}" y="{_n(y)}" width="14" height="14" rx="3" '
            f'fill="{paint.fill}" stroke="{paint.stroke}"/><text x="{_n(x + 19)}" y="{_n(y + 11)}" '
            f'font-size="{_n(SMALL)}" fill="#333333">{escape(label)}</text></g>'
        )
        x += 19 + text_width(label, SMALL) + 16
    return out, x
