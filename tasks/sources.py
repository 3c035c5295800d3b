"""Reading a ``fileLocation``: an http(s) URL, ``s3://bucket/key`` or a path under the input root.

URLs are fetched with translator's SSRF guard (``translator.net``, the same rule as HTTP system tasks):
http and https only, no credentials in the URL, every address the host resolves to must be public
unless ``host:port`` is listed in TRANSLATOR_FETCH_ALLOW, the connection goes to the address that was
checked (no DNS rebinding between check and connect), every redirect is checked the same way, and
downloads have a size cap, a timeout per operation and one deadline for the whole download, whatever
the server's pace.

Bad locations raise NonRetryableError (retrying cannot help); network trouble raises ordinary
errors (OSError, TimeoutError), so the task definition's retry policy applies. Messages quote
user-supplied values shortened (``translator.text.shorten``).
"""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from tasks.config import ImageSettings
from translator.net import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    Deadline,
    FetchRefused,
    address_refusal,
    check_url,
    is_public_address,
    open_connection,
    read_capped,
)
from translator.text import shorten

__all__ = ["FetchRefused", "address_refusal", "fetch_url", "file_under", "is_public_address", "load_source"]

USER_AGENT = "translator-image-fetch/1"


def load_source(location: object, settings: ImageSettings) -> bytes:
    """The bytes at ``location``."""
    if not isinstance(location, str) or not location.strip():
        raise FetchRefused("fileLocation is missing or empty")
    location = location.strip()
    try:
        scheme = urlsplit(location).scheme.lower()
    except ValueError:
        raise FetchRefused(f"fileLocation {shorten(location)} is not a valid URL or path") from None
    if scheme in ("http", "https"):
        return fetch_url(location, settings)
    if scheme == "s3":
        return read_s3(location, settings)
    if scheme == "":
        return read_local(location, settings)
    raise FetchRefused(
        f"fileLocation scheme {shorten(scheme, 20, quote=False)}:// is not accepted: use http(s)://, "
        f"s3://bucket/key, or a path under {settings.input_root}"
    )


# ---------------------------------------------------------------------------------------------
# Local paths


def file_under(location: str, root: Path, setting: str) -> Path:
    """The regular file ``location`` (absolute, or relative to ``root``) if it lies under ``root``.

    Symbolic links are resolved first, so a link cannot lead outside the root.
    """
    shown = shorten(location)
    unusable = FetchRefused(f"{shown} is not a usable path")  # a NUL byte, a name too long...
    try:
        candidate = Path(location)
        path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    except (OSError, ValueError):
        raise unusable from None
    try:
        path.relative_to(root)
    except ValueError:
        raise FetchRefused(f"{shown} is outside the {setting} directory {root}") from None
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        raise unusable from None
    if not is_file:
        raise FetchRefused(f"{shown}: no such file under {root}")
    return path


def read_local(location: str, settings: ImageSettings) -> bytes:
    path = file_under(location, settings.input_root, "TRANSLATOR_INPUT_ROOT")
    size = path.stat().st_size
    if size > settings.fetch_max_bytes:
        raise FetchRefused(
            f"{shorten(location)} is {size} bytes, over the limit of {settings.fetch_max_bytes}"
        )
    return path.read_bytes()


# ---------------------------------------------------------------------------------------------
# S3


def read_s3(location: str, settings: ImageSettings) -> bytes:
    from tasks.s3 import client_errors, s3_client

    shown = shorten(location)
    parts = urlsplit(location)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise FetchRefused(f"{shown}: expected s3://bucket/key")
    with client_errors(f"reading {shown}"):
        response = s3_client().get_object(Bucket=bucket, Key=key)
        size = int(response.get("ContentLength") or 0)
        if size > settings.fetch_max_bytes:
            raise FetchRefused(f"{shown} is {size} bytes, over the limit of {settings.fetch_max_bytes}")
        return response["Body"].read(settings.fetch_max_bytes + 1)


# ---------------------------------------------------------------------------------------------
# URLs (the SSRF guard is translator.net's, shared with the HTTP system task)


def fetch_url(url: str, settings: ImageSettings) -> bytes:
    """Download ``url`` with the SSRF guard, following up to 5 checked redirects.

    Everything (connects, TLS handshakes, requests, headers, bodies, redirects) ends within
    ``fetch_deadline`` seconds, and no single operation waits more than ``fetch_timeout``.
    """
    deadline = Deadline(settings.fetch_deadline, settings.fetch_timeout)
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        shown = shorten(current) + ("" if current == url else f" (redirected from {shorten(url)})")
        try:
            outcome = _fetch_once(current, settings, deadline)
        except TimeoutError:
            if deadline.expired:
                raise TimeoutError(
                    f"fetching {shown}: no complete response within {deadline.total:g} s "
                    "(TRANSLATOR_FETCH_DEADLINE)"
                ) from None
            raise TimeoutError(
                f"fetching {shown}: the server took more than {deadline.step:g} s to answer "
                "(TRANSLATOR_FETCH_TIMEOUT)"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            detail = shorten(str(exc) or type(exc).__name__, quote=False)
            raise OSError(f"fetching {shown}: {detail}") from None
        if isinstance(outcome, bytes):
            return outcome
        current = outcome
    raise FetchRefused(f"{shorten(url)}: more than {MAX_REDIRECTS} redirects")


def _fetch_once(url: str, settings: ImageSettings, deadline: Deadline) -> bytes | str:
    """One request: the body, or the URL a redirect points to."""
    target = check_url(url, settings.fetch_allow)
    connection = open_connection(target, deadline)
    try:
        connection.connect()
        connection.request("GET", target.path, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
        response = connection.getresponse()
        status = f"HTTP {response.status} {shorten(response.reason, quote=False)}"
        if response.status in REDIRECT_STATUSES:
            location = response.getheader("Location")
            if not location:
                raise FetchRefused(f"{shorten(url)}: redirect without a Location")
            return urljoin(url, location)
        if 400 <= response.status < 500:
            raise FetchRefused(f"{shorten(url)}: {status}")
        if response.status != 200:
            raise OSError(status)
        return read_capped(response, url, settings.fetch_max_bytes)
    finally:
        connection.close()
