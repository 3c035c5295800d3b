"""Outbound HTTP(S) guarded against SSRF: the image fetcher and the HTTP system task use the same rule.

* http and https only, no credentials in the URL;
* every address the host resolves to must be public (``ipaddress.is_global``: no loopback, private,
  link-local such as 169.254.169.254, CGNAT, multicast...; an IPv6 form that embeds an IPv4 address,
  such as NAT64 ``64:ff9b::a9fe:a9fe``, is judged by that IPv4 address) unless ``host:port`` is listed
  in TRANSLATOR_FETCH_ALLOW (``translator.settings.fetch_allow``);
* the connection goes to the address that was checked (no DNS rebinding between check and connect),
  while the Host header, TLS SNI and certificate check use the URL's host name;
* callers check every redirect with :func:`check_url` again and cap what they read
  (:func:`read_capped`);
* a :class:`Deadline` bounds each blocking operation and the whole exchange, whatever the server's
  pace (a server that drips a byte at a time cannot hold a worker).

A refused URL or address raises :class:`FetchRefused` (a NonRetryableError: retrying cannot help);
network trouble raises ordinary errors (OSError, TimeoutError), which a task's retry policy may retry.
Messages quote user-supplied values shortened (``translator.text.shorten``).
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
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from translator.errors import NonRetryableError
from translator.text import shorten

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024
ALLOW_VARIABLE = "TRANSLATOR_FETCH_ALLOW"
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")  # what http.client refuses in a request target

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchRefused(NonRetryableError):
    """The location is not allowed (scheme, address, path) or its content is unacceptable."""


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
    """Whether ``ip`` may be connected to without an entry in TRANSLATOR_FETCH_ALLOW."""
    return address_refusal(ip) is None


# ---------------------------------------------------------------------------------------------
# URLs


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``, checked) and what to ask for."""

    url: str
    scheme: str  # http or https
    host: str  # the URL's host: Host header, TLS SNI and certificate check
    port: int
    address: str  # the checked address the connection goes to
    path: str  # the request target: path and query

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host.lower(), self.port


def check_url(url: str, allow: frozenset[str], *, action: str = "fetch") -> Target:
    """``url`` checked against the SSRF rule, its host resolved once (the address to connect to).

    ``allow``: lowercased ``host:port`` entries exempt from the public-address rule. ``action`` names
    what was refused in messages ("refusing to fetch ..."). FetchRefused for a refused URL, OSError
    when the host cannot be resolved.
    """
    shown = shorten(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise FetchRefused(f"refusing to {action} {shown}: not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"refusing to {action} {shown}: only http and https URLs are accepted")
    if parts.username or parts.password:
        raise FetchRefused(f"refusing to {action} {shown}: credentials in URLs are not accepted")
    if not host:
        raise FetchRefused(f"refusing to {action} {shown}: no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchRefused(f"refusing to {action} {shown}: invalid port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {shorten(host)}: {exc}") from None
    except ValueError:  # UnicodeError (a label too long for IDNA), an embedded NUL...
        raise FetchRefused(f"refusing to {action} {shown}: invalid host name") from None
    addresses = sorted({info[4][0] for info in infos})
    if f"{host.lower()}:{port}" not in allow:
        for address in addresses:
            refusal = address_refusal(address.split("%", 1)[0])
            if refusal is not None:
                raise FetchRefused(
                    f"refusing to {action} {shown}: {shorten(host)} resolves to {refusal} "
                    f"(list host:port in {ALLOW_VARIABLE} to allow it)"
                )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _UNSENDABLE.search(path):
        raise FetchRefused(f"refusing to {action} {shown}: spaces and control characters must be %-encoded")
    return Target(url, scheme, host, port, addresses[0], path)


# ---------------------------------------------------------------------------------------------
# Connections to the checked address, every operation within a deadline


class ConnectTimeout(TimeoutError):
    """No connection within the connect timeout."""


class Deadline:
    """One deadline for a whole exchange, and the timeout of each operation within it.

    ``step``: seconds one send, read or TLS handshake may wait; ``connect``: seconds a TCP connect may
    wait (``step`` when not given).
    """

    def __init__(self, total: float, step: float, connect: float | None = None) -> None:
        self.total = total
        self.step = step
        self.connect = step if connect is None else connect
        self.end = time.monotonic() + total

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def timeout(self, step: float | None = None) -> float:
        """The timeout of the next blocking operation; TimeoutError when the deadline has passed."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return min(self.step if step is None else step, left)


class _PacedReader(io.RawIOBase):
    """A socket's input where every receive is bounded by the deadline (a drip cannot extend it).

    It reads through the socket's own ``makefile`` object, which keeps the socket open while the
    response is read even when the connection lets go of it (``Connection: close``)."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
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

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_PacedReader(self._sock, self._deadline))


def _paced_response(sock: socket.socket, *, deadline: Deadline, **kwargs: Any) -> http.client.HTTPResponse:
    return http.client.HTTPResponse(_PacedSocket(sock, deadline), **kwargs)  # type: ignore[arg-type]


class PinnedHTTPConnection(http.client.HTTPConnection):
    """A connection to the target's checked address, every blocking operation within the deadline."""

    def __init__(self, target: Target, deadline: Deadline) -> None:
        super().__init__(target.host, target.port, timeout=deadline.step)
        self._address = target.address
        self._deadline = deadline
        # getresponse() calls self.response_class(sock, method=...): read headers and body paced.
        self.response_class = functools.partial(_paced_response, deadline=deadline)

    def _open(self) -> socket.socket:
        try:
            return socket.create_connection(
                (self._address, self.port), self._deadline.timeout(self._deadline.connect)
            )
        except TimeoutError:
            if self._deadline.expired:
                raise
            raise ConnectTimeout(f"no connection within {self._deadline.connect:g} s") from None

    def connect(self) -> None:
        self.sock = self._open()

    def send(self, data: Any) -> None:
        if self.sock is not None:
            self.sock.settimeout(self._deadline.timeout())
        super().send(data)


class PinnedHTTPSConnection(PinnedHTTPConnection):
    """TLS to the checked address; SNI and the certificate check use the URL's host name."""

    default_port = 443

    def __init__(self, target: Target, deadline: Deadline, context: ssl.SSLContext | None = None) -> None:
        super().__init__(target, deadline)
        self._context = context or ssl.create_default_context()

    def connect(self) -> None:
        sock = self._open()
        try:
            sock.settimeout(self._deadline.timeout())  # bounds the whole handshake (Python >= 3.5)
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def open_connection(
    target: Target, deadline: Deadline, *, tls_context: ssl.SSLContext | None = None
) -> PinnedHTTPConnection:
    """A connection (not yet connected) to ``target``'s checked address; ``tls_context`` for https
    (default: the system's trusted certificates, host name checked)."""
    if target.scheme == "https":
        return PinnedHTTPSConnection(target, deadline, tls_context)
    return PinnedHTTPConnection(target, deadline)


def read_capped(response: http.client.HTTPResponse, url: str, limit: int, setting: str = "") -> bytes:
    """The whole body of ``response``; FetchRefused beyond ``limit`` bytes (``setting``: the variable
    that sets the limit, named in the message)."""
    named = f" ({setting})" if setting else ""
    declared = response.getheader("Content-Length")
    if declared and declared.isascii() and declared.isdigit() and int(declared[:19]) > limit:
        raise FetchRefused(
            f"{shorten(url)} is {shorten(declared, 30, quote=False)} bytes, over the limit of {limit}{named}"
        )
    chunks: list[bytes] = []
    total = 0
    while chunk := response.read1(CHUNK):  # whatever arrived: a partial chunk returns at once
        total += len(chunk)
        if total > limit:
            raise FetchRefused(f"{shorten(url)} is larger than the limit of {limit} bytes{named}")
        chunks.append(chunk)
    return b"".join(chunks)
