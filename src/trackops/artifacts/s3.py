"""Artifacts on S3 or an S3-compatible store (``s3://bucket/prefix``), through boto3.

Configuration is boto3's usual chain (env, shared files, profiles, instance roles) plus MLflow's
variables, so a server configured for ``mlflow server`` works unchanged:

- ``MLFLOW_S3_ENDPOINT_URL`` -- endpoint of an S3-compatible store (MinIO, Ceph, ...); otherwise
  boto3's own ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` apply;
- ``MLFLOW_S3_IGNORE_TLS=true`` -- do not verify the endpoint's certificate;
- ``MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE`` -- ``path``, ``virtual`` or ``auto``;
- ``MLFLOW_S3_UPLOAD_EXTRA_ARGS`` -- JSON merged into every upload (``{"ServerSideEncryption": ...}``).

Directories follow MLflow: ``dir`` is the key prefix ``dir/``. Listing is paginated
(ListObjectsV2), deletes are batched (DeleteObjects, at most 1000 keys a call), uploads use
boto3's managed transfer (multipart above the threshold, bounded memory), downloads stream the
response body. Every botocore failure becomes a one-line `TrackopsError` with a hint.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from trackops.artifacts.base import (
    CHUNK_SIZE,
    ArtifactAccessDenied,
    ArtifactEntry,
    ArtifactError,
    ArtifactNotFound,
    ArtifactReader,
    ArtifactRepository,
    ArtifactStoreNotFound,
    ChunkReader,
    DeleteFailure,
    DeleteResult,
    WriteSource,
    iter_chunks,
)
from trackops.artifacts.paths import InvalidArtifactPath, join, validate_path
from trackops.errors import TrackopsError, UsageError

DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
_DENIED = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "ExpiredToken", "InvalidToken", "AccountProblem", "403", "Forbidden"}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}

# The environment a client depends on: a change in any of these yields a new client.
_CLIENT_ENV = ("MLFLOW_S3_ENDPOINT_URL", "MLFLOW_S3_IGNORE_TLS", "MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE",
               "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION",
               "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_CA_BUNDLE", "AWS_CONFIG_FILE",
               "AWS_SHARED_CREDENTIALS_FILE")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> ("bucket", "a/b"); the prefix is validated like an artifact path."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise UsageError(f"not an S3 URI: {uri}", hint="use s3://<bucket>/<prefix>")
    if parsed.query or parsed.fragment:
        raise UsageError(f"S3 URI {uri} has a query or fragment", hint="use s3://<bucket>/<prefix>")
    return parsed.netloc, validate_path(parsed.path.lstrip("/"))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def s3_client():
    """A boto3 S3 client for the current environment (cached: clients are thread-safe)."""
    return _cached_client(tuple(os.environ.get(name) for name in _CLIENT_ENV))


@functools.lru_cache(maxsize=8)
def _cached_client(env: tuple[str | None, ...]):
    import boto3
    from botocore.config import Config

    values = dict(zip(_CLIENT_ENV, env))
    style = values["MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE"]
    config = Config(connect_timeout=10, read_timeout=60,
                    s3={"addressing_style": style} if style else None)
    return boto3.session.Session().client(
        "s3", endpoint_url=values["MLFLOW_S3_ENDPOINT_URL"] or None,
        verify=False if _truthy(values["MLFLOW_S3_IGNORE_TLS"]) else None, config=config)


def default_transfer_config():
    """Multipart above 8 MiB in 8 MiB parts; about 5 parts (40 MiB) in memory per upload at most.

    A stream cannot seek, so boto3 holds each part in memory: 2 read ahead, 2 being sent, 1 being
    read. Pass another config to `S3ArtifactRepository` to trade memory for throughput.
    """
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024,
                            max_concurrency=2)
    config.max_in_memory_upload_chunks = 2
    return config


class S3ArtifactRepository(ArtifactRepository):
    """A bucket, or a key prefix in one, used as an artifact root."""

    def __init__(self, uri: str, *, client=None, transfer_config=None):
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._client = client
        self.transfer_config = transfer_config

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client()
        return self._client

    def child(self, path: str) -> S3ArtifactRepository:
        sub = join(self.prefix, validate_path(path))
        return S3ArtifactRepository(f"s3://{self.bucket}/{sub}", client=self._client,
                                    transfer_config=self.transfer_config)

    # -- keys ---------------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        return join(self.prefix, path)

    def _folder(self, path: str) -> str:
        """The key prefix of the directory `path` ("" for the root of a bare bucket)."""
        key = self._key(path)
        return key + "/" if key else ""

    def _rel(self, key: str) -> str | None:
        """Relative path of `key`, or None when it is no addressable artifact path (``a//b``)."""
        rel = key[len(self.prefix) + 1:] if self.prefix else key
        try:
            return rel if rel and validate_path(rel) == rel else None
        except InvalidArtifactPath:
            return None

    # -- calls that raise on failure ----------------------------------------------------------

    def _pages(self, prefix: str, delimiter: str | None = None) -> Iterator[dict]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            yield from self.client.get_paginator("list_objects_v2").paginate(**kwargs)
        except Exception as exc:  # noqa: BLE001 - translated, or re-raised when not botocore's
            raise self._translate(exc, "list", prefix) from None

    def _first_key(self, prefix: str) -> dict | None:
        """The first object whose key starts with `prefix` (an exact key sorts before its longer kin)."""
        try:
            response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "list", prefix) from None
        contents = response.get("Contents") or []
        return contents[0] if contents else None

    def _file(self, path: str) -> dict | None:
        obj = self._first_key(self._key(path))
        return obj if obj is not None and obj["Key"] == self._key(path) else None

    # -- protocol -----------------------------------------------------------------------------

    def list(self, path: str = "") -> list[ArtifactEntry]:
        path = validate_path(path)
        folder = self._folder(path)
        entries = []
        for page in self._pages(folder, "/"):
            for common in page.get("CommonPrefixes", []):
                rel = self._rel(common["Prefix"].rstrip("/"))
                if rel is not None:
                    entries.append(ArtifactEntry(rel, True, None))
            for obj in page.get("Contents", []):
                rel = None if obj["Key"].endswith("/") else self._rel(obj["Key"])
                if rel is not None:
                    entries.append(ArtifactEntry(rel, False, int(obj["Size"])))
        return sorted(entries)

    def walk(self, path: str = "") -> Iterator[ArtifactEntry]:
        path = validate_path(path)
        if path:
            obj = self._file(path)
            if obj is not None:
                yield ArtifactEntry(path, False, int(obj["Size"]), _modified(obj))
        for page in self._pages(self._folder(path)):
            for obj in page.get("Contents", []):
                rel = None if obj["Key"].endswith("/") else self._rel(obj["Key"])
                if rel is not None:
                    yield ArtifactEntry(rel, False, int(obj["Size"]), _modified(obj))

    def stat(self, path: str) -> ArtifactEntry:
        path = validate_path(path)
        if not path:
            return ArtifactEntry("", True, None)
        obj = self._file(path)
        if obj is not None:
            return ArtifactEntry(path, False, int(obj["Size"]))
        if self._first_key(self._folder(path)) is not None:
            return ArtifactEntry(path, True, None)
        raise ArtifactNotFound(path, self.uri)

    def open(self, path: str, *, chunk_size: int = CHUNK_SIZE) -> ArtifactReader:
        path = validate_path(path, file=True)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(path))
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "read", path) from None
        body = response["Body"]

        def read(size: int) -> bytes:
            try:
                return body.read(size)
            except Exception as exc:  # noqa: BLE001 - a connection lost mid-stream
                raise self._translate(exc, "read", path) from None

        return ArtifactReader(read, body.close, int(response["ContentLength"]), chunk_size)

    def write(self, path: str, source: WriteSource) -> int:
        path = validate_path(path, file=True)
        reader = ChunkReader(iter_chunks(source))
        extra = {}
        content_type, _ = mimetypes.guess_type(path)
        if content_type:
            extra["ContentType"] = content_type
        if os.environ.get("MLFLOW_S3_UPLOAD_EXTRA_ARGS"):
            try:
                extra.update(json.loads(os.environ["MLFLOW_S3_UPLOAD_EXTRA_ARGS"]))
            except ValueError:
                raise UsageError("MLFLOW_S3_UPLOAD_EXTRA_ARGS is not valid JSON",
                                 hint='e.g. {"ServerSideEncryption": "AES256"}') from None
        try:
            self.client.upload_fileobj(reader, self.bucket, self._key(path), ExtraArgs=extra,
                                       Config=self.transfer_config or default_transfer_config())
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "write", path) from None
        return reader.consumed

    def delete(self, path: str) -> bool:
        path = validate_path(path, file=True)
        if self._file(path) is None:
            return False
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(path))
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "delete", path) from None
        return True

    def delete_prefix(self, path: str = "") -> DeleteResult:
        path = validate_path(path)
        result, batch = DeleteResult(), {}
        exact = self._file(path) if path else None
        if exact is not None:
            batch[exact["Key"]] = int(exact["Size"])
        for page in self._pages(self._folder(path)):
            for obj in page.get("Contents", []):
                batch[obj["Key"]] = int(obj["Size"])
                if len(batch) == DELETE_BATCH:
                    result += self._delete_batch(batch)
                    batch = {}
        # Deleting behind the listing is safe: the continuation token is the last key listed.
        if batch:
            result += self._delete_batch(batch)
        return result

    def delete_files(self, files) -> DeleteResult:
        result, batch = DeleteResult(), {}
        for entry in files:
            batch[self._key(validate_path(entry.path, file=True))] = int(entry.size or 0)
            if len(batch) == DELETE_BATCH:
                result += self._delete_batch(batch)
                batch = {}
        if batch:
            result += self._delete_batch(batch)
        return result

    def _delete_batch(self, sizes: dict[str, int]) -> DeleteResult:
        objects = [{"Key": key} for key in sizes]
        try:
            response = self.client.delete_objects(Bucket=self.bucket,
                                                  Delete={"Objects": objects, "Quiet": True})
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "delete", objects[0]["Key"]) from None
        failures = []
        for error in response.get("Errors", []):
            key = error.get("Key", "")
            sizes.pop(key, None)
            failures.append(DeleteFailure(self._rel(key) or key,
                                          f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()))
        # Directory markers ("dir/") go too, but they are not files and are not counted.
        files = [size for key, size in sizes.items() if not key.endswith("/")]
        return DeleteResult(len(files), sum(files), tuple(failures))

    # -- errors -------------------------------------------------------------------------------

    def _translate(self, exc: BaseException, action: str, target: str) -> BaseException:
        """One-line TrackopsError for a botocore failure; anything else is returned unchanged."""
        return translate_error(exc, action=action, bucket=self.bucket, target=target,
                               uri=self.uri, endpoint=self._endpoint())

    def _endpoint(self) -> str:
        try:
            return self.client.meta.endpoint_url
        except Exception:  # noqa: BLE001 - only used in messages
            return "the S3 endpoint"


def _modified(obj: dict) -> float | None:
    stamp = obj.get("LastModified")
    return stamp.timestamp() if stamp is not None else None


def _botocore_cause(exc: BaseException) -> BaseException | None:
    """`exc` or the botocore error it wraps (boto3 wraps upload errors in S3UploadFailedError)."""
    from botocore.exceptions import BotoCoreError, ClientError

    seen = 0
    while exc is not None and seen < 6:
        if isinstance(exc, (ClientError, BotoCoreError)):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def translate_error(exc: BaseException, *, action: str, bucket: str, target: str, uri: str,
                    endpoint: str) -> BaseException:
    """Map a botocore failure to ArtifactNotFound / ArtifactStoreNotFound / ArtifactAccessDenied /
    ArtifactError with a hint; other exceptions (our own, bugs) are returned as they are."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
        SSLError,
    )

    if isinstance(exc, TrackopsError):
        return exc
    cause = _botocore_cause(exc)
    if cause is None:
        return exc
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = " ".join(str(error.get("Message", "")).split())
        if code == "NoSuchBucket":
            return ArtifactStoreNotFound(f"S3 bucket '{bucket}' does not exist (at {endpoint})",
                                         hint="create the bucket, or fix the artifact URI / --artifacts-destination")
        if code in _DENIED:
            return ArtifactAccessDenied(f"S3 refused to {action} '{target}' in {uri}: {code}",
                                        hint="check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) "
                                             "and the bucket policy")
        if code in _MISSING_KEY and action == "read":
            return ArtifactNotFound(target, uri)
        return ArtifactError(f"S3 {action} of '{target}' in {uri} failed: {code} {message}".rstrip(),
                             hint="retry; if it persists, check the S3 service")
    if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
        return ArtifactAccessDenied("no usable AWS credentials for S3",
                                    hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    if isinstance(cause, SSLError):
        return ArtifactError(f"TLS failed with the S3 endpoint {endpoint}",
                             hint="set AWS_CA_BUNDLE to its CA, or MLFLOW_S3_IGNORE_TLS=true (not in production)")
    if isinstance(cause, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)):
        return ArtifactError(f"cannot reach the S3 endpoint {endpoint}",
                             hint="check MLFLOW_S3_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 and that the service is up")
    first_line = (str(cause).splitlines() or [type(cause).__name__])[0]
    return ArtifactError(f"S3 {action} of '{target}' in {uri} failed: {first_line}",
                         hint="retry; if it persists, check the S3 configuration")
