"""The seed's image pipeline end to end: a private redis-server, a real ``celery -A tasks worker``
(prefork), real ImageMagick through Wand, boto3 over HTTP to moto's S3 server, images served over
HTTP on loopback; and every kind of bad input refused with a clear reason."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from wand.image import Image

from tasks.formats import sniff
from tests.services import (
    ROOT,
    VENV_BIN,
    celery_worker,
    embedded_env,
    free_port,
    http_server,
    redis_server,
    redis_server_binary,
    s3_client_for,
    s3_server,
    stop_process,
    translator_cli,
)
from translator.errors import NonRetryableError
from translator.runner import Session, prepare, submit, wait
from translator.runtime.celery_app import install
from translator.store.state import RedisStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

WORKFLOW = ROOT / "definitions" / "image_convert_resize.json"
SAMPLE = ROOT / "examples" / "sample.png"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def bomb_png(side: int = 30000) -> bytes:
    """A tiny PNG that declares side x side pixels."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    inputs, shared, served = base / "input", base / "shared", base / "served"
    for directory in (inputs, shared, served):
        directory.mkdir()
    sample = SAMPLE.read_bytes()
    (served / "sample.png").write_bytes(sample)
    (inputs / "sample.png").write_bytes(sample)
    (inputs / "notes.txt").write_text("this is not an image\n" * 20)
    (inputs / "truncated.png").write_bytes(sample[: len(sample) * 6 // 10])
    (inputs / "bomb.png").write_bytes(bomb_png())
    with Image(filename=str(SAMPLE)) as image:
        for fmt in ("jpeg", "gif", "webp", "bmp", "tiff"):
            (inputs / f"sample.{fmt}").write_bytes(image.make_blob(fmt.upper()))
        with image.clone() as wide:
            wide.resize(900, 600)
            (inputs / "wide.png").write_bytes(wide.make_blob("PNG"))
    with (
        redis_server(base / "redis") as url,
        s3_server() as s3_env,
        http_server(served) as web,
    ):
        port = web.rsplit(":", 1)[1]
        env = {
            **s3_env,
            "TRANSLATOR_SHARED_DIR": str(shared),
            "TRANSLATOR_INPUT_ROOT": str(inputs),
            "TRANSLATOR_FETCH_ALLOW": f"127.0.0.1:{port}",
        }
        with celery_worker(url, base / "worker.log", modules=None, concurrency=2, extra_env=env) as worker:
            client = Celery("image-tests", broker=url)
            client.conf.update(task_serializer="json", accept_content=["json"])
            install(client)
            s3 = s3_client_for(s3_env)
            yield Pipeline(Session(client, RedisStore(url), embedded=False), s3, web, url, worker, shared)


@dataclass
class Pipeline:
    session: Session
    s3: Any
    web: str
    redis_url: str
    worker: Any
    shared: Path

    def __post_init__(self) -> None:
        self.plan = prepare(WORKFLOW)

    def run(self, file_location: Any, fmt: Any = "gif", width: Any = 300, height: Any = 300, **extra: Any):
        size = {"width": width, "height": height}
        recipe: dict[str, Any] = {"outputFormat": fmt, "outputSize": size, **extra}
        workflow_input: dict[str, Any] = {"recipeParameters": recipe}
        if file_location is not None:
            workflow_input["fileLocation"] = file_location
        wf_id = submit(self.session, self.plan, workflow_input)
        return wait(self.session.store, wf_id, timeout=60)

    def objects(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket="translator-images")
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def fetch(self, key: str) -> bytes:
        return self.s3.get_object(Bucket="translator-images", Key=key)["Body"].read()


def test_seed_input_png_url_to_300px_gif_uploaded_to_s3(pipeline):
    execution = pipeline.run(f"{pipeline.web}/sample.png", "gif", 300, 300)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    output = execution["output"]
    assert output["s3Url"].startswith("s3://translator-images/images/") and output["s3Url"].endswith(".gif")
    key = output["s3Url"].split("/", 3)[3]
    assert output["fileLocation"] == f"{pipeline.s3.meta.endpoint_url}/translator-images/{key}"
    head = pipeline.s3.head_object(Bucket="translator-images", Key=key)
    assert head["ContentType"] == "image/gif"
    with Image(blob=pipeline.fetch(key)) as uploaded:
        assert uploaded.format == "GIF"
        assert uploaded.size == (300, 300)
    assert (output["width"], output["height"], output["format"]) == (300, 300, "gif")
    resize = next(t for t in execution["tasks"] if t["referenceTaskName"] == "image_convert_resize_ref")
    local = Path(resize["outputData"]["fileLocation"])
    assert local.parent == pipeline.shared and local.read_bytes() == pipeline.fetch(key)


def test_repeated_upload_is_idempotent(pipeline):
    first = pipeline.run("sample.png", "png", 100, 100)
    before = pipeline.objects()
    second = pipeline.run("sample.png", "png", 100, 100)
    assert first["output"]["s3Url"] == second["output"]["s3Url"]
    assert pipeline.objects() == before


@pytest.mark.parametrize(
    ("source", "fmt", "expected"),
    [
        ("sample.png", "gif", "GIF"),
        ("sample.jpeg", "png", "PNG"),
        ("sample.gif", "jpg", "JPEG"),
        ("sample.webp", "webp", "WEBP"),
        ("sample.bmp", "jpeg", "JPEG"),
        ("sample.tiff", "png", "PNG"),
        ("sample.png", "tiff", "TIFF"),
        ("sample.png", "avif", "AVIF"),
    ],
)
def test_format_matrix(pipeline, source, fmt, expected):
    execution = pipeline.run(source, fmt, 120, 120)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    key = execution["output"]["s3Url"].split("/", 3)[3]
    data = pipeline.fetch(key)
    assert sniff(data).coder == expected  # ImageMagick 6 names AVIF "HEIC": check the bytes
    with Image(blob=data) as uploaded:
        assert uploaded.size == (120, 120)


@pytest.mark.parametrize(
    ("width", "height", "extra", "size"),
    [
        (300, 300, {}, (300, 200)),  # fit inside the box, aspect kept (the default)
        (300, 300, {"maintainAspectRatio": True}, (300, 200)),
        (300, 300, {"maintainAspectRatio": False}, (300, 300)),  # stretched
        ("450", "100", {}, (150, 100)),  # numbers as numeric strings
        (1800, 1800, {}, (1800, 1200)),  # enlarging
    ],
)
def test_aspect_ratio(pipeline, width, height, extra, size):
    execution = pipeline.run("wide.png", "png", width, height, **extra)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert (execution["output"]["width"], execution["output"]["height"]) == size


BAD_INPUTS = [
    ("non-image bytes", {"file_location": "notes.txt"}, "is not an image in an accepted format"),
    ("truncated PNG", {"file_location": "truncated.png"}, "cannot decode the PNG image"),
    ("decompression bomb", {"file_location": "bomb.png"}, "declares 30000x30000 pixels, over the limit"),
    (
        "cloud metadata address",
        {"file_location": "http://169.254.169.254/latest/meta-data/"},
        "169.254.169.254, which is not a public address",
    ),
    ("loopback Redis", {"file_location": "REDIS"}, "127.0.0.1, which is not a public address"),
    ("file URL", {"file_location": "file:///etc/passwd"}, "scheme file:// is not accepted"),
    (
        "absolute path outside the root",
        {"file_location": "/etc/passwd"},
        "is outside the TRANSLATOR_INPUT_ROOT directory",
    ),
    (
        "relative escape",
        {"file_location": "../shared/x.png"},
        "is outside the TRANSLATOR_INPUT_ROOT directory",
    ),
    ("unsupported output format", {"file_location": "sample.png", "fmt": "pdf"}, "unsupported outputFormat"),
    ("zero width", {"file_location": "sample.png", "width": 0}, "outputWidth must be a whole number"),
    ("negative height", {"file_location": "sample.png", "height": -5}, "outputHeight must be a whole number"),
    ("huge size", {"file_location": "sample.png", "width": 10**6}, "outputWidth must be a whole number"),
    ("not a number", {"file_location": "sample.png", "width": "wide"}, "outputWidth must be a number"),
    ("infinite width", {"file_location": "sample.png", "width": "inf"}, "outputWidth must be a whole number"),
    (
        "overflowing width",
        {"file_location": "sample.png", "width": "1e999"},
        "between 1 and 8000, got '1e999'",
    ),
    ("NaN height", {"file_location": "sample.png", "height": float("nan")}, "between 1 and 8000, got nan"),
    ("boolean width", {"file_location": "sample.png", "width": True}, "between 1 and 8000, got True"),
    ("missing fileLocation", {"file_location": None}, "fileLocation is missing or empty"),
    ("missing size", {"file_location": "sample.png", "width": None}, "outputWidth is required"),
]


@pytest.mark.parametrize(("label", "kwargs", "reason"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_fails_clearly_and_uploads_nothing(pipeline, label, kwargs, reason):
    if kwargs.get("file_location") == "REDIS":  # the test's own Redis, on loopback
        redis_port = pipeline.redis_url.rsplit(":", 1)[1].split("/")[0]
        kwargs = {**kwargs, "file_location": f"http://127.0.0.1:{redis_port}/"}
    before = pipeline.objects()
    execution = pipeline.run(kwargs.pop("file_location"), **kwargs)
    assert execution["status"] == "FAILED"
    tasks = execution["tasks"]
    assert [t["referenceTaskName"] for t in tasks] == ["image_convert_resize_ref"]
    assert tasks[0]["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert reason in tasks[0]["reasonForIncompletion"], tasks[0]["reasonForIncompletion"]
    assert reason in execution["reasonForIncompletion"]
    assert pipeline.objects() == before
    assert pipeline.worker.process.poll() is None  # the worker survived


def test_megabyte_url_reason_is_bounded_in_the_stored_record(pipeline):
    url = "http://169.254.169.254/" + "a" * (1024 * 1024)
    execution = pipeline.run(url)
    assert execution["status"] == "FAILED"
    reason = execution["tasks"][0]["reasonForIncompletion"]
    assert execution["tasks"][0]["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert f"({len(url)} characters)" in reason and "not a public address" in reason
    assert len(reason) < 1000 and len(execution["reasonForIncompletion"]) < 2000


def test_worker_still_serves_after_bad_inputs(pipeline):
    execution = pipeline.run("sample.png", "gif", 64, 64)
    assert execution["status"] == "COMPLETED"
    assert pipeline.worker.process.poll() is None


BLOG = ROOT / "tests" / "fixtures" / "blog"


def _embedded_run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return translator_cli("run", *args, env=embedded_env(None, **env), timeout=120)


def test_blog_workflow_verbatim_says_what_to_fix():
    result = _embedded_run(str(BLOG / "workflow.json"), "--input", str(BLOG / "in.json"))
    assert result.returncode == 1
    assert (
        "image_convert_resize.json:/responseTimeoutSeconds: error timeout-order: TaskDef: "
        "image_convert_resize responseTimeoutSeconds: 60 must be less than timeoutSeconds: 30 "
        "(fix: lower responseTimeoutSeconds to at most timeoutSeconds, or raise timeoutSeconds)"
    ) in result.stderr
    assert "Traceback" not in result.stderr


def test_blog_curl_variant_names_the_task_without_a_worker():
    result = _embedded_run(
        str(ROOT / "tests" / "fixtures" / "blog_curl" / "workflow_curl_body.json"),
        "--input",
        str(BLOG / "in.json"),
        "--taskdefs",
        str(ROOT / "definitions" / "taskdefs"),
    )
    assert result.returncode == 2
    assert "no worker function for task(s) image_toS3 (did you mean upload_toS3?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_readme_run_command_on_the_embedded_default(tmp_path):
    """The README's main job: nothing configured, embedded worker, local S3 server, image on disk."""
    result = _embedded_run(
        "definitions/image_convert_resize.json",
        "--input",
        "examples/in.json",
        TRANSLATOR_SHARED_DIR=str(tmp_path / "shared"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["s3Url"].startswith("s3://translator-images/images/")
    assert "using a local S3 server" in result.stderr
    local = Path(output["localFile"])
    assert local.parent == tmp_path / "shared"
    with Image(filename=str(local)) as image:
        assert (image.format, image.size) == ("GIF", (300, 300))


def test_large_upload_goes_multipart(tmp_path, monkeypatch):
    """A file over the 8 MiB threshold is uploaded in parts (the S3 ETag says how many)."""
    from tasks import config, s3

    with s3_server() as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("TRANSLATOR_SHARED_DIR", str(tmp_path))
        config.settings.cache_clear()
        s3.s3_client.cache_clear()
        try:
            big = tmp_path / "big.bin"
            big.write_bytes(os.urandom(9 * 1024 * 1024))
            output = s3.upload_to_s3(str(big))
            assert output["etag"].endswith("-2")  # two parts
            assert output["bytes"] == 9 * 1024 * 1024
            assert output["contentType"] == "application/octet-stream"
            assert s3_client_for(env).head_object(Bucket="translator-images", Key=output["key"])[
                "ContentLength"
            ] == (9 * 1024 * 1024)
        finally:
            config.settings.cache_clear()
            s3.s3_client.cache_clear()


@contextlib.contextmanager
def s3_environment(monkeypatch, env: dict[str, str], shared: Path):
    """This process's image workers pointed at an S3 server (settings and client re-read)."""
    from tasks import config, s3

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TRANSLATOR_SHARED_DIR", str(shared))
    config.settings.cache_clear()
    s3.s3_client.cache_clear()
    try:
        yield s3
    finally:
        config.settings.cache_clear()
        s3.s3_client.cache_clear()


def test_upload_creates_a_missing_bucket(tmp_path, monkeypatch):
    with s3_server() as env, s3_environment(monkeypatch, env, tmp_path) as s3:
        monkeypatch.setenv("TRANSLATOR_S3_BUCKET", "fresh-bucket")
        image = tmp_path / "sample.png"
        image.write_bytes(SAMPLE.read_bytes())
        client = s3_client_for(env)
        assert "fresh-bucket" not in {b["Name"] for b in client.list_buckets()["Buckets"]}
        first = s3.upload_to_s3(str(image))
        assert first["bucket"] == "fresh-bucket" and first["s3Url"].startswith("s3://fresh-bucket/images/")
        assert (
            client.get_object(Bucket="fresh-bucket", Key=first["key"])["Body"].read() == SAMPLE.read_bytes()
        )
        assert s3.upload_to_s3(str(image), bucket="other-new-bucket")["bucket"] == "other-new-bucket"
        assert s3.upload_to_s3(str(image)) == first  # the bucket exists now: nothing to create


@contextlib.contextmanager
def s3_server_with_iam(directory: Path):
    """moto's S3 server in its own process, enforcing IAM; yields credentials of a user that may put
    and get objects and list buckets, but not create buckets."""
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (directory / "moto.log").open("wb")
    # The first 3 requests (the IAM set-up below) are let through unauthenticated.
    process = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            aws_access_key_id="admin",
            aws_secret_access_key="admin",
            region_name="us-east-1",
        )
        iam.create_user(UserName="uploader")
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:GetObject", "s3:ListBucket"],
                    "Resource": "*",
                }
            ],
        }
        iam.put_user_policy(UserName="uploader", PolicyName="upload-only", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="uploader")["AccessKey"]
        yield {
            "AWS_ENDPOINT_URL_S3": url,
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "TRANSLATOR_S3_BUCKET": "missing-bucket",
        }
    finally:
        stop_process(process)
        log.close()


def test_missing_bucket_that_cannot_be_created_is_a_terminal_error(tmp_path, monkeypatch):
    with s3_server_with_iam(tmp_path) as env:
        with s3_environment(monkeypatch, env, tmp_path) as s3:
            image = tmp_path / "sample.png"
            image.write_bytes(SAMPLE.read_bytes())
            with pytest.raises(NonRetryableError) as refused:
                s3.upload_to_s3(str(image))
        message = str(refused.value)
        assert message.startswith(
            "bucket missing-bucket does not exist and cannot be created with these credentials"
        )
        assert "(AccessDenied: " in message
        assert "`python -m tasks ensure-bucket missing-bucket`" in message

        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "tasks", "ensure-bucket"],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1 and time.monotonic() - started < 30  # no waiting for 120 s
        assert result.stderr.startswith("error: bucket missing-bucket does not exist and cannot be created")
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("code", "status", "terminal"),
    [
        ("BucketAlreadyExists", 409, "bucket taken-name belongs to another account (BucketAlreadyExists: "),
        (
            "AccessDenied",
            403,
            "bucket taken-name does not exist and cannot be created with these credentials",
        ),
        ("SlowDown", 503, None),
        ("InternalError", 500, None),
    ],
)
def test_bucket_creation_errors_map_to_terminal_or_retryable(code, status, terminal):
    """The mapping of CreateBucket answers moto cannot give, on real botocore errors (botocore's Stubber)."""
    import boto3
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    from tasks.s3 import create_bucket

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    with Stubber(client) as stubber:
        stubber.add_client_error("create_bucket", service_error_code=code, http_status_code=status)
        if terminal is None:
            with pytest.raises(ClientError):
                create_bucket(client, "taken-name")
        else:
            with pytest.raises(NonRetryableError, match=re.escape(terminal)):
                create_bucket(client, "taken-name")
