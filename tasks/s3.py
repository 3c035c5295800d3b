"""The ``upload_toS3`` worker: upload a file of the shared volume to S3 with boto3.

Credentials come from boto3's standard chain (environment, shared files, container or instance
roles) and never from task input; ``AWS_ENDPOINT_URL_S3`` points boto3 at an S3-compatible server.
The key is the SHA-256 of the content plus the extension of the sniffed format, so uploading the
same image twice is idempotent (the second time finds the object and does not upload again).
A bucket that does not exist is created on first use when the credentials allow it; otherwise the
task fails for good, naming ``python -m tasks ensure-bucket``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
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
from translator.text import shorten

MULTIPART_THRESHOLD = 8 * 1024 * 1024
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()/-]{0,900}")  # S3 keys are at most 1024 bytes
_TERMINAL_CODES = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchKey"}
_TRANSIENT_CODES = {"SlowDown", "OperationAborted", "RequestTimeout", "InternalError", "ServiceUnavailable"}
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def s3_client() -> Any:
    """One boto3 S3 client per process (boto3 clients are thread-safe)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    return boto3.session.Session().client("s3", config=config)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError, also when boto3's transfer wrapped it."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError) and isinstance(exc.__context__, ClientError):
        exc = exc.__context__  # S3UploadFailedError is raised while handling the ClientError
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


@contextlib.contextmanager
def client_errors(doing: str) -> Iterator[None]:
    """Turn S3 errors that retrying cannot fix into NonRetryableError."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError:
        raise NonRetryableError(
            f"{doing}: no AWS credentials found (environment, ~/.aws, or an instance/container role)"
        ) from None
    except (ClientError, S3UploadFailedError) as exc:
        code = error_code(exc)
        if code in _TERMINAL_CODES or code == "404":
            raise NonRetryableError(f"{doing}: {code}: {shorten(_error_message(exc), quote=False)}") from None
        raise


def _error_message(exc: BaseException) -> str:
    from botocore.exceptions import ClientError

    cause = exc if isinstance(exc, ClientError) else exc.__context__
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Message", ""))
    return str(exc)


def create_bucket(client: Any, bucket: str) -> bool:
    """Create ``bucket``; False when it already exists and is ours.

    NonRetryableError when these credentials may not create it (or the name is taken); transient
    server errors propagate, so the task's retry policy applies.
    """
    from botocore.exceptions import ClientError

    region = client.meta.region_name
    location = (
        {"CreateBucketConfiguration": {"LocationConstraint": region}}
        if region not in (None, "us-east-1")
        else {}
    )
    try:
        client.create_bucket(Bucket=bucket, **location)
    except ClientError as exc:
        code = error_code(exc)
        if code == "BucketAlreadyOwnedByYou":
            return False
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or code in _TRANSIENT_CODES:
            raise
        detail = f"{code}: {shorten(_error_message(exc), quote=False)}"
        elsewhere = "TRANSLATOR_S3_BUCKET or the bucket input"
        if code == "BucketAlreadyExists":
            raise NonRetryableError(
                f"bucket {bucket} belongs to another account ({detail}): name another bucket ({elsewhere})"
            ) from None
        raise NonRetryableError(
            f"bucket {bucket} does not exist and cannot be created with these credentials ({detail}): "
            f"create it with `python -m tasks ensure-bucket {bucket}` and credentials allowed to, "
            f"or name an existing bucket ({elsewhere})"
        ) from None
    log.info("created bucket %s", bucket)
    return True


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
    """Upload ``fileLocation`` to ``s3://bucket/prefix<sha256>.<ext>``; the bucket is created if missing."""
    from botocore.exceptions import ClientError

    config = settings()
    bucket = bucket or config.s3_bucket
    prefix = config.s3_prefix if prefix is None else prefix
    if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
        raise NonRetryableError(f"invalid bucket name {shorten(bucket)}")
    valid_prefix = isinstance(prefix, str) and _PREFIX.fullmatch(prefix) and not prefix.startswith("/")
    if not valid_prefix or ".." in prefix:
        raise NonRetryableError(f"invalid key prefix {shorten(prefix)}")
    path = shared_file(fileLocation)
    digest, size, head = _digest(path)
    fmt = sniff(head)
    key = f"{prefix}{digest}.{fmt.extension if fmt else 'bin'}"
    content_type = fmt.content_type if fmt else "application/octet-stream"
    client = s3_client()
    with client_errors(f"uploading to s3://{bucket}/{shorten(key, quote=False)}"):
        try:
            existing = client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) not in _MISSING_CODES:  # a missing bucket is a 404 too (HEAD has no body)
                raise
            existing = None
        if existing is None or int(existing.get("ContentLength", -1)) != size:
            _put_creating_bucket(client, path, bucket, key, content_type)
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


def _put_creating_bucket(client: Any, path: Path, bucket: str, key: str, content_type: str) -> None:
    """Upload; when the bucket does not exist, create it (first use) and upload again.

    Nothing is cached: an existing bucket costs no extra request, and a bucket deleted later is
    created again the same way.
    """
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig

    transfer = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
    )
    extra = {"ContentType": content_type}
    try:
        client.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=transfer)
    except S3UploadFailedError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise
        create_bucket(client, bucket)
        client.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=transfer)


def ensure_bucket(bucket: str | None = None) -> str:
    """Create the bucket if it does not exist (``python -m tasks ensure-bucket``).

    NonRetryableError when these credentials may not create it."""
    from botocore.exceptions import ClientError

    bucket = bucket or settings().s3_bucket
    client = s3_client()
    try:
        client.head_bucket(Bucket=bucket)
        return f"bucket {bucket} exists"
    except ClientError as exc:  # 404: missing; 403: not visible to these credentials, maybe missing
        if error_code(exc) not in {*_MISSING_CODES, "NoSuchBucket", "403", "Forbidden", "AccessDenied"}:
            raise
    return f"bucket {bucket} {'created' if create_bucket(client, bucket) else 'exists'}"
