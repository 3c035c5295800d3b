"""Image formats: sniffing from magic bytes, the accepted inputs and the supported outputs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from translator.errors import NonRetryableError


@dataclass(frozen=True)
class ImageFormat:
    name: str  # our canonical name, e.g. "jpeg"
    coder: str  # ImageMagick coder, e.g. "JPEG"
    extension: str  # file extension, e.g. "jpg"
    content_type: str


FORMATS = {
    f.name: f
    for f in (
        ImageFormat("png", "PNG", "png", "image/png"),
        ImageFormat("jpeg", "JPEG", "jpg", "image/jpeg"),
        ImageFormat("gif", "GIF", "gif", "image/gif"),
        ImageFormat("webp", "WEBP", "webp", "image/webp"),
        ImageFormat("tiff", "TIFF", "tiff", "image/tiff"),
        ImageFormat("bmp", "BMP", "bmp", "image/bmp"),
        ImageFormat("avif", "AVIF", "avif", "image/avif"),
    )
}
ALIASES = {"jpg": "jpeg", "tif": "tiff"}
OUTPUT_FORMATS = ("gif", "png", "jpeg", "webp", "avif", "tiff")


def sniff(data: bytes) -> ImageFormat | None:
    """The format of ``data`` from its magic bytes (never from a name or a Content-Type)."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FORMATS["png"]
    if head.startswith(b"\xff\xd8\xff"):
        return FORMATS["jpeg"]
    if head.startswith((b"GIF87a", b"GIF89a")):
        return FORMATS["gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FORMATS["webp"]
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return FORMATS["tiff"]
    if head.startswith(b"BM") and len(head) >= 26:
        return FORMATS["bmp"]
    if head[4:8] == b"ftyp":
        box_size = int.from_bytes(head[:4], "big")
        brands = {head[i : i + 4] for i in range(8, min(box_size, len(head)), 4)}
        if brands & {b"avif", b"avis"}:
            return FORMATS["avif"]
    return None


@cache
def build_supports(coder: str) -> bool:
    """Whether this ImageMagick build has a coder (AVIF, WEBP depend on delegates)."""
    from wand.version import formats

    return coder in formats(coder)


def output_format(name: object) -> ImageFormat:
    """The output format named by a task input; NonRetryableError when unsupported."""
    key = str(name or "").strip().lower()
    key = ALIASES.get(key, key)
    if key not in OUTPUT_FORMATS:
        choices = ", ".join(sorted({*OUTPUT_FORMATS, *ALIASES}))
        raise NonRetryableError(f"unsupported outputFormat {name!r}: use one of {choices}")
    fmt = FORMATS[key]
    if not build_supports(fmt.coder):
        raise NonRetryableError(f"outputFormat {key} is not supported by this ImageMagick build")
    return fmt
