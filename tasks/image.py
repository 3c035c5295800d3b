"""The ``image_convert_resize`` worker: resize/convert an image with ImageMagick (Wand).

ImageMagick only ever sees bytes that were read by us and whose format was sniffed from their magic
bytes, with the coder named explicitly (never a URL, never a path). Before decoding, the image's
declared size is read (``ping``) and checked, so a decompression bomb is refused without
allocating its pixels; ImageMagick's own resource limits are lowered at worker start.

ImageMagick's ``time`` resource is deliberately not set: its clock starts with the process, and
exceeding it is a fatal error that would kill a long-lived worker. Per-task time limits belong to
the task definition (``timeoutSeconds``).
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

from celery.signals import worker_process_init

from tasks.config import ImageSettings, settings
from tasks.formats import FORMATS, ImageFormat, declared_size, output_format, sniff
from tasks.sources import load_source
from translator import NonRetryableError, worker_task
from translator.text import shorten

ACCEPTED_INPUTS = ("png", "jpeg", "gif", "webp", "tiff", "bmp", "avif")
QUALITY = {"jpeg": 92, "webp": 90, "avif": 80}

_limits_lock = threading.Lock()
_limits_applied = False


def apply_limits(config: ImageSettings | None = None) -> None:
    """Lower ImageMagick's resource limits for this process (once)."""
    global _limits_applied
    with _limits_lock:
        if _limits_applied:
            return
        from wand.resource import limits

        config = config or settings()
        limits["width"] = config.max_input_side
        limits["height"] = config.max_input_side
        limits["area"] = config.max_input_pixels
        limits["memory"] = config.magick_memory
        limits["map"] = config.magick_map
        limits["disk"] = config.magick_disk
        limits["thread"] = config.magick_threads
        _limits_applied = True


@worker_process_init.connect
def _limits_at_worker_start(**_: Any) -> None:
    try:
        apply_limits()
    except Exception as exc:  # the worker still starts; the first image task reports the problem
        warnings.warn(f"could not apply ImageMagick limits: {exc}", stacklevel=1)


def dimension(name: str, value: object, limit: int) -> int:
    """A pixel size from a whole number (int, float or numeric string) between 1 and ``limit``.

    Anything else, including booleans, NaN, infinities ("inf", "1e999") and numbers out of range,
    is a NonRetryableError naming the input and the accepted range.
    """
    accepted = f"a whole number of pixels between 1 and {limit}"
    if value is None:
        raise NonRetryableError(f"{name} is required: {accepted}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise NonRetryableError(f"{name} must be {accepted}, got {shorten(value)}")
    if isinstance(value, str):
        try:
            number: int | float = float(value.strip())
        except ValueError:
            raise NonRetryableError(
                f"{name} must be a number of pixels between 1 and {limit}, got {shorten(value)}"
            ) from None
    else:
        number = value
    if isinstance(number, float):
        if not math.isfinite(number) or not number.is_integer():
            raise NonRetryableError(f"{name} must be {accepted}, got {shorten(value)}")
        number = int(number)
    if not 1 <= number <= limit:
        raise NonRetryableError(f"{name} must be {accepted}, got {shorten(value)}")
    return number


def flag(name: str, value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise NonRetryableError(f"{name} must be true or false, got {shorten(value)}")


def fit(width: int, height: int, box_width: int, box_height: int, keep_aspect: bool) -> tuple[int, int]:
    """Target size: inside the box keeping the aspect ratio, or exactly the box."""
    if not keep_aspect:
        return box_width, box_height
    scale = min(box_width / width, box_height / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def write_unique(directory: Path, data: bytes, extension: str) -> Path:
    """Write ``data`` to a new uniquely named file in ``directory``, atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{uuid.uuid4().hex}.{extension}"
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


ANIMATED_OUTPUTS = ("gif", "webp")


def check_size(width: int, height: int, config: ImageSettings) -> None:
    """Refuse images whose pixels would not fit the limits (decompression bombs)."""
    if width < 1 or height < 1:
        raise NonRetryableError(f"the image declares {width}x{height} pixels")
    if max(width, height) > config.max_input_side or width * height > config.max_input_pixels:
        raise NonRetryableError(
            f"the image declares {width}x{height} pixels, over the limit "
            f"({config.max_input_side} per side, {config.max_input_pixels} pixels in all)"
        )


def _render(image: Any, target: ImageFormat, box: tuple[int, int], keep: bool) -> tuple[bytes, int, int]:
    # ImageMagick's default resize filter (Lanczos when shrinking, Mitchell when enlarging or with
    # transparency), as `convert -resize` uses: the output matches the command line's.
    animated = len(image.sequence) > 1
    if animated:
        image.coalesce()
    width, height = fit(image.width, image.height, box[0], box[1], keep)
    if animated:
        for frame in image.sequence:
            frame.resize(width, height)
    else:
        image.resize(width, height)
    image.strip()
    if target.name in QUALITY:
        image.compression_quality = QUALITY[target.name]
    return image.make_blob(target.coder), width, height


def convert(
    data: bytes,
    source: ImageFormat,
    target: ImageFormat,
    box: tuple[int, int],
    keep: bool,
    config: ImageSettings,
) -> tuple[bytes, int, int]:
    """Decode, resize and encode; returns (bytes, width, height)."""
    from wand.exceptions import WandException, WandWarning
    from wand.image import Image

    apply_limits(config)
    declared = declared_size(data, source)
    if declared is not None:
        check_size(*declared, config)
    with warnings.catch_warnings():
        warnings.simplefilter("error", WandWarning)  # a truncated or damaged file is an error
        try:
            with Image.ping(blob=data, format=source.coder) as probe:
                check_size(probe.width, probe.height, config)
            with Image(blob=data, format=source.coder) as image:
                if len(image.sequence) > 1 and target.name not in ANIMATED_OUTPUTS:
                    with Image(image=image.sequence[0]) as first:  # a still output: the first frame
                        return _render(first, target, box, keep)
                return _render(image, target, box, keep)
        except (WandException, WandWarning) as exc:
            raise NonRetryableError(
                f"cannot decode the {source.coder} image: the file is damaged, truncated or over "
                f"ImageMagick's limits ({exc})"
            ) from None


@worker_task("image_convert_resize")
def image_convert_resize(
    fileLocation: str,
    outputFormat: str,
    outputWidth: object = None,
    outputHeight: object = None,
    maintainAspectRatio: object = True,
) -> dict[str, Any]:
    """Resize ``fileLocation`` into an ``outputWidth`` x ``outputHeight`` box as ``outputFormat``."""
    config = settings()
    target = output_format(outputFormat)
    box = (
        dimension("outputWidth", outputWidth, config.max_output_side),
        dimension("outputHeight", outputHeight, config.max_output_side),
    )
    keep = flag("maintainAspectRatio", maintainAspectRatio, True)
    data = load_source(fileLocation, config)
    source = sniff(data)
    if source is None or source.name not in ACCEPTED_INPUTS:
        accepted = ", ".join(FORMATS[n].coder for n in ACCEPTED_INPUTS)
        raise NonRetryableError(f"{shorten(fileLocation)} is not an image in an accepted format ({accepted})")
    blob, width, height = convert(data, source, target, box, keep, config)
    path = write_unique(config.shared_dir, blob, target.extension)
    return {
        "fileLocation": str(path),
        "width": width,
        "height": height,
        "format": target.name,
        "bytes": len(blob),
    }
