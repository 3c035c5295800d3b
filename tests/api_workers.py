"""Worker-side helpers of the REST API tests (imported by real worker processes with ``-I``).

* ``image_toS3``: the seed blog's workflow (as its curl command registers it) names its upload task
  ``image_toS3``; here it is the project's ``upload_toS3`` worker under that name.
* ``API_TEST_HOSTS`` (``host:port=127.0.0.1:localport,...``): those host names resolve to loopback
  and their port is redirected to a local server, so the blog's own image URL is served by the test
  (with ``SSL_CERT_FILE`` trusting the test's certificate); nothing leaves the machine.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from tasks.s3 import upload_to_s3
from translator import worker_task


@worker_task("image_toS3")
def image_to_s3(fileLocation: str) -> dict[str, Any]:
    return upload_to_s3(fileLocation)


def _redirects() -> dict[tuple[str, int], int]:
    found: dict[tuple[str, int], int] = {}
    for entry in filter(None, os.environ.get("API_TEST_HOSTS", "").split(",")):
        name, _, local = entry.partition("=")
        host, _, port = name.rpartition(":")
        found[(host.lower(), int(port))] = int(local.rpartition(":")[2])
    return found


_REDIRECTS = _redirects()
if _REDIRECTS:
    _getaddrinfo, _create_connection = socket.getaddrinfo, socket.create_connection

    def _fake_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and (host.lower(), int(port or 0)) in _REDIRECTS:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port)))]
        return _getaddrinfo(host, port, *args, **kwargs)

    def _fake_create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address[0], address[1]
        if host == "127.0.0.1":
            local = {p: lp for (_, p), lp in _REDIRECTS.items()}.get(int(port))
            if local is not None:
                address = ("127.0.0.1", local)
        return _create_connection(address, *args, **kwargs)

    socket.getaddrinfo = _fake_getaddrinfo  # type: ignore[assignment]
    socket.create_connection = _fake_create_connection  # type: ignore[assignment]
