"""The resize step against ImageMagick's command line doing the same job on the same image.

    .venv/bin/python -m benchmarks.resize_vs_convert [--repeat 15]

For each case, times (a) translator's ``image_convert_resize`` step body (read the file, sniff,
check the declared size, decode, resize, encode, write the result) in this process and
(b) ``convert -limit thread N SRC -resize WxH -strip DST`` run as a command, with the same number
of ImageMagick threads (``--threads``, default 1, the workers' default), alternating, and prints the
median times, the ratio (target: ours <= 1.0x the command line) and the difference between the two
outputs (RMSE, 0 = identical; PSNR in dB, higher is closer) as the quality check.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wand.image import Image

CASES = [
    ("900x900 PNG -> 300x300 GIF (the seed's job)", "sample-900.png", "gif", 300, 300),
    ("3000x2000 JPEG -> 800x800 JPEG", "photo-3000.jpg", "jpeg", 800, 800),
    ("3000x2000 PNG -> 1200x1200 WEBP", "photo-3000.png", "webp", 1200, 1200),
]


def make_inputs(directory: Path) -> None:
    """Inputs made here: the project's sample and a 3000x2000 photo-like image."""
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "sample.png", directory / "sample-900.png")
    with Image(width=3000, height=2000, pseudo="plasma:fractal") as image:
        image.save(filename=str(directory / "photo-3000.png"))
        image.compression_quality = 92
        image.save(filename=str(directory / "photo-3000.jpg"))


def convert_binary() -> str:
    for candidate in ("/usr/bin/convert", "/usr/bin/convert-im6.q16"):
        if os.access(candidate, os.X_OK):
            return candidate
    sys.exit(
        "ImageMagick's command line is not installed (apt-get install imagemagick, or scripts/bootstrap)"
    )


def psnr(rmse: float) -> float:
    return math.inf if rmse == 0 else 20 * math.log10(1.0 / rmse)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="ImageMagick threads, for both sides")
    args = parser.parse_args()
    binary = convert_binary()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ["TRANSLATOR_SHARED_DIR"] = str(base / "ours")
        os.environ["TRANSLATOR_INPUT_ROOT"] = str(base)
        os.environ["TRANSLATOR_FETCH_MAX_BYTES"] = str(64 * 1024 * 1024)
        os.environ["TRANSLATOR_IMAGE_THREADS"] = str(args.threads)
        from tasks.image import image_convert_resize  # after the settings above

        make_inputs(base)
        print(f"ImageMagick threads: {args.threads} on both sides; median of {args.repeat} runs")
        print(f"{'case':48}{'ours ms':>10}{'convert ms':>12}{'ratio':>8}{'RMSE':>9}{'PSNR dB':>9}")
        for label, source, fmt, width, height in CASES:
            ours, theirs = [], []
            ours_out = theirs_out = None
            for i in range(args.repeat + 1):
                began = time.perf_counter()
                result = image_convert_resize(str(base / source), fmt, width, height)
                ours_time = time.perf_counter() - began
                target = base / f"cli-{i}.{'jpg' if fmt == 'jpeg' else fmt}"
                command = [binary, "-limit", "thread", str(args.threads), str(base / source)]
                command += ["-resize", f"{width}x{height}", "-strip"]
                if fmt in ("jpeg", "webp"):
                    command += ["-quality", "92" if fmt == "jpeg" else "90"]
                began = time.perf_counter()
                subprocess.run([*command, str(target)], check=True)
                cli_time = time.perf_counter() - began
                if i == 0:  # warm-up round (library loading, page cache)
                    continue
                ours.append(ours_time * 1000)
                theirs.append(cli_time * 1000)
                ours_out, theirs_out = result["fileLocation"], str(target)
            with Image(filename=ours_out) as a, Image(filename=theirs_out) as b:
                assert a.size == b.size, (a.size, b.size)
                _, rmse = a.compare(b, metric="root_mean_square")
            mine, cli = statistics.median(ours), statistics.median(theirs)
            print(f"{label:48}{mine:>10.1f}{cli:>12.1f}{mine / cli:>8.2f}{rmse:>9.4f}{psnr(rmse):>9.1f}")


if __name__ == "__main__":
    main()
