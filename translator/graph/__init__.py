"""Workflow graphs: a plan drawn as Conductor's UI draws it, optionally coloured by an execution.

    render(plan, "mermaid" | "dot" | "svg", execution=None) -> str

``diagram`` builds the format-free drawing (:mod:`translator.graph.model`), ``execution_view`` the
statuses it is coloured by (pure: the execution is the dict ``translator status --tasks`` prints).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from translator.engine.plan import Plan
from translator.errors import UsageError
from translator.graph.dot import render_dot
from translator.graph.execution import ExecutionView, Tally, execution_view, read_execution
from translator.graph.mermaid import render_mermaid
from translator.graph.model import Diagram, diagram
from translator.graph.svg import render_svg

RENDERERS = {"mermaid": render_mermaid, "dot": render_dot, "svg": render_svg}
FORMATS = tuple(RENDERERS)

__all__ = [
    "FORMATS",
    "Diagram",
    "ExecutionView",
    "Tally",
    "diagram",
    "execution_view",
    "read_execution",
    "render",
]


def render(plan: Plan, fmt: str = "mermaid", execution: Mapping[str, Any] | None = None) -> str:
    """``plan`` drawn in ``fmt`` (one of FORMATS), coloured by ``execution`` (Conductor's Workflow
    JSON with its ``tasks``) when given."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise UsageError(f"unknown graph format {fmt!r}: use one of {', '.join(FORMATS)}")
    return renderer(diagram(plan, execution))
