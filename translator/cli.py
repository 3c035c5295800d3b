"""The ``translator`` command line.

Exit codes: 0 success (warnings allowed), 1 invalid definitions or a failed workflow,
2 usage errors. User mistakes are reported as messages, never as tracebacks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from translator.errors import TranslatorError
from translator.validate import check_files

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

_taskdefs_option = click.option(
    "--taskdefs",
    "taskdefs",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="A task definition file (one TaskDef or a JSON list) or a directory of them. "
    "Repeatable; added after DIR/taskdefs/ of the workflow file.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="translator")
def main() -> None:
    """Run Conductor workflow definitions on Celery."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_taskdefs_option
@click.option("--json", "as_json", is_flag=True, help="Print the issues as a JSON document.")
def validate(files: tuple[Path, ...], taskdefs: tuple[Path, ...], as_json: bool) -> None:
    """Validate workflow and task definition FILES.

    Prints one line per issue, ``file:pointer: level code: message``, where pointer is an
    RFC 6901 JSON pointer into the file. Exits 0 when there is no error (warnings allowed),
    1 otherwise.
    """
    report = check_files(files, list(taskdefs))
    if as_json:
        document = {
            "valid": report.ok,
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "issues": [issue.as_dict() for issue in report.issues],
        }
        click.echo(json.dumps(document, indent=2))
    else:
        for issue in report.issues:
            click.echo(issue.render())
        sys.stdout.flush()
        summary = f"{len(files)} file(s): {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
        click.echo(summary, err=True)
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)


def run_cli() -> None:
    """Entry point wrapper: turns TranslatorError into a message and exit code."""
    try:
        main(standalone_mode=True)
    except TranslatorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)


if __name__ == "__main__":
    run_cli()
