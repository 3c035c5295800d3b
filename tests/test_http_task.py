"""The HTTP system task against real servers on 127.0.0.1: Conductor's input forms and output shape,
failures, timeouts, redirects, and the SSRF guard (refused addresses are never connected to: a spy on
``socket.create_connection`` fails the test if one is)."""

from __future__ import annotations

import datetime
import json
import pickle
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from translator.errors import NonRetryableError
from translator.net import FetchRefused
from translator.runtime.http_task import (
    FAILED_PREFIX,
    MISSING_METHOD,
    MISSING_URI,
    HttpTaskFailed,
    HttpTransportError,
    InvalidHttpRequest,
    call_http,
    parse_body,
    redirect_becomes_get,
)

SECRET = "Bearer s3cr3t-token"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Server:
    url: str
    port: int
    seen: list[Seen] = field(default_factory=list)

    @property
    def allow(self) -> frozenset[str]:
        return frozenset({f"127.0.0.1:{self.port}"})


class _Handler(BaseHTTPRequestHandler):
    """Answers by path: /json, /text, /numeric, /echo, /status?code=&body=, /redirect?code=&to=,
    /loop, /big?size=, /stall, /drip."""

    seen: list[Seen]
    release: threading.Event

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = parts.path
        if route == "/json":
            self._reply(200, json.dumps({"key": "value1", "num": 42, "SomeKey": None}), "application/json")
        elif route == "/text":
            self._reply(200, "Text Response", "text/plain")
        elif route == "/numeric":
            self._reply(200, "42.42", "text/plain")
        elif route == "/echo":
            echo = {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers.items()),
                "body": body,
            }
            self._reply(200, json.dumps(echo), "application/json")
        elif route == "/status":
            self._reply(int(query["code"]), query.get("body", ""), query.get("type", "text/plain"))
        elif route == "/redirect":
            self._reply(int(query["code"]), "", "text/plain", location=query["to"])
        elif route == "/loop":
            self._reply(302, "", "text/plain", location="/loop")
        elif route == "/big":
            self._reply(200, "x" * int(query["size"]), "text/plain")
        elif route == "/stall":  # never answers; the test's teardown lets the thread go
            self.release.wait(30)
        elif route == "/drip":  # a header line that never ends, a byte at a time
            self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
            while not self.release.wait(0.1):
                self.wfile.write(b"a")
                self.wfile.flush()

    def _reply(self, code: int, body: str, content_type: str, location: str | None = None) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Set-Cookie", "a=1")
        self.send_header("Set-Cookie", "b=2")
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_server(tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    release = threading.Event()
    seen: list[Seen] = []
    handler = type("Handler", (_Handler,), {"seen": seen, "release": release})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Server(f"{'https' if tls else 'http'}://127.0.0.1:{port}", port, seen)
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def server() -> Iterator[Server]:
    with http_server() as running:
        yield running


@pytest.fixture
def connects(monkeypatch) -> list[tuple[str, int]]:
    """Every address the client connects to; anything but loopback is refused without connecting."""
    seen: list[tuple[str, int]] = []
    real = socket.create_connection

    def spy(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        seen.append(address)
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"test: no connection to {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    return seen


def resolve_as(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Make ``socket.getaddrinfo`` answer ``answers[host]`` (other hosts as usual); returns the
    names looked up."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def fake(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def get(url: str, **extra: Any) -> dict[str, Any]:
    return {"http_request": {"uri": url, "method": "GET", **extra}}


# ---------------------------------------------------------------------------------------------
# Input forms, methods, bodies, headers


def test_get_json_in_the_flat_form(server, connects):
    """No ``http_request``: uri and method at the top of the input, as Conductor accepts them."""
    output = call_http(
        {"uri": f"{server.url}/json", "method": "GET", "asyncComplete": False}, allow=server.allow
    )
    response = output["response"]
    assert set(output) == {"response"}
    assert response["statusCode"] == 200
    assert response["reasonPhrase"] == "OK"
    assert response["body"] == {"key": "value1", "num": 42, "SomeKey": None}
    assert response["headers"]["Content-Type"] == ["application/json"]
    assert response["headers"]["Set-Cookie"] == ["a=1", "b=2"]  # every value, as Conductor's headers
    sent = server.seen[0].headers
    assert (sent["Accept"], sent["Content-Type"]) == ("application/json", "application/json")
    assert connects == [("127.0.0.1", server.port)]


def test_http_request_wins_over_top_level_keys(server):
    task_input = {"http_request": {"uri": f"{server.url}/text", "method": "GET"}, "uri": "http://x.invalid/"}
    assert call_http(task_input, allow=server.allow)["response"]["body"] == "Text Response"


def test_text_and_number_bodies(server):
    assert call_http(get(f"{server.url}/text"), allow=server.allow)["response"]["body"] == "Text Response"
    number = call_http(get(f"{server.url}/numeric"), allow=server.allow)["response"]["body"]
    assert number == 42.42 and isinstance(number, float)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (None, None),
        ("", None),
        ("  ", ""),
        ('{"a": [1, 2.5]}', {"a": [1, 2.5]}),
        ("[1, 2]", [1, 2]),
        ("42", 42.0),
        ("42 ", 42.0),
        ('"abc"', "abc"),
        ("true", "true"),
        ("null", "null"),
        ("Text Response", "Text Response"),
        ("2024-01-01", "2024-01-01"),  # a number must end at a space: not JSON to Jackson
        ("NaN", "NaN"),
        ('{"a": 1} trailing', {"a": 1}),  # only the first value counts
    ],
)
def test_bodies_are_read_as_conductor_reads_them(text, parsed):
    assert parse_body(text) == parsed
    assert type(parse_body(text)) is type(parsed)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_object_bodies_are_sent_as_json(server, method):
    body = {"input_key1": "value1", "input_key2": 45.3, "someKey": None, "name": "café"}
    output = call_http(
        {"http_request": {"uri": f"{server.url}/echo", "method": method.lower(), "body": body}},
        allow=server.allow,
    )
    echo = output["response"]["body"]
    assert echo["method"] == method
    assert json.loads(echo["body"]) == body
    assert echo["body"] == json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    assert echo["headers"]["Content-Type"] == "application/json"


def test_string_bodies_accept_lists_and_headers(server):
    output = call_http(
        {
            "http_request": {
                "uri": f"{server.url}/echo",
                "method": "PUT",
                "body": "plain words",
                "contentType": "text/plain",
                "accept": ["text/plain", "application/json"],
                "headers": {"X-Count": 3, "X-Flag": True, "X-Skipped": None, "content-type": "text/csv"},
            }
        },
        allow=server.allow,
    )
    echo = output["response"]["body"]
    assert echo["body"] == "plain words"
    assert echo["headers"]["Accept"] == "text/plain, application/json"
    sent_types = [v for k, v in echo["headers"].items() if k.lower() == "content-type"]
    assert sent_types == ["text/csv"]  # the task's header replaces contentType
    assert (echo["headers"]["X-Count"], echo["headers"]["X-Flag"]) == ("3", "true")
    assert "X-Skipped" not in echo["headers"]


def test_no_content(server):
    output = call_http(
        {"http_request": {"uri": f"{server.url}/status?code=204", "method": "POST", "body": {"a": 1}}},
        allow=server.allow,
    )
    assert (output["response"]["statusCode"], output["response"]["body"]) == (204, None)
    assert output["response"]["reasonPhrase"] == "No Content"


def test_spaces_in_the_uri_are_encoded(server):
    call_http(get(f"{server.url}/echo?q=a b&r=%2F"), allow=server.allow)
    assert server.seen[0].path == "/echo?q=a%20b&r=%2F"


# ---------------------------------------------------------------------------------------------
# Failures


def test_server_error_fails_with_conductors_reason_and_response(server, caplog):
    """HttpTask.start: reason "Failed to invoke HTTP task due to: " + e, output response = e.toString(),
    where e is the java.lang.Exception httpCall makes of Spring's HttpServerErrorException."""
    caplog.set_level("DEBUG")
    url = f"{server.url}/status?code=500&body=Something+went+wrong!&token=hidden"
    with pytest.raises(HttpTaskFailed) as failed:
        call_http(get(url, headers={"Authorization": SECRET}), allow=server.allow)
    shown = repr(f"{server.url}/status")  # the query is left out: it may carry a credential
    exception = (
        f'java.lang.Exception: 500 Internal Server Error on GET request for {shown}: "Something went wrong!"'
    )
    assert str(failed.value) == f"Failed to invoke HTTP task due to: {exception}"
    assert failed.value.output == {"response": exception}
    assert not isinstance(failed.value, NonRetryableError)
    copy = pickle.loads(pickle.dumps(failed.value))  # it crosses worker process boundaries
    assert (str(copy), copy.output) == (str(failed.value), failed.value.output)
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in str(failed.value)


def test_client_error_quotes_the_body(server):
    with pytest.raises(
        HttpTaskFailed, match=r"404 Not Found on GET request .*: \"\{\"error\": \"nope\"\}\"$"
    ) as failed:
        call_http(
            get(f"{server.url}/status?code=404&type=application/json&body=" + '{"error": "nope"}'),
            allow=server.allow,
        )
    assert failed.value.output == {"response": str(failed.value).removeprefix(FAILED_PREFIX)}


def test_a_status_that_is_neither_success_nor_error(server):
    """RestTemplate returns a 304 without throwing: FAILED, response = the response (HttpTask.start)."""
    with pytest.raises(HttpTaskFailed, match=r"^No response from the remote service \(HTTP 304 Not Modified"):
        call_http(get(f"{server.url}/status?code=304"), allow=server.allow)


@pytest.mark.parametrize(
    ("task_input", "message"),
    [
        ({"http_request": {"method": "GET"}}, MISSING_URI),
        ({"uri": "http://127.0.0.1/"}, MISSING_METHOD),
        ({"http_request": "http://127.0.0.1/"}, "http_request must be an object"),
        ({"http_request": {"uri": "http://127.0.0.1/", "method": "GET /x"}}, "is not an HTTP method"),
        (
            {
                "http_request": {
                    "uri": "http://127.0.0.1/",
                    "method": "POST",
                    "body": {"a": 1},
                    "contentType": "text/plain",
                }
            },
            "a body of type dict cannot be sent as 'text/plain'",
        ),
        (
            {
                "http_request": {
                    "uri": "http://127.0.0.1/",
                    "method": "GET",
                    "headers": {"X-A": "1\r\nX-B: 2"},
                }
            },
            "header 'X-A' contains a line break",
        ),
        (
            {"http_request": {"uri": "http://127.0.0.1/", "method": "GET", "readTimeOut": -1}},
            "readTimeOut must be",
        ),
        (
            {"http_request": {"uri": "http://127.0.0.1/", "method": "GET", "connectionTimeOut": "soon"}},
            "connectionTimeOut",
        ),
    ],
    ids=[
        "no uri",
        "no method",
        "not an object",
        "bad method",
        "object as text",
        "header injection",
        "negative",
        "text",
    ],
)
def test_inputs_conductor_rejects_fail_for_good(task_input, message, connects):
    with pytest.raises(InvalidHttpRequest, match=message.replace("(", r"\(")) as refused:
        call_http(task_input, allow=frozenset({"127.0.0.1:80"}))
    assert isinstance(refused.value, NonRetryableError)
    assert connects == []


def test_connection_refused_is_retryable(connects):
    with socket.socket() as reserved:  # a port nothing listens on
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        with pytest.raises(HttpTransportError) as failed:
            call_http(get(f"http://127.0.0.1:{port}/?key=secret"), allow=frozenset({f"127.0.0.1:{port}"}))
    assert not isinstance(failed.value, NonRetryableError)
    # HttpTask.start: reason "Failed to invoke HTTP task due to: " + e, output response = e.toString(),
    # e being the java.lang.Exception that httpCall makes of Spring's ResourceAccessException
    exception = str(failed.value).removeprefix(FAILED_PREFIX)
    assert re.fullmatch(
        rf"java\.lang\.Exception: I/O error on GET request for 'http://127\.0\.0\.1:{port}/': "
        r".*Connection refused",
        exception,
    )
    assert str(failed.value) == FAILED_PREFIX + exception
    assert failed.value.output == {"response": exception}
    copy = pickle.loads(pickle.dumps(failed.value))  # it crosses worker process boundaries
    assert (str(copy), copy.output) == (str(failed.value), failed.value.output)


def test_unresolvable_host_is_retryable(monkeypatch, connects):
    def fail(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(HttpTransportError, match=r"cannot resolve 'api\.example'"):
        call_http(get("http://api.example/v1"), allow=frozenset())
    assert connects == []


def test_response_size_is_capped(server):
    with pytest.raises(FetchRefused, match=r"over the limit of 1000 \(TRANSLATOR_HTTP_MAX_BYTES\)"):
        call_http(get(f"{server.url}/big?size=5000"), allow=server.allow, max_bytes=1000)
    assert (
        len(
            call_http(get(f"{server.url}/big?size=1000"), allow=server.allow, max_bytes=1000)["response"][
                "body"
            ]
        )
        == 1000
    )


# ---------------------------------------------------------------------------------------------
# Timeouts


def test_read_timeout_is_conductors_read_time_out(server):
    started = time.monotonic()
    with pytest.raises(HttpTransportError, match=r"Read timed out after 300 ms \(readTimeOut\)$"):
        call_http(get(f"{server.url}/stall", readTimeOut=300), allow=server.allow, deadline=30)
    assert time.monotonic() - started < 10


def test_a_dripping_server_cannot_outlast_the_deadline(server):
    started = time.monotonic()
    with pytest.raises(
        HttpTransportError, match=r"no complete response within 1\.5 s \(TRANSLATOR_HTTP_DEADLINE\)$"
    ):
        call_http(get(f"{server.url}/drip", readTimeOut=1000), allow=server.allow, deadline=1.5)
    assert time.monotonic() - started < 1.5 + 5


def test_connect_timeout_is_conductors_connection_time_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued: list[socket.socket] = []
        try:
            for _ in range(8):  # fill the accept queue: further connects then get no answer
                probe = socket.socket()
                queued.append(probe)
                probe.settimeout(0.3)
                try:
                    probe.connect(("127.0.0.1", port))
                except TimeoutError:
                    break
            else:
                pytest.skip("this kernel answers connects beyond the listen backlog")
            started = time.monotonic()
            with pytest.raises(
                HttpTransportError, match=r"Connect timed out after 200 ms \(connectionTimeOut\)$"
            ):
                call_http(
                    get(f"http://127.0.0.1:{port}/", connectionTimeOut=200),
                    allow=frozenset({f"127.0.0.1:{port}"}),
                    deadline=30,
                )
            assert time.monotonic() - started < 10
        finally:
            for probe in queued:
                probe.close()


# ---------------------------------------------------------------------------------------------
# Redirects


def redirect(server: Server, code: int, to: str) -> str:
    return f"{server.url}/redirect?code={code}&to={to}"


@pytest.mark.parametrize(
    ("code", "method", "followed_with"),
    [
        (302, "GET", "GET"),
        (301, "POST", "GET"),
        (302, "POST", "GET"),
        (303, "PUT", "GET"),
        (307, "POST", "POST"),
        (308, "PUT", "PUT"),
        (302, "PUT", "PUT"),
    ],
)
def test_redirects_are_followed_as_conductors_client_does(server, code, method, followed_with):
    assert redirect_becomes_get(code, method) == (followed_with != method)
    output = call_http(
        {"http_request": {"uri": redirect(server, code, "/echo"), "method": method, "body": {"a": 1}}},
        allow=server.allow,
    )
    echo = output["response"]["body"]
    assert echo["method"] == followed_with
    assert echo["body"] == ("" if followed_with != method else '{"a":1}')  # a repeated request keeps its body


def test_a_redirect_to_another_origin_does_not_carry_credentials(server):
    with http_server() as other:
        allow = server.allow | other.allow
        headers = {"Authorization": SECRET, "Cookie": "session=1", "X-Trace": "t1"}
        echo = call_http(get(redirect(server, 307, f"{other.url}/echo"), headers=headers), allow=allow)
    sent = echo["response"]["body"]["headers"]
    assert "Authorization" not in sent and "Cookie" not in sent
    assert sent["X-Trace"] == "t1"
    same = call_http(get(redirect(server, 307, "/echo"), headers=headers), allow=server.allow)
    assert same["response"]["body"]["headers"]["Authorization"] == SECRET


def test_each_redirect_is_checked_again(server, connects):
    """The first hop is allow-listed; the metadata address it redirects to is not."""
    with pytest.raises(FetchRefused, match=r"169\.254\.169\.254, which is not a public address") as refused:
        call_http(get(redirect(server, 302, "http://169.254.169.254/latest/meta-data/")), allow=server.allow)
    assert "TRANSLATOR_FETCH_ALLOW" in str(refused.value)
    assert connects == [("127.0.0.1", server.port)]


def test_redirect_loops_end(server):
    with pytest.raises(FetchRefused, match="more than 5 redirects"):
        call_http(get(f"{server.url}/loop"), allow=server.allow)
    assert len(server.seen) == 6


# ---------------------------------------------------------------------------------------------
# The SSRF guard


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://127.0.0.1:{port}/json", "127.0.0.1, which is not a public address"),
        ("http://localhost:{port}/json", "which is not a public address"),
        ("http://10.1.2.3/", "10.1.2.3, which is not a public address"),
        ("http://192.168.0.1/", "192.168.0.1, which is not a public address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, which is not a public address"),
        ("http://[::ffff:169.254.169.254]/", "the IPv4-mapped form of 169.254.169.254"),
        ("http://[64:ff9b::7f00:1]:{port}/", "the NAT64 form of 127.0.0.1"),
        ("ftp://example.com/file", "only http and https URLs are accepted"),
        ("file:///etc/passwd", "only http and https URLs are accepted"),
        ("http://user:pw@example.com/", "credentials in URLs are not accepted"),
    ],
)
def test_refused_without_connecting(server, connects, url, named):
    with pytest.raises(FetchRefused, match=r"^refusing to call ") as refused:
        call_http(get(url.format(port=server.port)), allow=frozenset())
    message = str(refused.value)
    assert named in message
    if "address" in named or "form of" in named:
        assert "list host:port in TRANSLATOR_FETCH_ALLOW to allow it" in message
    assert isinstance(refused.value, NonRetryableError)
    assert connects == [] and server.seen == []


def test_allow_list_is_per_host_and_port(server, connects):
    with pytest.raises(FetchRefused):
        call_http(get(f"{server.url}/json"), allow=frozenset({f"127.0.0.1:{server.port + 1}"}))
    assert connects == []


def test_a_name_with_any_private_address_is_refused(monkeypatch, connects):
    resolve_as(monkeypatch, {"mixed.example": ["93.184.215.14", "127.0.0.1"]})
    with pytest.raises(FetchRefused, match=r"'mixed\.example' resolves to 127\.0\.0\.1"):
        call_http(get("http://mixed.example/"), allow=frozenset())
    assert connects == []


def test_dns_rebinding_cannot_redirect_the_connection(monkeypatch, connects):
    """The name is resolved once, to a public address, and the connection goes there: a second
    answer (loopback) is never asked for nor used."""
    answers = {"rebind.example": ["93.184.215.14"]}
    asked = resolve_as(monkeypatch, answers)
    original = socket.getaddrinfo

    def rebinding(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        found = original(host, *args, **kwargs)
        answers["rebind.example"] = ["127.0.0.1"]  # every later lookup says loopback
        return found

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(HttpTransportError, match=r"no connection to 93\.184\.215\.14"):
        call_http(get("http://rebind.example:8080/"), allow=frozenset())
    assert asked == ["rebind.example"]
    assert connects == [("93.184.215.14", 8080)]


def test_the_host_header_names_the_url_host_while_the_checked_address_is_dialled(
    server, monkeypatch, connects
):
    resolve_as(monkeypatch, {"service.test": ["127.0.0.1"]})
    output = call_http(
        get(f"http://service.test:{server.port}/echo"), allow=frozenset({f"service.test:{server.port}"})
    )
    assert output["response"]["body"]["headers"]["Host"] == f"service.test:{server.port}"
    assert connects == [("127.0.0.1", server.port)]


# ---------------------------------------------------------------------------------------------
# TLS to the pinned address: SNI and the certificate check use the URL's host name


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA, and a certificate for service.test it signed: (ca, cert, key) PEM files."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key: Any, issuer: str, signer: Any, *, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("translator test CA", ca_key, "translator test CA", ca_key, ca=True)
    leaf = build("service.test", leaf_key, "translator test CA", ca_key, ca=False)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def test_https_checks_the_certificate_of_the_url_host(tmp_path, monkeypatch, connects):
    ca, cert, key = _certificates(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, context: names.append(name)
    client_tls = ssl.create_default_context(cafile=str(ca))
    resolve_as(monkeypatch, {"service.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    with http_server(server_tls) as tls_server:
        port = tls_server.port
        allow = frozenset({f"service.test:{port}", f"other.test:{port}"})
        output = call_http(get(f"https://service.test:{port}/json"), allow=allow, tls_context=client_tls)
        assert output["response"]["body"]["key"] == "value1"
        assert names == ["service.test"]
        with pytest.raises(HttpTransportError, match="certificate verify failed"):
            call_http(get(f"https://other.test:{port}/json"), allow=allow, tls_context=client_tls)
    assert set(connects) == {("127.0.0.1", port)}
