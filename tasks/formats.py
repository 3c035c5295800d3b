"""Image formats: sniffing from magic bytes, the accepted inputs and the supported outputs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from translator.errors import NonRetryableError
from translator.text import shorten


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
        raise NonRetryableError(f"unsupported outputFormat {shorten(name)}: use one of {choices}")
    fmt = FORMATS[key]
    if not build_supports(fmt.coder):
        raise NonRetryableError(f"outputFormat {key} is not supported by this ImageMagick build")
    return fmt


def declared_size(data: bytes, fmt: ImageFormat) -> tuple[int, int] | None:
    """Width and height from the file header, without decoding (None when not found).

    Used to refuse decompression bombs with a clear message before ImageMagick sees the file.
    """
    try:
        if fmt.name == "png" and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if fmt.name == "gif":
            return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
        if fmt.name == "bmp":
            return abs(int.from_bytes(data[18:22], "little", signed=True)), abs(
                int.from_bytes(data[22:26], "little", signed=True)
            )
        if fmt.name == "jpeg":
            return _jpeg_size(data)
        if fmt.name == "webp":
            return _webp_size(data)
    except (IndexError, ValueError):
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None
