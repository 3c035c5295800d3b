"""Conductor's HTTP system task: one HTTP call from the task's resolved input, with the SSRF guard.

Input (Conductor's ``HttpTask.Input``): the ``http_request`` object, or, when the input has no
``http_request``, the same keys at the top of the input: ``uri`` and ``method`` (required; the method
is sent upper-cased; spaces and non-ASCII characters in the URI are %-encoded as Conductor's client does),
``headers`` (an object), ``body`` (a string is sent as it is; anything else is JSON-encoded, which
Conductor does only for JSON content types), ``accept`` (a string or a list; default
``application/json``), ``contentType`` (default ``application/json``, sent even without a body, as
Conductor does), ``connectionTimeOut`` and ``readTimeOut`` (milliseconds, default 3000; 0: no limit
but the deadline). ``vipAddress``, ``appName`` and unknown keys are ignored, as in Conductor.

Output: ``{"response": {"statusCode", "headers", "body", "reasonPhrase"}}``, Conductor's shape: headers
map each name to the list of its values, ``reasonPhrase`` is the standard phrase of the status, and
the body is parsed as Conductor's ``HttpTask.extractBody`` does (an object or array as JSON, a number
as a float, any other JSON value as its text, anything else as the raw text; none when empty).

Failures (``HttpTask.start``; the task's reason is the exception's text, its output ``output``):

* 4xx/5xx raise :class:`HttpTaskFailed`, network errors and timeouts :class:`HttpTransportError`
  (retryable), with Conductor's reason ``Failed to invoke HTTP task due to: `` + the exception:
  ``HttpTask.httpCall`` rethrows Spring's RestClientException as ``new Exception(message)``, so the
  exception reads ``java.lang.Exception: 404 Not Found on GET request for '<url without query>':
  "<body>"`` or ``java.lang.Exception: I/O error on GET request for '<url>': <detail>``; the output
  ``response`` is that exception text, the reason without its prefix (``e.toString()``);
* a 3xx that is not a followed redirect (304...) raises :class:`HttpTaskFailed` with ``No response
  from the remote service`` and the response output above, as Conductor keeps it;
* a refused URL or address raises :class:`translator.net.FetchRefused`, an input Conductor rejects
  raises :class:`InvalidHttpRequest` (both NonRetryableError: retrying cannot help).

Redirects (301, 302, 303, 307, 308) are followed as Conductor's HTTP client (Apache HttpClient 5)
follows them: 303, and 301/302 after a POST, become a GET without body or request headers; the others
repeat the request. Each hop is checked again by the SSRF guard, at most 5 hops (HttpClient allows
50), and Authorization, Proxy-Authorization and Cookie are not sent to another origin.

Beyond Conductor: ``TRANSLATOR_HTTP_MAX_BYTES`` caps the response body (default 10 MiB) and
``TRANSLATOR_HTTP_DEADLINE`` the whole call, redirects included (default 60 s), whatever the server's
pace. Headers are never logged (they carry credentials); this module logs nothing.
"""

from __future__ import annotations

import codecs
import http.client
import json
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from translator.errors import NonRetryableError, TranslatorError
from translator.net import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    ConnectTimeout,
    Deadline,
    FetchRefused,
    Target,
    check_url,
    open_connection,
    read_capped,
)
from translator.settings import env_float, env_int
from translator.text import shorten

REQUEST_PARAMETER = "http_request"
DEFAULT_MEDIA_TYPE = "application/json"
DEFAULT_TIMEOUT_MS = 3000
MAX_BYTES_VARIABLE = "TRANSLATOR_HTTP_MAX_BYTES"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEADLINE_VARIABLE = "TRANSLATOR_HTTP_DEADLINE"
DEFAULT_DEADLINE = 60.0
USER_AGENT = "translator-http-task/1"
# Not sent to another origin after a redirect.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Conductor's messages (HttpTask.start).
MISSING_URI = "Missing HTTP URI.  See documentation for HttpTask for required input parameters"
MISSING_METHOD = "No HTTP method specified"
NO_RESPONSE = "No response from the remote service"
FAILED_PREFIX = "Failed to invoke HTTP task due to: "
JAVA_EXCEPTION = "java.lang.Exception: "  # what HttpTask.httpCall rethrows a RestClientException as

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: methods, header names
_UNSAFE_IN_VALUE = re.compile(r"[\r\n\x00]")
_URL_SAFE = "/?#[]@!$&'()*+,;=:%~"  # reserved characters and existing %-escapes stay as they are
_JSON_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json\s*(?:;|$)", re.IGNORECASE)


class InvalidHttpRequest(NonRetryableError):
    """The task's input is not a request Conductor would send."""


class HttpTransportError(TranslatorError):
    """The call did not get a response: connection refused or reset, timeout, TLS failure...
    ``output``: Conductor's, ``{"response": <the exception text>}``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.output = {"response": message.removeprefix(FAILED_PREFIX)}


class HttpTaskFailed(TranslatorError):
    """The server answered outside 2xx: the task fails with ``output`` (Conductor's ``response``: the
    exception text for 4xx/5xx, the response otherwise)."""

    def __init__(self, message: str, output: dict[str, Any]) -> None:
        super().__init__(message)
        self.output = output

    def __reduce__(self):
        return (self.__class__, (self.message, self.output))


@dataclass(frozen=True)
class HttpRequest:
    """A task's request, checked and encoded."""

    uri: str
    method: str
    headers: dict[str, str]
    body: bytes | None
    connect_timeout: float | None  # seconds; None: no limit but the deadline
    read_timeout: float | None


@dataclass(frozen=True)
class Reply:
    """One response: its status line, headers in order, and body (None for a redirect)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes | None
    charset: str | None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


def call_http(
    task_input: Mapping[str, Any],
    *,
    allow: frozenset[str],
    max_bytes: int | None = None,
    deadline: float | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """Run an HTTP task from its resolved input; Conductor's output ``{"response": {...}}``.

    ``allow``: ``host:port`` entries exempt from the public-address rule
    (``translator.settings.fetch_allow()``); ``max_bytes`` and ``deadline`` default to
    TRANSLATOR_HTTP_MAX_BYTES and TRANSLATOR_HTTP_DEADLINE; ``tls_context`` for https (default: the
    system's trusted certificates).
    """
    request = parse_request(task_input)
    limit = env_int(MAX_BYTES_VARIABLE, DEFAULT_MAX_BYTES) if max_bytes is None else max_bytes
    total = env_float(DEADLINE_VARIABLE, DEFAULT_DEADLINE) if deadline is None else deadline
    clock = Deadline(total, request.read_timeout or total, request.connect_timeout or total)
    method, headers, body, url = request.method, request.headers, request.body, request.uri
    origin: tuple[str, str, int] | None = None
    for _ in range(MAX_REDIRECTS + 1):
        target = _checked(url, allow, method)
        if origin is not None and target.origin != origin:
            headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}
        origin = target.origin
        reply = _exchange(target, method, headers, body, clock, limit, tls_context)
        location = reply.header("location") if reply.status in REDIRECT_STATUSES else None
        if not location:
            return _outcome(reply, method, target.url)
        url = urljoin(target.url, _sendable(location))
        if redirect_becomes_get(reply.status, method):
            method, body, headers = "GET", None, {"User-Agent": headers.get("User-Agent", USER_AGENT)}
    raise FetchRefused(f"refusing to call {shorten(request.uri)}: more than {MAX_REDIRECTS} redirects")


def _checked(url: str, allow: frozenset[str], method: str) -> Target:
    """``url`` checked by the SSRF guard; a name that does not resolve is a transport error."""
    try:
        return check_url(url, allow, action="call")
    except OSError as exc:
        raise _transport(method, url, str(exc)) from None


def redirect_becomes_get(status: int, method: str) -> bool:
    """Whether HttpClient 5 follows this redirect with a bare GET (else it repeats the request)."""
    if status in (301, 302):
        return method == "POST"
    return status == 303 and method not in ("GET", "HEAD")


# ---------------------------------------------------------------------------------------------
# The request


def parse_request(task_input: Mapping[str, Any]) -> HttpRequest:
    """The request an HTTP task's input describes (Conductor's ``HttpTask.Input``)."""
    spec = task_input.get(REQUEST_PARAMETER)
    if spec is None:
        spec = task_input
    if not isinstance(spec, Mapping):
        raise InvalidHttpRequest(
            f"{REQUEST_PARAMETER} must be an object with uri and method, got {shorten(spec)}"
        )
    uri, method = spec.get("uri"), spec.get("method")
    if uri is None or uri == "":
        raise InvalidHttpRequest(MISSING_URI)
    if method is None or method == "":
        raise InvalidHttpRequest(MISSING_METHOD)
    if not isinstance(uri, str):
        raise InvalidHttpRequest(f"uri must be a string, got {shorten(uri)}")
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        raise InvalidHttpRequest(f"method {shorten(method)} is not an HTTP method")
    content_type = _text_field(spec, "contentType", DEFAULT_MEDIA_TYPE)
    headers = {
        "Content-Type": content_type,
        "Accept": ", ".join(_accept(spec.get("accept"))),
        "User-Agent": USER_AGENT,
    }
    for name, value in _user_headers(spec.get("headers")).items():
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        headers[name] = value
    return HttpRequest(
        uri=_sendable(uri.strip()),
        method=method.upper(),
        headers=headers,
        body=_encode_body(spec.get("body"), content_type),
        connect_timeout=_timeout(spec, "connectionTimeOut"),
        read_timeout=_timeout(spec, "readTimeOut"),
    )


def _text_field(spec: Mapping[str, Any], name: str, default: str) -> str:
    value = spec.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or _UNSAFE_IN_VALUE.search(value):
        raise InvalidHttpRequest(f"{name} must be a media type such as {default}, got {shorten(value)}")
    return value


def _accept(value: object) -> list[str]:
    """``accept``: a string or a list of strings (Conductor's ``setAccept``)."""
    if value is None:
        return [DEFAULT_MEDIA_TYPE]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidHttpRequest(f"accept must be a media type or a list of them, got {shorten(value)}")
    if any(_UNSAFE_IN_VALUE.search(i) for i in items):
        raise InvalidHttpRequest(f"accept {shorten(value)} contains a line break")
    return items or [DEFAULT_MEDIA_TYPE]


def _user_headers(value: object) -> dict[str, str]:
    """The task's ``headers``, as text; they replace the defaults of the same name. Null values are
    skipped (as Conductor does); Accept-Encoding is not taken (responses come unencoded)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidHttpRequest(f"headers must be an object, got {shorten(value)}")
    headers: dict[str, str] = {}
    for name, raw in value.items():
        if raw is None or name.lower() == "accept-encoding":
            continue
        if not _TOKEN.fullmatch(name):
            raise InvalidHttpRequest(f"header name {shorten(name)} is not valid")
        text = _header_text(raw)
        if _UNSAFE_IN_VALUE.search(text):  # the value is not quoted: it may be a credential
            raise InvalidHttpRequest(f"the value of header {shorten(name)} contains a line break or NUL")
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = text
    return headers


def _header_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _encode_body(body: object, content_type: str) -> bytes | None:
    """The request body: a string as it is, anything else as JSON for a JSON content type."""
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode(_charset(content_type) or "utf-8", errors="replace")
    if not _JSON_TYPE.match(content_type.strip()):
        raise InvalidHttpRequest(
            f"a body of type {type(body).__name__} cannot be sent as {shorten(content_type)}: it is "
            "JSON-encoded for JSON content types only; give the body as a string"
        )
    try:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidHttpRequest(f"the body cannot be encoded as JSON: {exc}") from None
    return text.encode("utf-8")


def _timeout(spec: Mapping[str, Any], name: str) -> float | None:
    """A timeout in seconds from Conductor's milliseconds (default 3000; 0: none but the deadline)."""
    raw = spec.get(name)
    if raw is None:
        return DEFAULT_TIMEOUT_MS / 1000
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            value = None
    if value is None or value != value or value < 0 or value == float("inf"):
        raise InvalidHttpRequest(f"{name} must be a number of milliseconds (0 or more), got {shorten(raw)}")
    return int(value) / 1000 or None  # Conductor reads an Integer


def _sendable(url: str) -> str:
    """``url`` with spaces, control and non-ASCII characters %-encoded, as Conductor's client encodes
    a URI template; existing %-escapes and reserved characters are kept."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url  # check_url refuses it with a clear message
    path, query = quote(parts.path, safe=_URL_SAFE), quote(parts.query, safe=_URL_SAFE)
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


# ---------------------------------------------------------------------------------------------
# One exchange


def _exchange(
    target: Target,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    clock: Deadline,
    limit: int,
    tls_context: ssl.SSLContext | None,
) -> Reply:
    """Send one request to the checked target; a redirect's body is not read."""
    connection = open_connection(target, clock, tls_context=tls_context)
    try:
        connection.connect()
        connection.request(method, target.path, body=body, headers=headers)
        response = connection.getresponse()
        replied = Reply(response.status, response.reason, response.getheaders(), None, None)
        if response.status in REDIRECT_STATUSES and replied.header("location"):
            return replied
        content = read_capped(response, target.url, limit, MAX_BYTES_VARIABLE)
        return Reply(replied.status, replied.reason, replied.headers, content, _response_charset(response))
    except ConnectTimeout:
        detail = f"Connect timed out after {_ms(clock.connect)} (connectionTimeOut)"
        raise _transport(method, target.url, detail) from None
    except TimeoutError:
        if clock.expired:
            detail = f"no complete response within {clock.total:g} s ({DEADLINE_VARIABLE})"
        else:
            detail = f"Read timed out after {_ms(clock.step)} (readTimeOut)"
        raise _transport(method, target.url, detail) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _transport(method, target.url, str(exc) or type(exc).__name__) from None
    finally:
        connection.close()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"


def _transport(method: str, url: str, detail: str) -> HttpTransportError:
    return HttpTransportError(
        f"{FAILED_PREFIX}{JAVA_EXCEPTION}I/O error on {method} request for {_shown_url(url)}: "
        f"{shorten(detail, quote=False)}"
    )


def _shown_url(url: str) -> str:
    """The URL for a message, without its query (it may carry a credential), as Spring shows it."""
    return shorten(url.split("?", 1)[0])


def _charset(content_type: str) -> str | None:
    match = re.search(r";\s*charset\s*=\s*\"?([\w.:-]+)", content_type, re.IGNORECASE)
    if match is None:
        return None
    try:
        return codecs.lookup(match.group(1)).name
    except LookupError:
        return None


def _response_charset(response: http.client.HTTPResponse) -> str | None:
    return _charset(response.getheader("Content-Type") or "")


# ---------------------------------------------------------------------------------------------
# The output


def _outcome(reply: Reply, method: str, url: str) -> dict[str, Any]:
    """Conductor's output for a response; HttpTaskFailed outside 2xx."""
    text = None if reply.body is None else reply.body.decode(reply.charset or "utf-8", errors="replace")
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = reply.reason
    output = {
        "response": {
            "statusCode": reply.status,
            "headers": response_headers(reply.headers),
            "body": parse_body(text),
            "reasonPhrase": phrase,
        }
    }
    if 200 <= reply.status < 300:
        return output
    if reply.status >= 400:  # Spring's message for an error status (DefaultResponseErrorHandler)
        exception = (
            f"{JAVA_EXCEPTION}{reply.status} {shorten(reply.reason, 100, quote=False)} on {method} request "
            f"for {_shown_url(url)}: {_quoted_body(text)}"
        )
        raise HttpTaskFailed(FAILED_PREFIX + exception, {"response": exception})
    raise HttpTaskFailed(f"{NO_RESPONSE} (HTTP {reply.status} {phrase} from {_shown_url(url)})", output)


def response_headers(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Each header name (as first received) with the list of its values, names matched ignoring case."""
    grouped: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name, value in headers:
        key = names.setdefault(name.lower(), name)
        grouped.setdefault(key, []).append(value)
    return grouped


def _quoted_body(text: str | None) -> str:
    """A response body in a message, as Spring's LogFormatUtils writes it, shortened."""
    if not text:
        return "[no body]"
    one_line = re.sub(r"[\x00-\x1f\x7f]", "?", re.sub(r"[\r\n]", "<EOL>", text))
    return f'"{shorten(one_line, 500, quote=False)}"'


_DECODER = json.JSONDecoder(parse_constant=lambda name: _not_json(name))


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(text: str | None) -> Any:
    """A response body as Conductor's ``HttpTask.extractBody`` reads it with Jackson.

    None when there is no body; an object or array as JSON; a number as a float; any other JSON
    value as its text (``"abc"`` -> ``abc``, ``true`` -> ``"true"``, ``null`` -> ``"null"``); text
    that is not JSON as it is. Only the first JSON value counts; a number must end at a space.
    """
    if not text:
        return None
    start = len(text) - len(text.lstrip(" \t\r\n"))
    if start == len(text):
        return ""  # Jackson's MissingNode
    try:
        value, end = _DECODER.raw_decode(text, start)
    except ValueError:
        return text
    if isinstance(value, dict | list):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        if end < len(text) and text[end] not in " \t\r\n":  # Jackson wants a space after a root number
            return text
        try:
            return float(value)
        except OverflowError:
            return text
    return value
