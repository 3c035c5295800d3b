"""The ``upload_toS3`` worker: upload a file of the shared volume to S3 with boto3.

Credentials come from boto3's standard chain (environment, shared files, container or instance
roles) and never from task input; ``AWS_ENDPOINT_URL_S3`` points boto3 at an S3-compatible server.
The key is the SHA-256 of the content plus the extension of the sniffed format, so uploading the
same image twice is idempotent (the second time finds the object and does not upload again).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tasks.config import settings
from tasks.formats import sniff
from tasks.sources import file_under
from translator import NonRetryableError, worker_task

MULTIPART_THRESHOLD = 8 * 1024 * 1024
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]*$")
_TERMINAL_CODES = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchKey"}


@lru_cache(maxsize=1)
def s3_client() -> Any:
    """One boto3 S3 client per process (boto3 clients are thread-safe)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    return boto3.session.Session().client("s3", config=config)


@contextlib.contextmanager
def client_errors(doing: str) -> Iterator[None]:
    """Turn S3 errors that retrying cannot fix into NonRetryableError."""
    from botocore.exceptions import ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError:
        raise NonRetryableError(
            f"{doing}: no AWS credentials found (environment, ~/.aws, or an instance/container role)"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _TERMINAL_CODES or code == "404":
            raise NonRetryableError(
                f"{doing}: {code}: {exc.response.get('Error', {}).get('Message', '')}"
            ) from None
        raise


def object_url(client: Any, bucket: str, key: str) -> str:
    endpoint = client.meta.endpoint_url.rstrip("/")
    if "amazonaws.com" in endpoint:
        region = client.meta.region_name or "us-east-1"
        return f"https://{bucket}.s3.{region}.amazonaws.com/{quote(key)}"
    return f"{endpoint}/{bucket}/{quote(key)}"


def shared_file(location: object) -> Path:
    """A file of the shared volume (nothing else on the worker may be uploaded)."""
    if not isinstance(location, str) or not location.strip():
        raise NonRetryableError("fileLocation is missing or empty")
    return file_under(location, settings().shared_dir, "TRANSLATOR_SHARED_DIR")


def _digest(path: Path) -> tuple[str, int, bytes]:
    sha = hashlib.sha256()
    size = 0
    head = b""
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            if not head:
                head = chunk[:64]
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size, head


@worker_task("upload_toS3")
def upload_to_s3(fileLocation: str, bucket: str | None = None, prefix: str | None = None) -> dict[str, Any]:
    """Upload ``fileLocation`` to ``s3://bucket/prefix<sha256>.<ext>``."""
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import ClientError

    config = settings()
    bucket = bucket or config.s3_bucket
    prefix = config.s3_prefix if prefix is None else prefix
    if not _BUCKET.match(bucket):
        raise NonRetryableError(f"invalid bucket name {bucket!r}")
    if not _PREFIX.match(prefix) or ".." in prefix or prefix.startswith("/"):
        raise NonRetryableError(f"invalid key prefix {prefix!r}")
    path = shared_file(fileLocation)
    digest, size, head = _digest(path)
    fmt = sniff(head)
    key = f"{prefix}{digest}.{fmt.extension if fmt else 'bin'}"
    content_type = fmt.content_type if fmt else "application/octet-stream"
    client = s3_client()
    with client_errors(f"uploading to s3://{bucket}/{key}"):
        try:
            existing = client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            existing = None
        if existing is None or int(existing.get("ContentLength", -1)) != size:
            transfer = TransferConfig(
                multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
            )
            client.upload_file(
                str(path), bucket, key, ExtraArgs={"ContentType": content_type}, Config=transfer
            )
            existing = client.head_object(Bucket=bucket, Key=key)
    if config.s3_delete_local:
        path.unlink(missing_ok=True)
    url = object_url(client, bucket, key)
    return {
        "s3Url": f"s3://{bucket}/{key}",
        "url": url,
        "fileLocation": url,
        "bucket": bucket,
        "key": key,
        "contentType": content_type,
        "bytes": size,
        "etag": str(existing.get("ETag", "")).strip('"'),
    }


def ensure_bucket(bucket: str | None = None) -> str:
    """Create the bucket if it does not exist (``python -m tasks ensure-bucket``)."""
    from botocore.exceptions import ClientError

    bucket = bucket or settings().s3_bucket
    client = s3_client()
    try:
        client.head_bucket(Bucket=bucket)
        return f"bucket {bucket} exists"
    except ClientError:
        client.create_bucket(Bucket=bucket)
        return f"bucket {bucket} created"
