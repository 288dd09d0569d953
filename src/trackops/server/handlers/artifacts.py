"""Proxied artifacts: upload, download, list and delete under the artifacts destination, streamed.

``/api/2.0/mlflow-artifacts/artifacts/<path>`` maps `<path>` onto the destination (what
``mlflow-artifacts:/<path>`` URIs name). Bodies are streamed in both directions: an upload is
pulled from the socket in blocks of `BLOCK` bytes by the thread writing it (so at most a block or
two per upload is in memory, and uvicorn stops reading the socket while the writer is busy); a
download is a `StreamingResponse` over the repository's reader.

Multipart uploads (``mpu/create|complete|abort``) are offered when the destination is S3: the
server starts an S3 multipart upload and hands the client presigned part URLs, so the parts go
straight to S3. For any other destination the server answers with the message the MLflow client
recognises as "unsupported", and the client falls back to one streamed PUT.

Error messages name the path the client asked for, never where the destination lives (its
folder on the server, its bucket or endpoint): the store's own message goes to the server log.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import posixpath
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from trackops.artifacts import locate, validate_path
from trackops.artifacts.base import ArtifactError, ArtifactNotFound, ArtifactStoreNotFound
from trackops.artifacts.paths import InvalidArtifactPath, join, relative_to
from trackops.errors import InvalidParameterValue, ResourceDoesNotExist, StoreError
from trackops.server import serialize as ser
from trackops.server.protocol import Params
from trackops.server.routing import Access, Resource, route

log = logging.getLogger("trackops.server")

BLOCK = 1024 * 1024
ARTIFACTS = "/mlflow-artifacts/artifacts"
UNSUPPORTED_MULTIPART = "Multipart upload is not supported for the current artifact repository"
PRESIGN_SECONDS = 3600


class NotImplementedOnServer(StoreError):
    error_code = "NOT_IMPLEMENTED"
    http_status = 501


class ArtifactsNotServed(StoreError):
    error_code = "ENDPOINT_NOT_FOUND"
    http_status = 503


class ArtifactStoreFailed(StoreError):
    """The destination failed (unreachable, refused our credentials, no such bucket): not the client's doing."""

    error_code = "INTERNAL_ERROR"
    http_status = 500


# S3's answers to a multipart request that are the client's mistake, and the status they get
_S3_CLIENT_MISTAKES = {"NoSuchUpload": 404, "InvalidPart": 400, "InvalidPartOrder": 400, "EntityTooSmall": 400,
                       "MalformedXML": 400, "InvalidArgument": 400}


@contextlib.contextmanager
def client_facing(path: str, action: str) -> Iterator[None]:
    """Artifact-store errors retold in terms of `path` as the client named it (see the module doc)."""
    try:
        yield
    except ArtifactNotFound:
        raise ResourceDoesNotExist(f"No such artifact: '{path}'") from None
    except (ArtifactError, ArtifactStoreNotFound) as exc:
        log.warning("artifact store failed to %s '%s': %s", action, path, exc.message)
        raise ArtifactStoreFailed(f"the artifact store failed to {action} '{path}'; see the server log") from None
    except Exception as exc:  # noqa: BLE001 - botocore's errors from the multipart calls
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) if hasattr(exc, "response") else ""
        if code not in _S3_CLIENT_MISTAKES:
            raise
        if _S3_CLIENT_MISTAKES[code] == 404:
            raise ResourceDoesNotExist(f"no multipart upload of '{path}' with this upload_id") from None
        raise InvalidParameterValue(f"the multipart upload of '{path}' was refused: {code}") from None


def _json(body: dict[str, Any], status: int = 200) -> Response:
    from trackops.server.app import FastJSONResponse

    return FastJSONResponse(body, status_code=status)


def _destination(ctx):
    if not ctx.serve_artifacts or ctx.artifacts is None:
        raise ArtifactsNotServed("This server does not serve artifacts: it was started with --no-serve-artifacts")
    return ctx.artifacts


def _safe(path: str, *, file: bool = False) -> str:
    try:
        return validate_path(path, file=file)
    except InvalidArtifactPath as exc:
        raise InvalidParameterValue(exc.client_message) from None


@route("PUT", ARTIFACTS + "/{artifact_path:path}", Access.EDIT, Resource.ARTIFACT_PATH, raw=True)
async def upload_artifact(ctx, request: Request) -> Response:
    repo = _destination(ctx)
    path = _safe(request.path_params["artifact_path"], file=True)
    stream = request.stream().__aiter__()
    # The writer may read from a thread of its own (boto3's transfer manager), not the one
    # anyio started: hand it the loop's token so it can still pull from the socket.
    token = anyio.lowlevel.current_token()

    async def next_block() -> bytes:
        parts, size = [], 0
        while size < BLOCK:
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                break
            if chunk:
                parts.append(chunk)
                size += len(chunk)
        return b"".join(parts)

    disconnected = False

    def blocks():
        nonlocal disconnected
        while True:
            try:
                block = anyio.from_thread.run(next_block, token=token)
            except ClientDisconnect:
                disconnected = True
                raise
            if not block:
                return
            yield block

    try:
        with client_facing(path, "write"):
            await anyio.to_thread.run_sync(repo.write, path, blocks())
    except Exception:
        if disconnected:  # the writer discarded the partial file; nothing was stored
            raise InvalidParameterValue(f"Upload of {path} interrupted: the client disconnected before the "
                                        "end of the body; nothing was stored") from None
        raise
    return _json({})


@route("GET", ARTIFACTS + "/{artifact_path:path}", Access.READ, Resource.ARTIFACT_PATH, raw=True)
async def download_artifact(ctx, request: Request) -> Response:
    repo = _destination(ctx)
    path = _safe(request.path_params["artifact_path"], file=True)
    return await _stream_file(repo, path)


# Served as text/plain whatever their own type, as mlflow server serves them: a browser that opens an
# artifact link then shows a script, page fragment or notebook as text instead of running or rendering
# it. (The extension, or the whole name when it has none: MLmodel, MLproject.)
_PLAIN_TEXT = frozenset({
    "txt", "log", "err", "cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon", "toml", "yaml", "yml",
    "xml", "json", "js", "py", "py3", "csv", "tsv", "md", "rst", "ipynb", "MLmodel", "MLproject"})


def download_media_type(path: str) -> str:
    """The Content-Type of a downloaded artifact, as mlflow server chooses it (no charset parameter)."""
    name = posixpath.basename(path)
    extension = posixpath.splitext(name)[1].replace(".", "") or name
    if extension in _PLAIN_TEXT:
        return "text/plain"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


async def _stream_file(repo, path: str, asked: str | None = None) -> Response:
    with client_facing(asked if asked is not None else path, "read"):
        reader = await anyio.to_thread.run_sync(repo.open, path)
    # the type as a header, so that Starlette adds no charset to a text type (mlflow server adds none)
    headers = {"Content-Type": download_media_type(path), "Content-Length": str(reader.size),
               "Content-Disposition": f'attachment; filename="{posixpath.basename(path)}"'}
    return StreamingResponse(iter(reader), headers=headers,
                             background=BackgroundTask(reader.close))


@route("DELETE", ARTIFACTS + "/{artifact_path:path}", Access.EDIT, Resource.ARTIFACT_PATH, raw=True)
async def delete_artifact(ctx, request: Request) -> Response:
    repo = _destination(ctx)
    # Never the whole destination: a client deleting a run's artifacts always names a folder.
    path = _safe(request.path_params["artifact_path"], file=True)
    with client_facing(path, "delete"):
        await anyio.to_thread.run_sync(repo.delete_prefix, path)
    return _json({})


def _files(entries, base: str) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        item: dict[str, Any] = {"path": relative_to(e.path, base), "is_dir": e.is_dir}
        if not e.is_dir and e.size is not None:
            item["file_size"] = e.size
        out.append(item)
    return out


@route("GET", ARTIFACTS, Access.READ, Resource.ARTIFACT_PATH)
def list_proxied(ctx, p: Params, _path) -> dict:
    """Entries directly under ``path``, with paths relative to it (as MLflow lists them)."""
    repo = _destination(ctx)
    base = _safe(p.str("path") or "")
    with client_facing(base, "list"):
        entries = repo.list(base)
    return ser.page("files", _files(entries, base), None)


@route("GET", "/mlflow/artifacts/list", Access.READ, Resource.RUN)
def list_run_artifacts(ctx, p: Params, _path) -> dict:
    """A run's artifacts under ``path``, with paths relative to the run's root, and the root URI."""
    run = ctx.tracking.get_run(p.first_str("run_id", "run_uuid", required=True))
    root_uri = run.info.artifact_uri
    sub = _safe(p.str("path") or "")
    repo, base = locate(root_uri, artifacts_destination=ctx.settings.artifacts_destination)
    with client_facing(sub, "list"):
        entries = repo.list(join(base, sub))
    out: dict[str, Any] = {"root_uri": root_uri}
    files = _files(entries, base)
    if files:
        out["files"] = files
    return out


# --- multipart (S3 destinations) ---------------------------------------------------------------

def _s3_target(ctx, artifact_path: str, file_name: str | None = None):
    """(client, bucket, key) of an upload; the path is checked before the destination is."""
    path = _safe(artifact_path)
    if file_name:
        path = join(path, _safe(posixpath.basename(file_name), file=True))
    if not path:
        raise InvalidParameterValue("Invalid path: names the artifact root, not a file")
    repo = _destination(ctx)
    if getattr(repo, "bucket", None) is None or not hasattr(repo, "client"):
        # only a well-formed request learns this: the client then falls back to one streamed PUT
        raise NotImplementedOnServer(UNSUPPORTED_MULTIPART)
    return repo.client, repo.bucket, join(repo.prefix, path)


@route("POST", "/mlflow-artifacts/mpu/create/{artifact_path:path}", Access.EDIT, Resource.ARTIFACT_PATH)
def create_multipart(ctx, p: Params, path: dict) -> dict:
    file_name, num_parts = p.str("path", required=True), p.int64("num_parts", default=1)
    if not 1 <= num_parts <= 10_000:
        raise InvalidParameterValue(f"num_parts must be between 1 and 10000, got {num_parts}")
    client, bucket, key = _s3_target(ctx, path["artifact_path"], file_name)
    mime = mimetypes.guess_type(key)[0]
    with client_facing(path["artifact_path"], "start a multipart upload of"):
        upload = client.create_multipart_upload(Bucket=bucket, Key=key, **({"ContentType": mime} if mime else {}))
    upload_id = upload["UploadId"]
    credentials = [{"url": client.generate_presigned_url(
        "upload_part", Params={"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": n},
        ExpiresIn=PRESIGN_SECONDS), "part_number": n, "headers": {}} for n in range(1, num_parts + 1)]
    return {"upload_id": upload_id, "credentials": credentials}


@route("POST", "/mlflow-artifacts/mpu/complete/{artifact_path:path}", Access.EDIT, Resource.ARTIFACT_PATH)
def complete_multipart(ctx, p: Params, path: dict) -> dict:
    file_name, upload_id = p.str("path", required=True), p.str("upload_id", required=True)
    parts = []
    for part in p.list("parts"):
        if not isinstance(part, dict):
            raise InvalidParameterValue("Invalid value in 'parts': each part must be an object")
        pp = Params(part)
        number = pp.int64("part_number", required=True)
        if not 1 <= number <= 10_000:
            raise InvalidParameterValue(f"part_number must be between 1 and 10000, got {number}")
        parts.append({"PartNumber": number, "ETag": pp.str("etag", required=True)})
    if not parts:
        raise InvalidParameterValue("Missing value for required parameter 'parts'.")
    client, bucket, key = _s3_target(ctx, path["artifact_path"], file_name)
    with client_facing(join(path["artifact_path"], file_name), "complete the multipart upload of"):
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": sorted(parts, key=lambda x: x["PartNumber"])})
    return {}


@route("POST", "/mlflow-artifacts/mpu/abort/{artifact_path:path}", Access.EDIT, Resource.ARTIFACT_PATH)
def abort_multipart(ctx, p: Params, path: dict) -> dict:
    file_name, upload_id = p.str("path", required=True), p.str("upload_id", required=True)
    client, bucket, key = _s3_target(ctx, path["artifact_path"], file_name)
    with client_facing(join(path["artifact_path"], file_name), "abort the multipart upload of"):
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    return {}
