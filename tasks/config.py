"""Settings of the image pipeline workers, from the environment (docs/image-pipeline.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from translator.settings import env_float, env_int, fetch_allow

MIB = 1024 * 1024


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ImageSettings:
    shared_dir: Path  # where resized images are written (the volume the workers share)
    input_root: Path  # local fileLocation paths must lie under it
    fetch_timeout: float  # seconds without progress: per connect, TLS handshake, send, read
    fetch_deadline: float  # seconds for a whole download: connect, headers, body, redirects
    fetch_max_bytes: int  # largest source accepted (URL, S3 or local)
    fetch_allow: frozenset[str]  # "host:port" pairs exempt from the public-address check
    max_input_side: int  # largest source width/height accepted
    max_input_pixels: int  # largest source area accepted
    max_output_side: int  # largest outputWidth/outputHeight accepted
    magick_memory: int  # ImageMagick resource limits (bytes)
    magick_map: int
    magick_disk: int
    magick_threads: int
    s3_bucket: str
    s3_prefix: str
    s3_delete_local: bool

    @classmethod
    def from_env(cls) -> ImageSettings:
        shared = Path(os.environ.get("TRANSLATOR_SHARED_DIR") or "out/shared").expanduser().resolve()
        root = Path(os.environ.get("TRANSLATOR_INPUT_ROOT") or os.getcwd()).expanduser().resolve()
        prefix = os.environ.get("TRANSLATOR_S3_PREFIX", "images/")
        fetch_timeout = env_float("TRANSLATOR_FETCH_TIMEOUT", 10.0)
        return cls(
            shared_dir=shared,
            input_root=root,
            fetch_timeout=fetch_timeout,
            fetch_deadline=env_float("TRANSLATOR_FETCH_DEADLINE", 2 * fetch_timeout),
            fetch_max_bytes=env_int("TRANSLATOR_FETCH_MAX_BYTES", 25 * MIB),
            fetch_allow=fetch_allow(),
            max_input_side=env_int("TRANSLATOR_IMAGE_MAX_SIDE", 12000),
            max_input_pixels=env_int("TRANSLATOR_IMAGE_MAX_PIXELS", 50_000_000),
            max_output_side=env_int("TRANSLATOR_IMAGE_MAX_OUTPUT_SIDE", 8000),
            magick_memory=env_int("TRANSLATOR_IMAGE_MEMORY", 256 * MIB),
            magick_map=env_int("TRANSLATOR_IMAGE_MAP", 512 * MIB),
            magick_disk=env_int("TRANSLATOR_IMAGE_DISK", 1024 * MIB),
            magick_threads=env_int("TRANSLATOR_IMAGE_THREADS", 1),
            s3_bucket=os.environ.get("TRANSLATOR_S3_BUCKET", "translator-images"),
            s3_prefix=prefix,
            s3_delete_local=_flag("TRANSLATOR_S3_DELETE_LOCAL"),
        )


@lru_cache(maxsize=1)
def settings() -> ImageSettings:
    """The settings of this worker process (read once)."""
    return ImageSettings.from_env()
