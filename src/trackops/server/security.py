"""Host, origin and frame protection in front of the app, as `mlflow server` 3.17 has it.

One pure ASGI middleware does what MLflow's four do (host validation, CORS answers, blocking of
cross-origin writes, security headers), with MLflow's defaults, statuses and messages:

- a ``Host`` header outside the allowed hosts gets ``403`` ``Invalid Host header - possible DNS
  rebinding attack detected`` (``/health``, ``/version`` and ``/ready`` are exempt, so that probes
  that address the pod by name still work). Default hosts: ``localhost``, ``127.0.0.1``, ``[::1]``,
  ``0.0.0.0`` on any port and the private ranges (``10.*``, ``192.168.*``, ``172.16-31.*``,
  ``fc00:*``, ``fd00:*``); ``*`` in a pattern matches anything, ``*`` alone turns the check off;
- a ``POST``/``PUT``/``DELETE``/``PATCH`` whose ``Origin`` is neither a localhost origin nor in the
  allowed origins gets ``403`` ``Cross-origin request blocked`` before the app runs, whatever its
  content type (so a "simple" form or ``text/plain`` request cannot create anything);
- a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here: ``200 OK``
  with the CORS headers for an allowed origin, ``400 Disallowed CORS origin`` otherwise;
- every response gets ``X-Content-Type-Options: nosniff`` and ``X-Frame-Options: SAMEORIGIN``
  (``DENY``, or ``NONE`` for no header), or ``Content-Security-Policy: frame-ancestors 'self' ...``
  when the administrator names the sites that may embed the UI.

Where trackops differs, it is only more permissive where no attack gets through: Host names
compare case-insensitively, the address given to ``--host`` is an allowed host, and a same-origin
request (``Origin`` naming the very host the request was sent to, once that host passed the check)
is not refused, so the UI also works through a private address or an allowed name.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from trackops.errors import UsageError

INVALID_HOST_MSG = b"Invalid Host header - possible DNS rebinding attack detected"
CORS_BLOCKED_MSG = b"Cross-origin request blocked"
STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
CORS_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
LOCALHOST_HOSTS = ("localhost", "127.0.0.1", "[::1]", "0.0.0.0")
LOCALHOST_ORIGIN_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
PRIVATE_HOSTS = ("192.168.*", "10.*", *(f"172.{i}.*" for i in range(16, 32)), "fc00:*", "fd00:*")
PROBES = ("/health", "/version", "/ready")
NOTEBOOK_RENDERER = "/static-files/lib/notebook-trace-renderer"  # MLflow lets Jupyter frame it
X_FRAME_VALUES = ("SAMEORIGIN", "DENY", "NONE")
# A frame-ancestors source: scheme, optional *. wildcard label, host, optional port; nothing that
# could end the header or the directive (spaces, ';', ',', quotes).
ANCESTOR = re.compile(r"(https?://)?(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:(\d{1,5}|\*))?")
ENV = {"allowed_hosts": "ALLOWED_HOSTS", "cors_allowed_origins": "CORS_ALLOWED_ORIGINS",
       "x_frame_options": "X_FRAME_OPTIONS", "disable_security_middleware": "DISABLE_SECURITY_MIDDLEWARE"}
TRUE = ("1", "true", "t", "yes", "y", "on")
CACHE_SIZE = 1024


def split_list(text: str | None) -> tuple[str, ...]:
    """A comma-separated flag value as its items, stripped, without empty ones."""
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def resolve_flags(*, allowed_hosts: str | None = None, cors_allowed_origins: str | None = None,
                  x_frame_options: str | None = None, frame_ancestors: str | None = None,
                  disable_security_middleware: bool = False,
                  env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The security fields of a `ServeConfig`: flag, else TRACKOPS_*, else MLflow's MLFLOW_SERVER_* env var."""
    env = os.environ if env is None else env
    values = {"allowed_hosts": allowed_hosts, "cors_allowed_origins": cors_allowed_origins,
              "x_frame_options": x_frame_options}
    for key, value in values.items():
        if value is None:
            values[key] = env.get(f"TRACKOPS_{ENV[key]}") or env.get(f"MLFLOW_SERVER_{ENV[key]}") or None
    if not disable_security_middleware:
        raw = env.get("TRACKOPS_DISABLE_SECURITY_MIDDLEWARE") or env.get("MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE")
        disable_security_middleware = (raw or "").strip().lower() in TRUE
    frame = values["x_frame_options"]
    ancestors = frame_ancestors if frame_ancestors is not None else env.get("TRACKOPS_FRAME_ANCESTORS")
    if frame is not None and frame.strip().upper() not in X_FRAME_VALUES:
        raise UsageError(f"--x-frame-options must be SAMEORIGIN, DENY or NONE, not {frame.strip()!r}")
    for source in split_list(ancestors):
        if source not in ("'self'", "*") and not ANCESTOR.fullmatch(source):
            raise UsageError(f"--frame-ancestors: {source!r} is not a site (e.g. https://portal.example)",
                             hint='--frame-ancestors "https://portal.example,https://*.corp.example"')
    if split_list(ancestors) and frame is not None and frame.strip().upper() != "NONE":
        raise UsageError("--frame-ancestors replaces X-Frame-Options; leave --x-frame-options out "
                         "(or set it to NONE)")
    for key in ("allowed_hosts", "cors_allowed_origins"):
        for item in split_list(values[key]):
            if any(ch.isspace() or ord(ch) < 32 for ch in item):
                raise UsageError(f"--{key.replace('_', '-')}: {item!r} contains a space or control character")
    return {"allowed_hosts": ",".join(split_list(values["allowed_hosts"])) or None,
            "cors_allowed_origins": ",".join(split_list(values["cors_allowed_origins"])) or None,
            "x_frame_options": (frame or "SAMEORIGIN").strip().upper(),
            "frame_ancestors": ",".join(split_list(ancestors)) or None,
            "disable_security_middleware": disable_security_middleware}


@dataclasses.dataclass(frozen=True)
class SecurityOptions:
    """What the middleware enforces; built from a `ServeConfig` (the flags) by `from_config`."""

    enabled: bool = True
    allowed_hosts: tuple[str, ...] = ()  # empty: MLflow's defaults plus the bound address
    cors_allowed_origins: tuple[str, ...] = ()  # besides localhost origins; "*": any, without credentials
    x_frame_options: str = "SAMEORIGIN"
    frame_ancestors: tuple[str, ...] = ()
    bound_host: str | None = None
    static_prefix: str | None = None

    @classmethod
    def from_config(cls, config: Any) -> SecurityOptions:
        return cls(enabled=not getattr(config, "disable_security_middleware", False),
                   allowed_hosts=split_list(getattr(config, "allowed_hosts", None)),
                   cors_allowed_origins=tuple(o.rstrip("/") for o in
                                              split_list(getattr(config, "cors_allowed_origins", None))),
                   x_frame_options=(getattr(config, "x_frame_options", None) or "SAMEORIGIN").upper(),
                   frame_ancestors=split_list(getattr(config, "frame_ancestors", None)),
                   bound_host=getattr(config, "host", None), static_prefix=getattr(config, "static_prefix", None))

    def hosts(self) -> tuple[str, ...]:
        if self.allowed_hosts:
            return self.allowed_hosts
        bound = (self.bound_host or "").strip().lower()
        if ":" in bound and not bound.startswith("["):
            bound = f"[{bound}]"
        extra = (bound, f"{bound}:*") if bound and bound not in ("0.0.0.0", "[::]") else ()
        return (*LOCALHOST_HOSTS, *(f"{h}:*" for h in LOCALHOST_HOSTS), *PRIVATE_HOSTS, *extra)

    def frame_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        if self.frame_ancestors:
            sources = " ".join(dict.fromkeys(("'self'", *self.frame_ancestors)))
            return ((b"content-security-policy", f"frame-ancestors {sources}".encode("latin-1")),)
        if self.x_frame_options != "NONE":
            return ((b"x-frame-options", self.x_frame_options.encode("latin-1")),)
        return ()


class Patterns:
    """Names matched exactly or as ``*`` globs, case-insensitively; answers are cached per name."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        patterns = tuple(p.lower() for p in patterns)
        self.everything = "*" in patterns
        self.exact = frozenset(p for p in patterns if "*" not in p)
        globs = [".*".join(re.escape(part) for part in p.split("*")) for p in patterns if "*" in p]
        self.glob = re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None
        self.cache: dict[str, bool] = {}

    def __contains__(self, name: str) -> bool:
        known = self.cache.get(name)
        if known is None:
            lowered = name.lower()
            known = self.everything or lowered in self.exact or bool(self.glob and self.glob.fullmatch(lowered))
            if len(self.cache) >= CACHE_SIZE:
                self.cache.clear()
            self.cache[name] = known
        return known


def is_localhost_origin(origin: str) -> bool:
    try:
        return urlsplit(origin).hostname in LOCALHOST_ORIGIN_HOSTS
    except ValueError:
        return False


async def plain(send: Any, status: int, body: bytes, extra: tuple = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body)),
                            (b"x-content-type-options", b"nosniff"), *extra]})
    await send({"type": "http.response.body", "body": body})


class SecurityMiddleware:
    """Wraps the app; refuses foreign hosts and cross-origin writes, answers preflights, adds headers."""

    def __init__(self, app: Any, options: SecurityOptions) -> None:
        self.app = app
        self.options = options
        hosts = options.hosts()
        self.hosts = None if "*" in hosts else Patterns(hosts)
        self.host_allowed: dict[bytes | None, bool] = {}
        self.any_origin = "*" in options.cors_allowed_origins
        self.origins = Patterns(options.cors_allowed_origins)
        self.local_origins: dict[str, bool] = {}
        prefix = options.static_prefix or ""
        self.probes = frozenset(prefix + p for p in PROBES)
        self.renderer = (NOTEBOOK_RENDERER, prefix + NOTEBOOK_RENDERER)
        nosniff = ((b"x-content-type-options", b"nosniff"),)
        self.headers = nosniff + options.frame_headers()
        self.renderer_headers = nosniff
        self.methods = ", ".join(ALL_METHODS if self.any_origin else CORS_METHODS).encode()
        self.method_set = frozenset(m.encode() for m in (ALL_METHODS if self.any_origin else CORS_METHODS))

    def __getattr__(self, name: str) -> Any:  # app.state and friends stay reachable through the wrapper
        return getattr(self.app, name)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = request_method = request_headers = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value
            elif key == b"origin":
                origin = value
            elif key == b"access-control-request-method":
                request_method = value
            elif key == b"access-control-request-headers":
                request_headers = value
        path = scope["path"]
        if self.hosts is not None and not self.host_allowed.get(host, False) and path not in self.probes:
            if host is None or not self.check_host(host):
                await plain(send, 403, INVALID_HOST_MSG)
                return
        cors: tuple = ()
        if origin is not None:
            allowed = self.origin_allowed(origin.decode("latin-1"), host.decode("latin-1") if host else "")
            method = scope["method"]
            if method == "OPTIONS" and request_method is not None:
                await self.preflight(send, origin, allowed, request_method, request_headers)
                return
            vary = (b"vary", b"Origin")
            if not allowed and method in STATE_CHANGING:
                await plain(send, 403, CORS_BLOCKED_MSG, (vary,))
                return
            if allowed:
                cors = ((b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", b"*"), vary) \
                    if self.any_origin else ((b"access-control-allow-origin", origin),
                                             (b"access-control-allow-credentials", b"true"),
                                             (b"access-control-expose-headers", b"*"), vary)
            else:
                cors = (vary,)
        extra = (self.renderer_headers if path.startswith(self.renderer) else self.headers) + cors

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def check_host(self, host: bytes) -> bool:
        """The allowed-hosts match for a Host header not seen yet; remembered (raw bytes) for the next request."""
        allowed = host.decode("latin-1") in self.hosts
        if len(self.host_allowed) >= CACHE_SIZE:
            self.host_allowed.clear()
        self.host_allowed[host] = allowed
        return allowed

    def origin_allowed(self, origin: str, host: str) -> bool:
        """Localhost origins, the allowed origins, and the server's own origin (once its host passed)."""
        if self.any_origin or origin.rstrip("/") in self.origins:
            return True
        local = self.local_origins.get(origin)
        if local is None:
            local = is_localhost_origin(origin)
            if len(self.local_origins) >= CACHE_SIZE:
                self.local_origins.clear()
            self.local_origins[origin] = local
        if local:
            return True
        # Same origin: safe only when the Host itself was checked (with hosts "*" a rebound name passes).
        return self.hosts is not None and bool(host) and origin.partition("://")[2].lower() == host.lower()

    async def preflight(self, send: Any, origin: bytes, allowed: bool, method: bytes, headers: bytes | None) -> None:
        """The answer Starlette's CORSMiddleware gives under MLflow: 200 OK, or 400 with the reason."""
        out = [(b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
               (b"access-control-allow-methods", self.methods), (b"access-control-max-age", b"600")]
        if not self.any_origin:
            out.append((b"access-control-allow-credentials", b"true"))
        if headers is not None:
            out.append((b"access-control-allow-headers", headers))
        if not allowed:
            await plain(send, 400, b"Disallowed CORS origin", tuple(out))
            return
        if method.upper() not in self.method_set:
            await plain(send, 400, b"Disallowed CORS method", tuple(out))
            return
        out.append((b"access-control-allow-origin", b"*" if self.any_origin else origin))
        await plain(send, 200, b"OK", tuple(out))


def secure(app: Any, options: SecurityOptions) -> Any:
    """`app` behind the middleware, or `app` itself with --disable-security-middleware."""
    return SecurityMiddleware(app, options) if options.enabled else app
