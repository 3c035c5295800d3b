"""What every drawing shares: the colours of task statuses and label text made safe to show.

The colours are those of Conductor's UI (ui/src/components/diagram/diagram.scss), with CANCELED and
SKIPPED grey and a task not yet run white.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

ELLIPSIS = "…"
LABEL_LIMIT = 60  # characters of a name shown in a label
TOOLTIP_LIMIT = 400  # characters of a reference in a tooltip


@dataclass(frozen=True, slots=True)
class Shade:
    """How a node of one outcome is painted."""

    name: str  # a CSS class / mermaid classDef name
    fill: str
    stroke: str
    text: str


COMPLETED = Shade("st_completed", "#aee1b8", "#163e1d", "#163e1d")
PARTIAL = Shade("st_partial", "#feeac5", "#8b5b02", "#8b5b02")  # COMPLETED_WITH_ERRORS
FAILED = Shade("st_failed", "#f9c6c9", "#7f050b", "#7f050b")
RUNNING = Shade("st_running", "#fff5da", "#c2920d", "#6b4f00")  # IN_PROGRESS: yellow
SCHEDULED = Shade("st_scheduled", "#cbe2f7", "#11497a", "#11497a")  # blue
SKIPPED = Shade("st_skipped", "#e0e0e0", "#757575", "#424242")  # CANCELED, SKIPPED: grey
NOT_RUN = Shade("st_not_run", "#ffffff", "#9e9e9e", "#616161")  # an execution has not reached it
PLAIN = Shade("st_plain", "#ffffff", "#333333", "#333333")  # no execution shown
BAR = Shade("st_bar", "#333333", "#333333", "#ffffff")  # fork, join and loop bars, no execution shown

STATUS_SHADES: dict[str, Shade] = {
    "COMPLETED": COMPLETED,
    "COMPLETED_WITH_ERRORS": PARTIAL,
    "FAILED": FAILED,
    "FAILED_WITH_TERMINAL_ERROR": FAILED,
    "TIMED_OUT": FAILED,
    "TERMINATED": FAILED,
    "IN_PROGRESS": RUNNING,
    "RUNNING": RUNNING,
    "PAUSED": RUNNING,
    "SCHEDULED": SCHEDULED,
    "CANCELED": SKIPPED,
    "SKIPPED": SKIPPED,
}

EDGE_PLAIN, EDGE_RAN, EDGE_TAKEN, EDGE_DIMMED = "plain", "ran", "taken", "dimmed"
EDGE_COLOURS = {EDGE_PLAIN: "#333333", EDGE_RAN: "#333333", EDGE_TAKEN: "#1565c0", EDGE_DIMMED: "#b0b0b0"}
EDGE_WIDTHS = {EDGE_PLAIN: 1.2, EDGE_RAN: 2.4, EDGE_TAKEN: 3.0, EDGE_DIMMED: 1.2}


def shade(status: str | None, coloured: bool, *, bar: bool = False) -> Shade:
    """The paint of a node with ``status`` (None: not run); ``coloured``: an execution is shown."""
    if not coloured:
        return BAR if bar else PLAIN
    if status is None:
        return NOT_RUN
    return STATUS_SHADES.get(status, RUNNING)  # a status of a later Conductor: still going on


_ESCAPED = frozenset({"Cc", "Cs", "Zl", "Zp"})  # unicode categories shown as escapes


def visible(text: str) -> str:
    """``text`` with the characters no label can hold (controls, line and paragraph separators, lone
    surrogates, U+FFFE, U+FFFF) written as escapes: it stays on one line and is valid XML."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if unicodedata.category(char) in _ESCAPED or char in "\ufffe\uffff":
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def clip(text: str, limit: int = LABEL_LIMIT) -> str:
    """``text`` made visible and cut to ``limit`` characters (with an ellipsis)."""
    text = visible(text)
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
