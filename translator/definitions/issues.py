"""Validation issues: a location (file + RFC 6901 JSON pointer), a level, a code and a message."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from translator.text import VALUE_LIMIT, shorten

# Line breaks and other control characters, escaped so that an issue always renders on one line.
_ONE_LINE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, 0x85)} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def clip(text: str, limit: int = VALUE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, unquoted (an ellipsis and the full length say it was cut)."""
    return shorten(text, limit, quote=False)


def one_line(text: str) -> str:
    """``text`` with line breaks and control characters escaped."""
    return text.translate(_ONE_LINE)


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a definition file."""

    pointer: str
    code: str
    message: str
    level: Level = Level.ERROR
    file: str = ""

    def render(self) -> str:
        """``file:pointer: level code: message`` (the CLI's line format), always one line."""
        where = one_line(f"{self.file}:{clip(self.pointer, 2 * VALUE_LIMIT)}")
        return f"{where}: {self.level} {self.code}: {one_line(clip(self.message, 10 * VALUE_LIMIT))}"

    def as_dict(self) -> dict[str, str]:
        data = asdict(self)
        data["level"] = str(self.level)
        return data


def error(pointer: str, code: str, message: str) -> Issue:
    return Issue(pointer, code, message, Level.ERROR)


def warning(pointer: str, code: str, message: str) -> Issue:
    return Issue(pointer, code, message, Level.WARNING)


def escape_token(token: str | int) -> str:
    """Escape one reference token of a JSON pointer (RFC 6901 §3)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(*tokens: str | int) -> str:
    """Build a JSON pointer from raw tokens: ``pointer("tasks", 0, "name") == "/tasks/0/name"``."""
    return "".join("/" + escape_token(t) for t in tokens)


def join(base: str, *tokens: str | int) -> str:
    """Append raw tokens to an existing JSON pointer."""
    return base + pointer(*tokens)


def unescape_pointer(ptr: str) -> list[str]:
    """Split a JSON pointer into raw tokens."""
    if not ptr:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in ptr[1:].split("/")]


@dataclass
class Report:
    """Every issue found for a set of files, in the order found."""

    issues: list[Issue] = field(default_factory=list)

    def extend(self, issues: Iterable[Issue]) -> None:
        self.issues.extend(issues)

    @property
    def errors(self) -> Sequence[Issue]:
        return [i for i in self.issues if i.level is Level.ERROR]

    @property
    def warnings(self) -> Sequence[Issue]:
        return [i for i in self.issues if i.level is Level.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors
