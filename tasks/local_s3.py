"""A local S3-compatible server for embedded runs when no S3 is configured.

``translator run`` with no broker runs everything in one process. If, in addition, boto3 finds no
S3 endpoint (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``) and no credentials, the upload step
would have nowhere to go: this starts moto's S3 server on 127.0.0.1 (a random port) for the
duration of the run, with throw-away credentials and the bucket created, so the real boto3 upload
is exercised over HTTP. Objects are discarded when the run ends; the resized image stays in the
shared directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from tasks.config import settings

_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_THROWAWAY = {
    "AWS_ACCESS_KEY_ID": "translator-local",
    "AWS_SECRET_ACCESS_KEY": "translator-local-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def s3_configured() -> bool:
    """Whether boto3 would find an endpoint or credentials on its own."""
    if any(os.environ.get(name) for name in _ENDPOINT_VARIABLES):
        return True
    import boto3

    return boto3.session.Session().get_credentials() is not None


@contextlib.contextmanager
def local_s3() -> Iterator[None]:
    """Run a local S3 server when none is configured (an embedded service of the tasks app)."""
    if s3_configured():
        yield
        return
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        print(
            "translator: no S3 configured and moto is not installed: the upload step will fail. "
            "Set AWS_ENDPOINT_URL_S3 and credentials, or install translator[local].",
            file=sys.stderr,
        )
        yield
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines on the terminal
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {name: os.environ.get(name) for name in (*_THROWAWAY, "AWS_ENDPOINT_URL_S3")}
    os.environ.update(_THROWAWAY, AWS_ENDPOINT_URL_S3=f"http://{host}:{port}")
    from tasks.s3 import ensure_bucket, s3_client

    s3_client.cache_clear()
    try:
        ensure_bucket()
        print(
            f"translator: no S3 configured: using a local S3 server at http://{host}:{port} "
            f"(bucket {settings().s3_bucket}) for this run; its objects are discarded at exit",
            file=sys.stderr,
        )
        yield
    finally:
        s3_client.cache_clear()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()
