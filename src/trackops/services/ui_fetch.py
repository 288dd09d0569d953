"""`trackops ui fetch`: put MLflow's web UI bundle into the user cache, from the mlflow wheel.

Only the wheel is needed, and only its ``mlflow/server/js/build/**`` members are kept. The wheel
comes from ``python -m pip download --no-deps --only-binary=:all: mlflow==VERSION``, so pip's own
index configuration (pip.conf, ``PIP_INDEX_URL``, proxies, certificates) applies, and pip checks
the download against the sha256 the index publishes in the file's URL (``#sha256=...``) before it
keeps it. Offline machines pass ``--wheel PATH`` instead; its name and METADATA must say mlflow.

The bundle is extracted into a temporary folder beside its destination and renamed into place, so
a half-extracted bundle is never found by ``trackops serve``. A ``VERSION`` file beside
``index.html`` records the MLflow version it came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trackops.errors import TrackopsError, UsageError

DEFAULT_MLFLOW_VERSION = "3.17.2"
VERSION_FILE = "VERSION"
BUNDLE_PREFIX = "mlflow/server/js/build/"
WHEEL_NAME = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)-[^-]+-[^-]+-[^-]+\.whl$")

Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class FetchReport:
    """What `fetch_ui` put where; `to_json()` is the documented ``--json`` shape."""

    mlflow_version: str
    path: str
    files: int
    bytes: int
    wheel: str | None  # None when the cached bundle was kept (source "cache")
    wheel_sha256: str | None
    source: str  # "pip" (downloaded), "wheel" (--wheel PATH) or "cache" (--if-missing found it)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cache_root(env: dict[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/trackops/ui`` (``~/.cache/trackops/ui`` when the variable is unset)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trackops" / "ui"


def fetch_ui(*, mlflow_version: str | None = None, wheel: str | None = None, cache: Path | None = None,
             progress: Progress | None = None, if_missing: bool = False) -> FetchReport:
    """Download MLflow's wheel (or take --wheel) and extract its UI bundle into the cache.

    With `if_missing`, a complete bundle of that version already in the cache is kept and
    reported (source ``cache``) without downloading anything.
    """
    root = cache if cache is not None else cache_root()
    if if_missing and wheel is None:
        cached = cached_bundle(root, mlflow_version or DEFAULT_MLFLOW_VERSION)
        if cached is not None:
            return cached
    if wheel is not None:
        path = Path(wheel).expanduser()
        version = check_wheel(path, expected=mlflow_version)
        return _install(path, version, root, source="wheel", progress=progress)
    version = mlflow_version or DEFAULT_MLFLOW_VERSION
    if not re.fullmatch(r"[0-9A-Za-z.+!-]+", version):
        raise UsageError(f"--mlflow-version {version!r} is not a version", hint="e.g. --mlflow-version 3.17.2")
    with tempfile.TemporaryDirectory(prefix="trackops-ui-") as tmp:
        path = download_wheel(version, Path(tmp))
        check_wheel(path, expected=version)
        return _install(path, version, root, source="pip", progress=progress)


def cached_bundle(root: Path, version: str) -> FetchReport | None:
    """The report of a complete cached bundle of `version` (index.html and VERSION), or None."""
    target = root / version
    try:
        recorded = (target / VERSION_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if recorded != version or not (target / "index.html").is_file():
        return None
    files = size = 0
    for path in target.rglob("*"):
        if path.is_file() and path.name != VERSION_FILE:
            files += 1
            size += path.stat().st_size
    return FetchReport(mlflow_version=version, path=str(target), files=files, bytes=size, wheel=None,
                       wheel_sha256=None, source="cache")


def download_wheel(version: str, dest: Path) -> Path:
    """``pip download`` of the mlflow wheel alone into `dest`; pip's last line on failure (exit 1)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--no-input", f"mlflow=={version}", "-d", str(dest)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TrackopsError(f"pip download of mlflow=={version} did not run: {type(exc).__name__}",
                            hint="pass a wheel you already have: trackops ui fetch --wheel PATH") from None
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {result.returncode}"
        raise TrackopsError(f"pip download of mlflow=={version} failed: {last}",
                            hint="check pip's index settings, or pass a wheel: trackops ui fetch --wheel PATH")
    wheels = sorted(dest.glob("mlflow-*.whl"))
    if not wheels:
        raise TrackopsError(f"pip download of mlflow=={version} left no mlflow wheel",
                            hint="trackops ui fetch --wheel PATH")
    return wheels[0]


def check_wheel(path: Path, *, expected: str | None = None) -> str:
    """The MLflow version of an mlflow wheel holding the UI bundle; a usage error (exit 2) otherwise."""
    hint = "pass the mlflow wheel (mlflow-3.17.2-py3-none-any.whl); mlflow-skinny has no UI bundle"
    match = WHEEL_NAME.match(path.name)
    if not path.is_file() or match is None:
        raise UsageError(f"{path.name} is not a wheel file", hint=hint)
    if match["name"].lower().replace("_", "-").replace(".", "-") != "mlflow":
        raise UsageError(f"{path.name} is not an mlflow wheel", hint=hint)
    version = match["version"]
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            meta_name = f"mlflow-{version}.dist-info/METADATA"
            metadata = archive.read(meta_name).decode("utf-8", "replace") if meta_name in names else ""
    except (zipfile.BadZipFile, OSError):
        raise UsageError(f"{path.name} is not a readable wheel (zip) file", hint=hint) from None
    fields = dict(re.findall(r"^(Name|Version): *(.+?)\s*$", metadata, flags=re.MULTILINE))
    if fields.get("Name", "").lower() != "mlflow" or fields.get("Version") != version:
        raise UsageError(f"{path.name} has no METADATA saying mlflow {version}", hint=hint)
    if BUNDLE_PREFIX + "index.html" not in names:
        raise UsageError(f"{path.name} has no UI bundle ({BUNDLE_PREFIX}index.html)", hint=hint)
    if expected is not None and expected != version:
        raise UsageError(f"{path.name} is mlflow {version}, not {expected}",
                         hint="drop --mlflow-version, or pass the wheel of that version")
    return version


def _install(wheel: Path, version: str, root: Path, *, source: str, progress: Progress | None) -> FetchReport:
    root.mkdir(parents=True, exist_ok=True)
    target = root / version
    staging = root / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    digest = hashlib.sha256()
    with open(wheel, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    files = size = 0
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.infolist() if m.filename.startswith(BUNDLE_PREFIX) and not m.is_dir()]
            for done, member in enumerate(members, 1):
                relative = member.filename[len(BUNDLE_PREFIX):]
                parts = relative.split("/")
                if any(p in ("", ".", "..") for p in parts) or "\\" in relative:
                    raise UsageError(f"{wheel.name} holds an unsafe member name {member.filename!r}",
                                     hint="use a wheel from the package index")
                out = staging.joinpath(*parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                files += 1
                size += member.file_size
                if progress is not None:
                    progress(done, len(members))
        (staging / VERSION_FILE).write_text(version + "\n", encoding="utf-8")
        _replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FetchReport(mlflow_version=version, path=str(target), files=files, bytes=size, wheel=wheel.name,
                       wheel_sha256=digest.hexdigest(), source=source)


def _replace_folder(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; an older `target` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
