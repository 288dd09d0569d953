"""What the store holds: experiments and runs by stage, artifact files and bytes by experiment.

`usage(settings)` answers ``trackops gc --usage`` and the admin console's storage page (which
computes it in the background and caches it: walking every experiment's artifacts is not work for a
page view). Counts come from two grouped queries (``GROUP BY experiment_id, lifecycle_stage``);
bytes from one streamed walk of each experiment's artifact location, so memory stays flat however
many files there are. A location that cannot be read (a bucket that is gone, no credentials) is
reported with its error and counted as zero; it does not stop the others.

`to_json()` shape (additive only): ``computed_at`` (ms), ``seconds``, ``experiments``
``{active, deleted}``, ``runs`` ``{active, deleted}``, ``logged_models`` ``{active, deleted}``,
``artifacts`` ``{files, bytes}``, ``by_experiment`` [``{experiment_id, name, lifecycle_stage,
artifact_location, runs_active, runs_deleted, files, bytes, error}``] with the most bytes first.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import sqlalchemy as sa

from trackops.artifacts import repository_for
from trackops.config import Settings
from trackops.db import schema
from trackops.db.engine import connect_errors, create_engine, parse_url
from trackops.errors import TrackopsError

DELETED = "deleted"


@dataclasses.dataclass
class ExperimentUsage:
    experiment_id: str
    name: str
    lifecycle_stage: str
    artifact_location: str | None
    runs_active: int = 0
    runs_deleted: int = 0
    files: int = 0
    bytes: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Usage:
    computed_at: int
    seconds: float = 0.0
    experiments: dict[str, int] = dataclasses.field(default_factory=lambda: {"active": 0, "deleted": 0})
    runs: dict[str, int] = dataclasses.field(default_factory=lambda: {"active": 0, "deleted": 0})
    logged_models: dict[str, int] = dataclasses.field(default_factory=lambda: {"active": 0, "deleted": 0})
    by_experiment: list[ExperimentUsage] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"computed_at": self.computed_at, "seconds": round(self.seconds, 3),
                "experiments": dict(self.experiments), "runs": dict(self.runs),
                "logged_models": dict(self.logged_models),
                "artifacts": {"files": sum(e.files for e in self.by_experiment),
                              "bytes": sum(e.bytes for e in self.by_experiment)},
                "by_experiment": [e.to_json() for e in self.by_experiment]}


def _stage(value: str | None) -> str:
    return "deleted" if value == DELETED else "active"


def usage_on(engine: sa.Engine, settings: Settings, *, walk: bool = True) -> Usage:
    """`usage` on an open engine (the server's); `walk=False` skips the artifact walk (counts only)."""
    started = time.monotonic()
    result = Usage(computed_at=int(time.time() * 1000))
    exps, runs, lms = schema.experiments, schema.runs, schema.logged_models
    with engine.connect() as conn:
        rows = conn.execute(sa.select(exps.c.experiment_id, exps.c.name, exps.c.lifecycle_stage,
                                      exps.c.artifact_location).order_by(exps.c.experiment_id)).all()
        per = {str(r.experiment_id): ExperimentUsage(str(r.experiment_id), r.name, r.lifecycle_stage or "active",
                                                     r.artifact_location) for r in rows}
        for r in rows:
            result.experiments[_stage(r.lifecycle_stage)] += 1
        for eid, stage, n in conn.execute(sa.select(runs.c.experiment_id, runs.c.lifecycle_stage, sa.func.count())
                                          .group_by(runs.c.experiment_id, runs.c.lifecycle_stage)):
            key = _stage(stage)
            result.runs[key] += int(n)
            item = per.get(str(eid))
            if item is not None:
                setattr(item, f"runs_{key}", getattr(item, f"runs_{key}") + int(n))
        for stage, n in conn.execute(sa.select(lms.c.lifecycle_stage, sa.func.count()).group_by(lms.c.lifecycle_stage)):
            result.logged_models[_stage(stage)] += int(n)
    if walk:
        for item in per.values():
            _walk(item, settings)
    result.by_experiment = sorted(per.values(), key=lambda e: (-e.bytes, -e.files, int(e.experiment_id)))
    result.seconds = time.monotonic() - started
    return result


def _walk(item: ExperimentUsage, settings: Settings) -> None:
    if not item.artifact_location:
        return
    try:
        repo = repository_for(item.artifact_location, artifacts_destination=settings.artifacts_destination)
        for entry in repo.walk(""):
            item.files += 1
            item.bytes += entry.size or 0
    except TrackopsError as exc:
        item.error = exc.message
    except OSError as exc:
        item.error = exc.strerror or type(exc).__name__


def usage(settings: Settings) -> Usage:
    """Show experiments, runs (active/deleted) and artifact bytes by experiment; deletes nothing."""
    url = parse_url(settings.backend_store_uri)
    engine = create_engine(url, must_exist=True)
    try:
        with connect_errors(url):
            return usage_on(engine, settings)
    finally:
        engine.dispose()
