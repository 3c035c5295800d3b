"""Reading a ``fileLocation``: an http(s) URL, ``s3://bucket/key`` or a path under the input root.

The URL fetcher guards against SSRF: http and https only, no credentials in the URL, every address
the host resolves to must be public (``ipaddress.is_global``: no loopback, private, link-local such
as 169.254.169.254, CGNAT, multicast...; an IPv6 form that embeds an IPv4 address, such as NAT64
``64:ff9b::a9fe:a9fe``, is judged by that IPv4 address) unless ``host:port`` is listed in
TRANSLATOR_FETCH_ALLOW, the connection goes to the address that was checked (no DNS rebinding
between check and connect), every redirect is checked the same way, and downloads have a size cap,
a timeout per operation and one deadline for the whole download, whatever the server's pace.

Bad locations raise NonRetryableError (retrying cannot help); network trouble raises ordinary
errors (OSError, TimeoutError), so the task definition's retry policy applies. Messages quote
user-supplied values shortened (``translator.text.shorten``).
"""

from __future__ import annotations

import functools
import http.client
import io
import ipaddress
import re
import socket
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from tasks.config import ImageSettings
from translator.errors import NonRetryableError
from translator.text import shorten

MAX_REDIRECTS = 5
USER_AGENT = "translator-image-fetch/1"
CHUNK = 64 * 1024
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")  # what http.client refuses in a request target

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchRefused(NonRetryableError):
    """The location is not allowed (scheme, address, path) or its content is unacceptable."""


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
# Addresses

# IPv6 forms that carry an IPv4 address; the IPv4 address is where the traffic ends up.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use prefix, never public
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated (RFC 4291); :: and ::1 are not IPv4


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 transition form carries, each with the form's name."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [("IPv4-mapped form", ip.ipv4_mapped)]
    if ip in NAT64:
        return [("NAT64 form", low32)]
    if ip in NAT64_LOCAL:
        return [("local-use NAT64 form", low32)]
    if ip.sixtofour is not None:
        return [("6to4 form", ip.sixtofour)]
    if ip.teredo is not None:  # the client address is stored inverted; ``teredo`` undoes it
        server, client = ip.teredo
        return [("Teredo form (server)", server), ("Teredo form (client)", client)]
    if ip in IPV4_COMPATIBLE and int(ip) > 1:
        return [("IPv4-compatible form", low32)]
    return []


def address_refusal(ip: IPAddress | str) -> str | None:
    """Why ``ip`` is not a public address (None: it is public).

    Public means ``is_global`` and not multicast; an IPv6 transition form is refused when an IPv4
    address it embeds is not public, and the local-use NAT64 prefix is never public.
    """
    ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        for form, ipv4 in embedded_ipv4(ip):
            if address_refusal(ipv4) is not None:
                return f"{ip}, the {form} of {ipv4}, which is not a public address"
        if ip in NAT64_LOCAL:
            return f"{ip}, a local-use NAT64 address ({NAT64_LOCAL}), which is not a public address"
        if ip.ipv4_mapped is not None:  # judged by its IPv4 address alone (Python versions disagree)
            return None
    if not ip.is_global or ip.is_multicast:
        return f"{ip}, which is not a public address"
    return None


def is_public_address(ip: IPAddress | str) -> bool:
    """Whether the fetcher may connect to ``ip`` without an entry in TRANSLATOR_FETCH_ALLOW."""
    return address_refusal(ip) is None


# ---------------------------------------------------------------------------------------------
# URLs


def _check_url(url: str, settings: ImageSettings) -> tuple[str, str, int, str]:
    """Validate a URL; returns (scheme, host, port, pinned address)."""
    shown = shorten(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise FetchRefused(f"refusing to fetch {shown}: not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"refusing to fetch {shown}: only http and https URLs are accepted")
    if parts.username or parts.password:
        raise FetchRefused(f"refusing to fetch {shown}: credentials in URLs are not accepted")
    if not host:
        raise FetchRefused(f"refusing to fetch {shown}: no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchRefused(f"refusing to fetch {shown}: invalid port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {shorten(host)}: {exc}") from None
    except ValueError:  # UnicodeError (a label too long for IDNA), an embedded NUL...
        raise FetchRefused(f"refusing to fetch {shown}: invalid host name") from None
    addresses = sorted({info[4][0] for info in infos})
    if f"{host.lower()}:{port}" not in settings.fetch_allow:
        for address in addresses:
            refusal = address_refusal(address.split("%", 1)[0])
            if refusal is not None:
                raise FetchRefused(
                    f"refusing to fetch {shown}: {shorten(host)} resolves to {refusal} "
                    "(list host:port in TRANSLATOR_FETCH_ALLOW to allow it)"
                )
    return scheme, host, port, addresses[0]


class _Deadline:
    """One deadline for a whole download, and the per-operation timeout within it."""

    def __init__(self, total: float, step: float) -> None:
        self.total = total
        self.step = step
        self.end = time.monotonic() + total

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def timeout(self) -> float:
        """The timeout of the next blocking operation; TimeoutError when the deadline has passed."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("fetch deadline passed")
        return min(self.step, left)


class _PacedReader(io.RawIOBase):
    """A socket's input where every receive is bounded by the deadline (a drip cannot extend it).

    It reads through the socket's own ``makefile`` object, which keeps the socket open while the
    response is read even when the connection lets go of it (``Connection: close``)."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.timeout())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _PacedSocket:
    """What ``HTTPResponse`` uses of a socket (``makefile``), reading through a ``_PacedReader``."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_PacedReader(self._sock, self._deadline))


def _paced_response(sock: socket.socket, *, deadline: _Deadline, **kwargs: Any) -> http.client.HTTPResponse:
    return http.client.HTTPResponse(_PacedSocket(sock, deadline), **kwargs)  # type: ignore[arg-type]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """A connection to the checked address, every blocking operation within the deadline."""

    def __init__(self, host: str, port: int, address: str, deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=deadline.step)
        self._address = address
        self._deadline = deadline
        # getresponse() calls self.response_class(sock, method=...): read headers and body paced.
        self.response_class = functools.partial(_paced_response, deadline=deadline)

    def _open(self) -> socket.socket:
        return socket.create_connection((self._address, self.port), self._deadline.timeout())

    def connect(self) -> None:
        self.sock = self._open()

    def send(self, data: Any) -> None:
        if self.sock is not None:
            self.sock.settimeout(self._deadline.timeout())
        super().send(data)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def connect(self) -> None:
        sock = self._open()
        try:
            sock.settimeout(self._deadline.timeout())  # bounds the whole handshake (Python >= 3.5)
            self.sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def fetch_url(url: str, settings: ImageSettings) -> bytes:
    """Download ``url`` with the SSRF guard, following up to 5 checked redirects.

    Everything (connects, TLS handshakes, requests, headers, bodies, redirects) ends within
    ``fetch_deadline`` seconds, and no single operation waits more than ``fetch_timeout``.
    """
    deadline = _Deadline(settings.fetch_deadline, settings.fetch_timeout)
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


def _fetch_once(url: str, settings: ImageSettings, deadline: _Deadline) -> bytes | str:
    """One request: the body, or the URL a redirect points to."""
    scheme, host, port, address = _check_url(url, settings)
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = cls(host, port, address, deadline)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _UNSENDABLE.search(target):
        raise FetchRefused(
            f"refusing to fetch {shorten(url)}: spaces and control characters must be %-encoded"
        )
    try:
        connection.connect()
        connection.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
        response = connection.getresponse()
        status = f"HTTP {response.status} {shorten(response.reason, quote=False)}"
        if response.status in (301, 302, 303, 307, 308):
            location = response.getheader("Location")
            if not location:
                raise FetchRefused(f"{shorten(url)}: redirect without a Location")
            return urljoin(url, location)
        if 400 <= response.status < 500:
            raise FetchRefused(f"{shorten(url)}: {status}")
        if response.status != 200:
            raise OSError(status)
        return _read_capped(response, url, settings.fetch_max_bytes)
    finally:
        connection.close()


def _read_capped(response: http.client.HTTPResponse, url: str, limit: int) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isascii() and declared.isdigit() and int(declared[:19]) > limit:
        raise FetchRefused(
            f"{shorten(url)} is {shorten(declared, 30, quote=False)} bytes, over the limit of {limit}"
        )
    chunks: list[bytes] = []
    total = 0
    while chunk := response.read1(CHUNK):  # whatever arrived: a partial chunk returns at once
        total += len(chunk)
        if total > limit:
            raise FetchRefused(f"{shorten(url)} is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
