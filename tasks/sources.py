"""Reading a ``fileLocation``: an http(s) URL, ``s3://bucket/key`` or a path under the input root.

The URL fetcher guards against SSRF: http and https only, no credentials in the URL, every address
the host resolves to must be public (``ipaddress.is_global``: no loopback, private, link-local such
as 169.254.169.254, CGNAT, multicast...) unless ``host:port`` is listed in TRANSLATOR_FETCH_ALLOW,
the connection goes to the address that was checked (no DNS rebinding between check and connect),
every redirect is checked the same way, and downloads have timeouts and a size cap.

Bad locations raise NonRetryableError (retrying cannot help); network trouble raises ordinary
errors, so the task definition's retry policy applies.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from tasks.config import ImageSettings
from translator.errors import NonRetryableError

MAX_REDIRECTS = 5
USER_AGENT = "translator-image-fetch/1"


class FetchRefused(NonRetryableError):
    """The location is not allowed (scheme, address, path) or its content is unacceptable."""


def load_source(location: object, settings: ImageSettings) -> bytes:
    """The bytes at ``location``."""
    if not isinstance(location, str) or not location.strip():
        raise FetchRefused("fileLocation is missing or empty")
    location = location.strip()
    scheme = urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        return fetch_url(location, settings)
    if scheme == "s3":
        return read_s3(location, settings)
    if scheme == "":
        return read_local(location, settings)
    raise FetchRefused(
        f"fileLocation scheme {scheme}:// is not accepted: use http(s)://, s3://bucket/key, "
        f"or a path under {settings.input_root}"
    )


# ---------------------------------------------------------------------------------------------
# Local paths


def file_under(location: str, root: Path, setting: str) -> Path:
    """The regular file ``location`` (absolute, or relative to ``root``) if it lies under ``root``.

    Symbolic links are resolved first, so a link cannot lead outside the root.
    """
    candidate = Path(location)
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    try:
        path.relative_to(root)
    except ValueError:
        raise FetchRefused(f"{location} is outside the {setting} directory {root}") from None
    if not path.is_file():
        raise FetchRefused(f"{location}: no such file under {root}")
    return path


def read_local(location: str, settings: ImageSettings) -> bytes:
    path = file_under(location, settings.input_root, "TRANSLATOR_INPUT_ROOT")
    size = path.stat().st_size
    if size > settings.fetch_max_bytes:
        raise FetchRefused(f"{location} is {size} bytes, over the limit of {settings.fetch_max_bytes}")
    return path.read_bytes()


# ---------------------------------------------------------------------------------------------
# S3


def read_s3(location: str, settings: ImageSettings) -> bytes:
    from tasks.s3 import client_errors, s3_client

    parts = urlsplit(location)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise FetchRefused(f"{location}: expected s3://bucket/key")
    with client_errors(f"reading {location}"):
        response = s3_client().get_object(Bucket=bucket, Key=key)
        size = int(response.get("ContentLength") or 0)
        if size > settings.fetch_max_bytes:
            raise FetchRefused(f"{location} is {size} bytes, over the limit of {settings.fetch_max_bytes}")
        return response["Body"].read(settings.fetch_max_bytes + 1)


# ---------------------------------------------------------------------------------------------
# URLs


def _check_url(url: str, settings: ImageSettings) -> tuple[str, str, int, str]:
    """Validate a URL; returns (scheme, host, port, pinned address)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"refusing to fetch {url}: only http and https URLs are accepted")
    if parts.username or parts.password:
        raise FetchRefused(f"refusing to fetch {url}: credentials in URLs are not accepted")
    host = parts.hostname
    if not host:
        raise FetchRefused(f"refusing to fetch {url}: no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchRefused(f"refusing to fetch {url}: invalid port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from None
    addresses = sorted({info[4][0] for info in infos})
    allowed = f"{host.lower()}:{port}" in settings.fetch_allow
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not allowed and (not ip.is_global or ip.is_multicast):
            raise FetchRefused(
                f"refusing to fetch {url}: {host} resolves to {ip}, which is not a public address "
                "(list host:port in TRANSLATOR_FETCH_ALLOW to allow it)"
            )
    return scheme, host, port, addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch_url(url: str, settings: ImageSettings) -> bytes:
    """Download ``url`` with the SSRF guard, following up to 5 checked redirects."""
    deadline = time.monotonic() + settings.fetch_timeout * 3
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port, address = _check_url(current, settings)
        cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        connection = cls(host, port, address, settings.fetch_timeout)
        parts = urlsplit(current)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise FetchRefused(f"{current}: redirect without a Location")
                current = urljoin(current, location)
                continue
            if 400 <= response.status < 500:
                raise FetchRefused(f"{current}: HTTP {response.status} {response.reason}")
            if response.status != 200:
                raise OSError(f"{current}: HTTP {response.status} {response.reason}")
            return _read_capped(response, current, settings.fetch_max_bytes, deadline)
        finally:
            connection.close()
    raise FetchRefused(f"{url}: more than {MAX_REDIRECTS} redirects")


def _read_capped(response: http.client.HTTPResponse, url: str, limit: int, deadline: float) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FetchRefused(f"{url} is {declared} bytes, over the limit of {limit}")
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}: download took too long")
        chunk = response.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise FetchRefused(f"{url} is larger than the limit of {limit} bytes")
        chunks.append(chunk)
