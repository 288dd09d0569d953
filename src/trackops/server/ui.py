"""MLflow's web UI: finding its React bundle and serving it the way `mlflow server` 3.17.2 does.

The bundle is the folder ``mlflow/server/js/build`` of the ``mlflow`` wheel (``mlflow-skinny``
does not ship it). It is looked for, first match wins, in:

1. ``--ui-dir DIR`` or ``TRACKOPS_UI_DIR`` (a folder holding ``index.html``; one without is an error);
2. the installed ``mlflow`` distribution, found without importing it;
3. the cache folder ``trackops ui fetch`` fills (``$XDG_CACHE_HOME/trackops/ui/<mlflow-version>/``).

Routes and headers follow MLflow: ``GET /`` is ``index.html`` with ``Cache-Control: no-cache``;
``GET /static-files/<path>`` is any bundle file with ``Cache-Control: public, max-age=2419200``
(its names carry content hashes). The app uses hash routes (``/#/experiments/1``) and relative
URLs (``static-files/...``, ``ajax-api/...``), so nothing else is needed, under a prefix too.
Without a bundle ``/`` is a small page saying how to get one; with ``--no-ui`` there is no ``/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import importlib.metadata
import importlib.util
import os
import re
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from trackops.errors import UsageError
from trackops.services.ui_fetch import DEFAULT_MLFLOW_VERSION, VERSION_FILE, cache_root

UI_DIR_ENV = "TRACKOPS_UI_DIR"
ASSET_MAX_AGE = 2419200  # 28 days, MLflow's max_age for /static-files
PACKAGE_BUILD = ("server", "js", "build")

# mimetypes differs between Python versions (.js was application/javascript before 3.12): fix the
# types the bundle is made of to what MLflow sends.
MEDIA_TYPES = {
    ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".html": "text/html",
    ".json": "application/json", ".map": "application/json", ".svg": "image/svg+xml", ".png": "image/png",
    ".ico": "image/vnd.microsoft.icon", ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf",
    ".txt": "text/plain", ".wasm": "application/wasm", ".gif": "image/gif", ".jpg": "image/jpeg",
}


@dataclasses.dataclass(frozen=True)
class UiBundle:
    """Which bundle is served: ``source`` is mlflow-package, ui-dir, cache, none or disabled."""

    source: str
    path: str | None = None
    mlflow_version: str | None = None

    @property
    def served(self) -> bool:
        return self.path is not None and self.source not in ("none", "disabled")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def bundle_of(config: Any) -> UiBundle:
    """The bundle a worker serves: the one the parent located and put in its `ServeConfig`."""
    return UiBundle(config.ui_source, config.ui_dir, config.ui_mlflow_version)


def normalise_prefix(prefix: str | None) -> str | None:
    """``--static-prefix``: ``/mlflow`` form (leading slash, none trailing), or None for no prefix."""
    if prefix is None or prefix.strip("/") == "":
        return None
    cleaned = "/" + prefix.strip("/")
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", cleaned) or any(p in (".", "..") for p in cleaned.split("/")):
        raise UsageError(f"--static-prefix {prefix!r} is not a URL path", hint="e.g. --static-prefix /mlflow")
    return cleaned


def locate_bundle(*, ui_dir: str | None = None, disabled: bool = False,
                  env: dict[str, str] | None = None) -> UiBundle:
    """The bundle to serve: --ui-dir / TRACKOPS_UI_DIR, else the mlflow package, else the cache."""
    env = os.environ if env is None else env
    if disabled:
        return UiBundle("disabled")
    chosen = ui_dir or env.get(UI_DIR_ENV) or None
    if chosen:
        folder = Path(chosen).expanduser()
        flag = "--ui-dir" if ui_dir else UI_DIR_ENV
        if not (folder / "index.html").is_file():
            raise UsageError(f"{flag} {chosen} is not a UI bundle: it has no index.html",
                             hint="point it at the folder holding index.html (mlflow/server/js/build), "
                                  "or run: trackops ui fetch")
        return UiBundle("ui-dir", str(folder.resolve()), _version_file(folder))
    package = package_bundle()
    if package is not None:
        return package
    cached = cached_bundle(env)
    if cached is not None:
        return cached
    return UiBundle("none")


def package_bundle() -> UiBundle | None:
    """The bundle inside an installed ``mlflow`` distribution, located without importing mlflow."""
    try:
        spec = importlib.util.find_spec("mlflow")  # a top-level name: finds, does not execute
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = Path(location).joinpath(*PACKAGE_BUILD)
        if (folder / "index.html").is_file():
            return UiBundle("mlflow-package", str(folder.resolve()), _distribution_version())
    return None


def _distribution_version() -> str | None:
    for name in ("mlflow", "mlflow-skinny"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cached_bundle(env: dict[str, str] | None = None) -> UiBundle | None:
    """A bundle ``trackops ui fetch`` left: MLflow 3.17.2's if there, else the newest version."""
    root = cache_root(env)
    if not root.is_dir():
        return None
    versions = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "index.html").is_file()]
    if not versions:
        return None
    versions.sort(key=lambda p: (p.name == DEFAULT_MLFLOW_VERSION, _version_key(p.name)))
    best = versions[-1]
    return UiBundle("cache", str(best.resolve()), _version_file(best) or best.name)


def _version_key(text: str) -> tuple:
    return tuple(int(part) if part.isdigit() else -1 for part in text.replace("-", ".").split("."))


def _version_file(folder: Path) -> str | None:
    try:
        return (folder / VERSION_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def safe_file(root: Path, relative: str) -> Path | None:
    """The file `relative` names inside `root`, or None for anything else (traversal, folders, missing)."""
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        return None
    if any(part in ("", ".", "..") for part in relative.split("/")):
        return None
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def _file_response(request: Request, path: Path, cache_control: str, expires: bool) -> Response:
    stat = path.stat()
    headers = {"cache-control": cache_control}
    if expires:
        headers["expires"] = formatdate(time.time() + ASSET_MAX_AGE, usegmt=True)
    etag = '"' + hashlib.md5(f"{stat.st_mtime}-{stat.st_size}".encode(), usedforsecurity=False).hexdigest() + '"'
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={**headers, "etag": etag})
    media_type = MEDIA_TYPES.get(path.suffix.lower())
    return FileResponse(path, headers=headers, media_type=media_type, filename=path.name, stat_result=stat,
                        content_disposition_type="inline")


def ui_routes(bundle: UiBundle, not_found: Any, gate: Any = None) -> list[Route]:
    """``/`` and ``/static-files/{path}`` for a bundle; the fallback page when there is none.

    `gate(request)` (with --auth) returns an error response for a request without valid
    credentials: it guards ``/`` only, as MLflow's basic-auth app leaves static files open.
    """
    if bundle.source == "disabled":
        return []
    if not bundle.served:
        async def missing(_: Request) -> Response:
            return HTMLResponse(missing_page(), headers={"cache-control": "no-cache"})

        return [Route("/", missing, methods=["GET", "HEAD"], include_in_schema=False)]
    root = Path(bundle.path).resolve()

    async def index(request: Request) -> Response:
        refused = await gate(request) if gate is not None else None
        if refused is not None:
            return refused
        page = root / "index.html"
        if not page.is_file():  # the bundle went away under a running server
            return HTMLResponse(missing_page(), headers={"cache-control": "no-cache"})
        return _file_response(request, page, "no-cache", expires=False)

    async def static_file(request: Request) -> Response:
        path = safe_file(root, request.path_params["path"])
        if path is None:
            return not_found(request)
        return _file_response(request, path, f"public, max-age={ASSET_MAX_AGE}", expires=True)

    return [Route("/", index, methods=["GET", "HEAD"], include_in_schema=False),
            Route("/static-files/{path:path}", static_file, methods=["GET", "HEAD"], include_in_schema=False)]


def missing_page() -> str:
    """The page ``/`` shows when no bundle is installed: what is missing and the two ways to get it."""
    steps = [("Fetch MLflow's UI bundle into the cache (once per machine):", "trackops ui fetch"),
             ("or, on a machine without access to a package index, from a wheel:",
              "trackops ui fetch --wheel mlflow-3.17.2-py3-none-any.whl"),
             ("or install MLflow beside trackops:", "pip install mlflow==3.17.2"),
             ("or point the server at a bundle folder:", "trackops serve --ui-dir /path/to/js/build")]
    items = "".join(f"<li>{html.escape(text)}<pre>{html.escape(cmd)}</pre></li>" for text, cmd in steps)
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"/><title>trackops: UI not installed</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:42rem;margin:4rem auto;padding:0 1rem;"
        "color:#1f2328;line-height:1.5}h1{font-size:1.4rem}pre{background:#f4f5f7;border-radius:6px;"
        "padding:.5rem .75rem;overflow-x:auto}li{margin-bottom:.75rem}p.api{color:#57606a}</style></head><body>"
        "<h1>The MLflow UI bundle is not installed</h1>"
        "<p>This trackops server answers the MLflow REST API, but it has no copy of MLflow's web UI to show.</p>"
        f"<ol>{items}</ol><p>Then restart <code>trackops serve</code>.</p>"
        "<p class=\"api\">The API works as before: <a href=\"health\">health</a>, "
        "<a href=\"version\">version</a>.</p></body></html>")
