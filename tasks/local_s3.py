"""A local S3-compatible server for embedded runs when no S3 is configured.

``translator run`` with no broker runs everything in one process. If, in addition, nothing in the
environment or in the AWS config files configures S3 (an endpoint, credentials, a profile), the
upload step would have nowhere to go: this runs moto's S3 server on 127.0.0.1 for the duration of
the run, with throw-away credentials and the bucket created, so the real boto3 upload is exercised
over HTTP. Objects are discarded when the run ends; the resized image stays in the shared directory.

"Configured?" is decided without any network access: asking boto3 for credentials would try the
instance-metadata endpoint (169.254.169.254), and on a cloud VM upload to a real bucket with the
instance's role. During a run on the local server, ``AWS_EC2_METADATA_DISABLED`` keeps boto3 off it.

The server is a child process (started at once, ready while the run starts; it shares nothing with
the run's threads): this process opens the listening socket, so the endpoint is known immediately
and early requests wait in its backlog; the child serves it until its stdin closes, which also
happens when this process dies, so it never outlives the run.
"""

from __future__ import annotations

import configparser
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping

_CONFIGURING_VARIABLES = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
# Keys of a profile that give boto3 credentials (directly, by a process, SSO, a role) or an endpoint
_CONFIGURING_KEYS = frozenset(
    {
        "aws_access_key_id",
        "credential_process",
        "sso_session",
        "sso_start_url",
        "role_arn",
        "web_identity_token_file",
        "endpoint_url",
        "services",
    }
)
_THROWAWAY = {
    "AWS_ACCESS_KEY_ID": "translator-local",
    "AWS_SECRET_ACCESS_KEY": "translator-local-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_NO_METADATA = {"AWS_EC2_METADATA_DISABLED": "true"}
_STOP_WAIT = 2.0  # seconds the server process gets to exit after its stdin closed


def s3_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the user configured S3 for boto3: an endpoint, credentials or a profile in the
    environment, or a default profile with credentials or an endpoint in the AWS config files.
    Reads only the environment and those files (never the network)."""
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in _CONFIGURING_VARIABLES):
        return True
    files = (
        (environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", ("default",)),
        (environ.get("AWS_CONFIG_FILE") or "~/.aws/config", ("default", "profile default")),
    )
    return any(_profile_configures(os.path.expanduser(path), sections) for path, sections in files)


def _profile_configures(path: str, sections: tuple[str, ...]) -> bool:
    """Whether one of ``sections`` of the AWS config file ``path`` has a configuring key.
    A file that exists but cannot be parsed counts as configured: boto3 reports it, not us."""
    parser = configparser.RawConfigParser()
    try:
        if not parser.read(path, encoding="utf-8"):
            return False  # no such file
    except (configparser.Error, OSError, UnicodeDecodeError):
        return True
    return any(
        parser.has_section(section) and _CONFIGURING_KEYS & set(parser.options(section))
        for section in sections
    )


@contextlib.contextmanager
def local_s3() -> Iterator[None]:
    """Run a local S3 server when none is configured (an embedded service of the tasks app)."""
    if s3_configured():
        yield
        return
    if importlib.util.find_spec("moto") is None:
        print(
            "translator: no S3 configured and moto is not installed: the upload step will fail. "
            "Set AWS_ENDPOINT_URL_S3 and credentials, or install translator[local].",
            file=sys.stderr,
        )
        yield
        return
    from tasks.config import settings
    from tasks.s3 import s3_client

    bucket = settings().s3_bucket
    with _server_process(bucket) as endpoint, _environment({**_THROWAWAY, **_NO_METADATA}, endpoint):
        s3_client.cache_clear()
        print(
            f"translator: no S3 configured: using a local S3 server at {endpoint} (bucket {bucket}) "
            "for this run; its objects are discarded at exit",
            file=sys.stderr,
        )
        try:
            yield
        finally:
            s3_client.cache_clear()


@contextlib.contextmanager
def _environment(values: dict[str, str], endpoint: str) -> Iterator[None]:
    """``values`` and the endpoint in os.environ for the run, restored afterwards."""
    values = {**values, "AWS_ENDPOINT_URL_S3": endpoint}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _server_process(bucket: str) -> Iterator[str]:
    """moto's S3 server in a child process, on a socket listening on 127.0.0.1; yields its URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    env = {**os.environ, **_THROWAWAY, **_NO_METADATA}
    child = subprocess.Popen(
        [sys.executable, "-P", "-c", _BOOT, __file__, str(listener.fileno()), bucket],
        stdin=subprocess.PIPE,
        stdout=sys.stderr,  # its only output: why it could not start
        pass_fds=[listener.fileno()],
        env=env,
    )
    listener.close()  # the child holds it now: if it dies, connections are refused, not left waiting
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if child.stdin is not None:
            child.stdin.close()  # its signal to exit
        try:
            child.wait(_STOP_WAIT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# The child runs this file as a script, without importing the tasks package (Celery, the workers).
_BOOT = "import runpy, sys; runpy.run_path(sys.argv.pop(1), run_name='__main__')"


def _serve(fd: int, bucket: str) -> None:
    """The server process: create ``bucket``, serve S3 on the listening socket ``fd`` until stdin
    closes (the run ended or died), then exit without waiting for anything."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the run, which stops us
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines on the terminal
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server
    from werkzeug.test import Client

    app = DomainDispatcherApplication(create_backend_app)
    created = Client(app).put(f"/{bucket}", headers={"Host": "127.0.0.1"})
    if created.status_code != 200:
        print(f"translator: the local S3 server could not create bucket {bucket}: {created.status}")
        os._exit(1)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler, fd=fd)
    threading.Thread(target=server.serve_forever, name="local-s3", daemon=True).start()
    sys.stdin.buffer.read()  # returns at end of file: the run closed its end, or exited
    os._exit(0)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2])
