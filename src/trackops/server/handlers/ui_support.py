"""Endpoints MLflow's web UI calls beyond the client's REST API (tests/ui/recorded_endpoints.json).

- ``/graphql``: the run page, charts and runs table query it (server/graphql_api.py).
- ``/get-artifact`` and ``/model-versions/get-artifact``: the artifact viewer reads files through
  them, streamed from the run's (or version's) artifact location. As in MLflow, every file is an
  attachment with ``X-Content-Type-Options: nosniff``, and text types (html included) are
  ``text/plain``, so nothing from an artifact runs on the server's origin.
- ``upload-artifact``: the UI's file upload into a run's artifacts.
- Features trackops does not have (prompts, the AI gateway, scorers, ...) answer what
  ``mlflow server`` answers when they are empty, so their pages show their empty state.
"""

from __future__ import annotations

import mimetypes
import posixpath

import anyio.to_thread
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from trackops.artifacts import locate
from trackops.artifacts.paths import join
from trackops.errors import InvalidParameterValue
from trackops.server.handlers.artifacts import _safe
from trackops.server.protocol import MAX_JSON_BODY, Params
from trackops.server.routing import Access, Resource, route

# Extensions MLflow serves as text/plain (mlflow.utils.mime_type_utils), plus names without one.
TEXT_EXTENSIONS = {"txt", "log", "err", "cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon",
                   "toml", "yaml", "yml", "xml", "json", "js", "py", "py3", "csv", "tsv", "md", "rst", "ipynb",
                   "MLmodel", "MLproject"}
MAX_UPLOAD = MAX_JSON_BODY


def mime_type(path: str) -> str:
    """The Content-Type MLflow sends for an artifact; never one a browser would render as a page."""
    name = posixpath.basename(path)
    ext = posixpath.splitext(name)[1].lstrip(".") or name
    if ext in TEXT_EXTENSIONS:
        return "text/plain"
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if guessed in ("text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript"):
        return "text/plain"
    return guessed


def _disposition(path: str) -> str:
    name = posixpath.basename(path)
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        from urllib.parse import quote

        return f"attachment; filename=download; filename*=UTF-8''{quote(name, safe='')}"
    return f'attachment; filename="{name}"' if any(c in name for c in ' ;,"') else f"attachment; filename={name}"


async def _send(ctx, root_uri: str, path: str) -> Response:
    repo, base = locate(root_uri, artifacts_destination=ctx.settings.artifacts_destination)
    reader = await anyio.to_thread.run_sync(repo.open, join(base, path))
    # X-Content-Type-Options: nosniff is on every response already (server/security.py)
    headers = {"Content-Length": str(reader.size), "Content-Disposition": _disposition(path)}
    return StreamingResponse(iter(reader), media_type=mime_type(path), headers=headers,
                             background=BackgroundTask(reader.close))


def _query_path(request: Request) -> str:
    if "path" not in request.query_params:
        raise InvalidParameterValue("Missing value for required parameter 'path'.")
    return _safe(request.query_params["path"], file=True)


@route("GET", "/get-artifact", Access.READ, Resource.RUN, raw=True, root=True)
async def get_artifact(ctx, request: Request) -> Response:
    """One file of a run's artifacts (``run_id`` or ``run_uuid``, ``path``), streamed."""
    run_id = request.query_params.get("run_id") or request.query_params.get("run_uuid")
    if not run_id:
        raise InvalidParameterValue("Missing value for required parameter 'run_id'.")
    path = _query_path(request)
    run = await anyio.to_thread.run_sync(ctx.tracking.get_run, run_id)
    return await _send(ctx, run.info.artifact_uri, path)


@route("GET", "/model-versions/get-artifact", Access.READ, Resource.REGISTERED_MODEL, raw=True, root=True)
async def get_model_version_artifact(ctx, request: Request) -> Response:
    """One file of a model version (``name``, ``version``, ``path``), from its download URI."""
    name, version = request.query_params.get("name"), request.query_params.get("version")
    if not name or not version:
        raise InvalidParameterValue("Missing value for required parameter 'name' or 'version'.")
    path = _query_path(request)
    if ctx.registry is None:
        raise InvalidParameterValue("This server has no model registry")
    uri = await anyio.to_thread.run_sync(ctx.registry.get_model_version_download_uri, name, version)
    return await _send(ctx, uri, path)


@route("POST", "/mlflow/upload-artifact", Access.EDIT, Resource.RUN, raw=True)
async def upload_artifact(ctx, request: Request) -> Response:
    """The UI's upload of one file into a run's artifacts (``run_uuid``, ``path``; the body is the file)."""
    from trackops.server.app import FastJSONResponse, read_body

    run_id = request.query_params.get("run_uuid") or request.query_params.get("run_id")
    if not run_id:
        raise InvalidParameterValue("Missing value for required parameter 'run_uuid'.")
    path = _query_path(request)
    body = await read_body(request, MAX_UPLOAD)
    run = await anyio.to_thread.run_sync(ctx.tracking.get_run, run_id)
    repo, base = locate(run.info.artifact_uri, artifacts_destination=ctx.settings.artifacts_destination)
    await anyio.to_thread.run_sync(repo.write, join(base, path), iter([body]))
    return FastJSONResponse({})


@route("POST", "/graphql", Access.READ, Resource.SEARCH, root=True)
def graphql(ctx, p: Params, _path) -> dict:
    """MLflow's GraphQL queries (server/graphql_api.py). With --auth every field is authorized
    like the REST route its resolver calls (the searches filter by what the user may read)."""
    from trackops.server.graphql_api import execute

    query = p.str("query", required=True)
    variables = p.obj("variables")
    return execute(ctx, query, dict(variables) or None, p.str("operationName"))


@route("POST", "/mlflow/experiments/search-datasets", Access.READ, Resource.SEARCH)
def search_datasets(ctx, p: Params, _path) -> dict:
    """Dataset summaries of the experiments' runs: none (runs log no datasets through the UI's data)."""
    p.list("experiment_ids")
    return {}


# --- features trackops does not have: mlflow server's answers when they are empty -------------

def _empty(ctx, _p: Params, _path) -> dict:
    return {}


for _method, _path_ in (("POST", "/mlflow/datasets/search"),
                        ("GET", "/mlflow/scorers/list"), ("GET", "/mlflow/gateway/endpoints/list"),
                        ("GET", "/mlflow/gateway/endpoints/bindings/list"),
                        ("GET", "/mlflow/gateway/model-definitions/list"), ("GET", "/mlflow/gateway/secrets/list")):
    # Listings read nothing a user could be denied: SEARCH, as every listing filtered by permission.
    route(_method, _path_, Access.READ, Resource.SEARCH, versions=("3.0",))(_empty)


@route("GET", "/mlflow/gateway/secrets/config", Access.PUBLIC, versions=("3.0",))
def gateway_secrets_config(ctx, _p: Params, _path) -> dict:
    """No AI gateway here: no secret store for it (the gateway pages show their empty state)."""
    return {"secrets_available": False, "using_default_passphrase": False}


@route("GET", "/mlflow/gateway-proxy", Access.READ, Resource.SEARCH)
def gateway_proxy(ctx, p: Params, _path) -> dict:
    """The UI lists gateway endpoints through the proxy; there is no gateway, so none."""
    return {"endpoints": []}


@route("GET", "/mlflow/assistant/config", Access.PUBLIC, versions=("3.0",))
def assistant_config(ctx, _p: Params, _path) -> dict:
    return {"providers": {}, "projects": {}, "remote_access_allowed": False}


@route("GET", "/mlflow/assistant/providers", Access.PUBLIC, versions=("3.0",))
def assistant_providers(ctx, _p: Params, _path) -> dict:
    """No assistant runs on a trackops server: no providers (mlflow server lists its CLIs as unavailable)."""
    return {"providers": []}
