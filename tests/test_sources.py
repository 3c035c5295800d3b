"""The URL fetcher: the SSRF rule on every address form, one deadline for the whole download, and
bounded messages. Servers are real sockets on 127.0.0.1; refused addresses are never connected to
(a spy on ``socket.create_connection`` fails the test if one is)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tasks.config import ImageSettings
from tasks.sources import FetchRefused, address_refusal, fetch_url, is_public_address, load_source
from tests.services import http_server

MB_HOST = "a" * (1024 * 1024)


def make_settings(*allow: str, timeout: float = 1.0, deadline: float = 2.0) -> ImageSettings:
    return replace(
        ImageSettings.from_env(), fetch_timeout=timeout, fetch_deadline=deadline, fetch_allow=frozenset(allow)
    )


@pytest.fixture
def connects(monkeypatch) -> list[tuple[str, int]]:
    """Every address the fetcher connects to; anything but loopback fails the test before connecting."""
    seen: list[tuple[str, int]] = []
    real = socket.create_connection

    def spy(address: tuple[str, int], *args, **kwargs):
        seen.append(address)
        assert address[0] == "127.0.0.1", f"the fetcher tried to connect to {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    return seen


# ---------------------------------------------------------------------------------------------
# The address rule (pure)

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "::ffff:8.8.8.8",  # IPv4-mapped 8.8.8.8
]

# (address, what the reason must name)
REFUSED = [
    ("127.0.0.1", "127.0.0.1, which is not a public address"),
    ("10.1.2.3", "10.1.2.3, which"),
    ("169.254.169.254", "169.254.169.254, which"),
    ("100.64.0.1", "100.64.0.1, which"),  # CGNAT
    ("224.0.0.1", "224.0.0.1, which"),  # multicast
    ("::1", "::1, which"),
    ("::", "::, which"),
    ("fe80::1", "fe80::1, which"),
    ("fd00::1", "fd00::1, which"),
    ("ff0e::1", "ff0e::1, which"),  # global-scope multicast
    ("64:ff9b::a9fe:a9fe", "the NAT64 form of 169.254.169.254"),
    ("64:ff9b::7f00:1", "the NAT64 form of 127.0.0.1"),
    ("64:ff9b::c0a8:101", "the NAT64 form of 192.168.1.1"),
    ("64:ff9b:1::a9fe:a9fe", "the local-use NAT64 form of 169.254.169.254"),
    ("64:ff9b:1::808:808", "a local-use NAT64 address (64:ff9b:1::/48)"),  # local use: never public
    ("2002:7f00:1::", "the 6to4 form of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "the 6to4 form of 169.254.169.254"),
    ("2002:a00:1::", "the 6to4 form of 10.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "the Teredo form (client) of 127.0.0.1"),
    ("2001:0:a9fe:a9fe:8000:63bf:f7f7:f7f7", "the Teredo form (server) of 169.254.169.254"),
    ("2001:0:808:808::f7f7:f7f7", "2001:0:808:808::f7f7:f7f7, which"),  # Teredo is not public at all
    ("::7f00:1", "the IPv4-compatible form of 127.0.0.1"),
    ("::a9fe:a9fe", "the IPv4-compatible form of 169.254.169.254"),
    ("::ffff:127.0.0.1", "the IPv4-mapped form of 127.0.0.1"),
    ("::ffff:169.254.169.254", "the IPv4-mapped form of 169.254.169.254"),
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address):
    assert is_public_address(address), address_refusal(address)


@pytest.mark.parametrize(("address", "named"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_addresses_and_why(address, named):
    assert not is_public_address(address)
    reason = address_refusal(address)
    assert reason is not None and named in reason, reason


# ---------------------------------------------------------------------------------------------
# The check in the fetcher: literal hosts, names, redirects

TRANSITION_FORMS = [address for address, named in REFUSED if "form of" in named]


@pytest.mark.parametrize("address", TRANSITION_FORMS)
def test_literal_transition_form_is_refused_without_connecting(address, connects):
    with pytest.raises(FetchRefused, match="which is not a public address") as refused:
        fetch_url(f"http://[{address}]:8080/latest/meta-data/", make_settings())
    assert "form of" in str(refused.value)
    assert connects == []


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "2002:7f00:1::", "::7f00:1"])
def test_name_resolving_to_a_transition_form_is_refused(address, connects, monkeypatch):
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 80)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, 80, 0, 0)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
    with pytest.raises(FetchRefused, match=r"'images\.example' resolves to .*form of"):
        fetch_url("http://images.example/cat.png", make_settings())
    assert connects == []


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def redirect_server(target: str) -> Iterator[int]:
    handler = type("Redirect", (_Redirect,), {"target": target})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_redirect_to_nat64_loopback_is_refused(connects):
    """The first hop is allow-listed; the redirect to the NAT64 form of 127.0.0.1 is not."""
    with socket.socket() as reserved:  # a port for the redirect target, never listened on
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        with redirect_server(f"http://[64:ff9b::7f00:1]:{port}/") as first:
            settings = make_settings(f"127.0.0.1:{first}")
            with pytest.raises(FetchRefused) as refused:
                fetch_url(f"http://127.0.0.1:{first}/image.png", settings)
    message = str(refused.value)
    assert "64:ff9b::7f00:1, the NAT64 form of 127.0.0.1, which is not a public address" in message
    assert connects == [("127.0.0.1", first)]


# ---------------------------------------------------------------------------------------------
# One deadline, whatever the server's pace


PREFIX = {
    "headers": b"HTTP/1.1 200 OK\r\nX-Slow: ",
    "body": b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n",
    "tls": b"\x16\x03\x03\x40\x00",  # a TLS handshake record of 16 KiB, to come a byte at a time
}


class DripServer:
    """A raw socket server on 127.0.0.1 that answers one request a byte every ``pace`` seconds.

    ``headers``: a header line that never ends; ``body``: complete headers, then a dripped body;
    ``tls``: a TLS handshake record that never ends.
    The thread stops by itself after ``stop_after`` seconds or when the client goes away.
    """

    def __init__(self, mode: str, pace: float = 0.2, stop_after: float = 20.0) -> None:
        self.mode, self.pace, self.stop_after = mode, pace, stop_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DripServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(self.stop_after + 5)
        self.listener.close()

    def _serve(self) -> None:
        end = time.monotonic() + self.stop_after
        self.listener.settimeout(self.stop_after)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(self.stop_after)
            try:
                conn.recv(65536)
                conn.sendall(PREFIX[self.mode])
                while time.monotonic() < end:
                    conn.sendall(b"a")
                    time.sleep(self.pace)
            except OSError:  # the client gave up
                return


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_dripping_server_cannot_outlast_the_deadline(mode, connects):
    with DripServer(mode) as server:
        url = f"http://127.0.0.1:{server.port}/slow.png"
        started = time.monotonic()
        with pytest.raises(TimeoutError) as timed_out:
            fetch_url(url, make_settings(f"127.0.0.1:{server.port}", timeout=1.0, deadline=2.0))
        elapsed = time.monotonic() - started
    assert elapsed < 2.0 + 5.0, f"the fetch ran {elapsed:.1f} s with a 2 s deadline"
    assert str(timed_out.value) == (
        f"fetching {url!r}: no complete response within 2 s (TRANSLATOR_FETCH_DEADLINE)"
    )


def test_dripped_tls_handshake_is_bounded_too(connects):
    with DripServer("tls") as server:
        url = f"https://127.0.0.1:{server.port}/slow.png"
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"took more than 1 s to answer"):
            fetch_url(url, make_settings(f"127.0.0.1:{server.port}", timeout=1.0, deadline=2.0))
        assert time.monotonic() - started < 2.0 + 5.0


def test_silent_server_times_out_per_operation(connects):
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts (backlog), never answers
        port = listener.getsockname()[1]
        url = f"http://127.0.0.1:{port}/"
        started = time.monotonic()
        with pytest.raises(
            TimeoutError, match=r"took more than 0\.5 s to answer \(TRANSLATOR_FETCH_TIMEOUT\)"
        ):
            fetch_url(url, make_settings(f"127.0.0.1:{port}", timeout=0.5, deadline=30.0))
        assert time.monotonic() - started < 10


class _Chunked(BaseHTTPRequestHandler):
    """HTTP/1.1, chunked, no Content-Length: the size is known only by reading."""

    protocol_version = "HTTP/1.1"
    chunks = 40

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for _ in range(self.chunks):
            self.wfile.write(b"1000\r\n" + b"x" * 4096 + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


def test_whole_bodies_are_read(connects, tmp_path):
    (tmp_path / "image.bin").write_bytes(bytes(range(256)) * 4000)
    with http_server(tmp_path) as web:  # HTTP/1.0: the server closes the connection
        port = web.rsplit(":", 1)[1]
        assert (
            fetch_url(f"{web}/image.bin", make_settings(f"127.0.0.1:{port}"))
            == (tmp_path / "image.bin").read_bytes()
        )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Chunked)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        settings = make_settings(f"127.0.0.1:{port}")
        assert fetch_url(f"http://127.0.0.1:{port}/", settings) == b"x" * 4096 * 40
        with pytest.raises(FetchRefused, match="is larger than the limit of 100000 bytes"):
            fetch_url(f"http://127.0.0.1:{port}/", replace(settings, fetch_max_bytes=100_000))
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------
# Bounded messages, and malformed locations refused for good


def test_megabyte_url_gives_a_short_reason(connects):
    url = f"http://169.254.169.254/{'a' * 1024 * 1024}"
    with pytest.raises(FetchRefused) as refused:
        fetch_url(url, make_settings())
    message = str(refused.value)
    assert len(message) < 1000, len(message)
    assert message.startswith("refusing to fetch 'http://169.254.169.254/aaaa")
    assert f"…' ({len(url)} characters): " in message
    assert connects == []


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (f"http://{MB_HOST}/x.png", "invalid host name"),
        ("http://[::1/x.png", "not a valid URL"),
        (f"{MB_HOST}.png", "is not a usable path"),
        ("bad\x00name.png", "is not a usable path"),
        (f"/{MB_HOST}.png", "is outside the TRANSLATOR_INPUT_ROOT directory"),
        (f"{MB_HOST}://x/y.png", "is not accepted"),
        ("http://127.0.0.1:9/a cat.png", "spaces and control characters must be %-encoded"),
    ],
    ids=["megabyte host", "broken IPv6", "megabyte name", "NUL", "megabyte path", "megabyte scheme", "space"],
)
def test_malformed_locations_are_refused_briefly(location, expected, connects, tmp_path):
    settings = replace(make_settings("127.0.0.1:9"), input_root=tmp_path)
    with pytest.raises(FetchRefused, match=expected) as refused:
        load_source(location, settings)
    assert len(str(refused.value)) < 1000
    assert connects == []


def test_deadline_default_is_twice_the_operation_timeout(monkeypatch):
    monkeypatch.setenv("TRANSLATOR_FETCH_TIMEOUT", "4")
    monkeypatch.delenv("TRANSLATOR_FETCH_DEADLINE", raising=False)
    assert (ImageSettings.from_env().fetch_timeout, ImageSettings.from_env().fetch_deadline) == (4.0, 8.0)
    monkeypatch.setenv("TRANSLATOR_FETCH_DEADLINE", "2.5")
    assert ImageSettings.from_env().fetch_deadline == 2.5
