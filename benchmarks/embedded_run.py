"""The main job on the embedded default, start to exit: where the wall-clock time goes.

    .venv/bin/python -m benchmarks.embedded_run [-n 10] [--baseline DIR]

Runs ``translator run definitions/image_convert_resize.json --input examples/in.json`` N times in
fresh processes, as ``scripts/run-example`` does (nothing configured: a HOME without ~/.aws, no
broker, no AWS variables, so a Celery worker in the process and a local S3 server), warm (the
first, discarded run fills the OS caches). With ``TRANSLATOR_PROFILE_PHASES=1`` the run prints when
it reaches each phase; the table gives the medians of:

* import: from spawning the process to the ``run`` command (interpreter, translator's CLI);
* start: to the worker being ready (the runtime's imports, the plan, the local S3 server, the
  worker and sweeper threads);
* workflow: to the workflow being COMPLETED (resize, upload);
* stop: to the worker, sweeper and S3 server being stopped;
* exit: to the process having exited (output, interpreter shutdown).

Baselines measured in the same run, alternating with it: the floor ``python -c "import
translator.cli"`` (a process that only loads the CLI), ``scripts/run-example`` itself (its set-up
check, the run and its output), and with ``--baseline DIR`` the same job run from another checkout
of the project (for example the previous commit: ``git archive HEAD | tar -x -C /tmp/before``),
with the same virtual environment.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOB = ["run", "definitions/image_convert_resize.json", "--input", "examples/in.json"]
PHASES = ("import", "start", "workflow", "stop", "exit")
Sample = dict[str, float]


def clean_env(home: Path, shared: Path, tree: Path) -> dict[str, str]:
    """Nothing configured: no broker, no translator or AWS settings, a HOME without ~/.aws."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "TRANSLATOR_", "AWS_"))}
    env.update(HOME=str(home), TRANSLATOR_SHARED_DIR=str(shared), PYTHONPATH=str(tree))
    return env


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(spawned, exited) epoch seconds and stderr of one run; exits when the command fails."""
    began = time.time()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    ended = time.time()
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return began, ended, done.stderr


def job(tree: Path, env: dict[str, str]) -> Sample:
    """One run of the main job from ``tree``, with its phases when it reports them."""
    began, ended, stderr = timed(
        [sys.executable, "-m", "translator", *JOB], {**env, "TRANSLATOR_PROFILE_PHASES": "1"}, tree
    )
    marks = {}
    for line in stderr.splitlines():
        if line.startswith("translator: phase "):
            _, _, name, at = line.split()
            marks[name] = float(at)
    sample = {"total": ended - began}
    if {"run", "ready", "ended", "stopped"} <= marks.keys():
        sample.update(
            {
                "import": marks["run"] - began,
                "start": marks["ready"] - marks["run"],
                "workflow": marks["ended"] - marks["ready"],
                "stop": marks["stopped"] - marks["ended"],
                "exit": ended - marks["stopped"],
            }
        )
    return sample


def import_floor(env: dict[str, str]) -> Sample:
    began, ended, _ = timed([sys.executable, "-c", "import translator.cli"], env, ROOT)
    return {"total": ended - began}


def run_example(env: dict[str, str]) -> Sample:
    began, ended, _ = timed([str(ROOT / "scripts" / "run-example")], env, ROOT)
    return {"total": ended - began}


def row(name: str, samples: list[Sample]) -> str:
    cells = []
    for column in (*PHASES, "total"):
        values = [s[column] for s in samples if column in s]
        cells.append(f"{statistics.median(values):.2f}" if values else "")
    spread = [s["total"] for s in samples]
    return f"| {name} | {' | '.join(cells)} | {min(spread):.2f} to {max(spread):.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10, help="runs of each (default 10)")
    parser.add_argument("--baseline", type=Path, help="another checkout of the project to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        home, shared = Path(temp) / "home", Path(temp) / "shared"
        home.mkdir()
        env = clean_env(home, shared, ROOT)
        cases: list[tuple[str, Callable[[], Sample]]] = [
            ("`import translator.cli` (floor)", lambda: import_floor(env)),
            ("translator run, this tree", lambda: job(ROOT, env)),
            ("scripts/run-example", lambda: run_example(env)),
        ]
        if args.baseline is not None:
            tree = args.baseline.resolve()
            cases.append((f"translator run, {tree}", lambda: job(tree, clean_env(home, shared, tree))))
        for _, case in cases:  # warm-up, discarded
            case()
        results: dict[str, list[Sample]] = {name: [] for name, _ in cases}
        for _ in range(args.n):
            for name, case in cases:
                results[name].append(case())
    print(f"medians of {args.n} runs, seconds (load average at the end: {os.getloadavg()[0]:.2f})\n")
    print(f"| | {' | '.join(PHASES)} | total | total range |")
    print(f"|---|{'---|' * (len(PHASES) + 2)}")
    for name, samples in results.items():
        print(row(name, samples))


if __name__ == "__main__":
    main()
